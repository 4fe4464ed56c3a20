"""The routing contract (issue 12, ``policies/README.md``) as a training label, and its target for the stakes head.

Rows of the public corpus carry their ``contract`` label, mapped from each source's own labels by
``classifiers/data/public/mapping.yaml``. The written set (``utterances.csv``) was labelled with intents and risk
*topics*; its contract label is derived here from the two, by the contract's own wording:

* ``emergency`` → high-stakes (any emergency or threat);
* ``medical`` or ``account_security`` on any act but small talk → high-stakes (symptoms, medication, results;
  passwords, PINs, locked accounts, fraud);
* ``payment`` → high-stakes when the act does something with money or supplies it (transaction, complaint,
  data_collection, scheduling, complex_reasoning about a specific charge); a payment *question* (faq) or
  small talk is small-safe (fees, limits, supported cards);
* ``legal`` → high-stakes, except a question about terms (faq), which is the policy's call (standard);
* ``pii`` on a transaction (changing account details) → high-stakes; supplying a name or an address is a slot
  value and small-safe;
* a transaction without any risk, a complaint or a complex question without risk → standard;
* everything else → small-safe.

A row may override the derivation with its own ``contract`` column.
"""

from __future__ import annotations

from collections.abc import Iterable

HIGH_STAKES = "high_stakes"
SMALL_SAFE = "small_safe"
STANDARD = "standard"

_ACTS_ON_MONEY = frozenset({"transaction", "complaint", "data_collection", "scheduling", "complex_reasoning"})


def written_contract(intent: str, risks: Iterable[str]) -> str:
    present = set(risks)
    if "emergency" in present:
        return HIGH_STAKES
    if present & {"medical", "account_security"} and intent != "smalltalk":
        return HIGH_STAKES
    if "payment" in present and intent in _ACTS_ON_MONEY:
        return HIGH_STAKES
    if "legal" in present:
        return STANDARD if intent == "faq" else HIGH_STAKES
    if "pii" in present and intent == "transaction":
        return HIGH_STAKES
    if intent in {"transaction", "complaint", "complex_reasoning"}:
        return STANDARD
    return SMALL_SAFE


def stakes_target(contract: str) -> int | None:
    """1 for high-stakes, 0 for small-safe; ``None`` (not trained on) for standard turns, which the contract
    leaves to the policy: they teach the stakes head nothing either way."""
    if contract == HIGH_STAKES:
        return 1
    if contract == SMALL_SAFE:
        return 0
    return None
