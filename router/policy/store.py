"""Load, check, version and hot-reload policies; the running policy survives any bad file."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from router.config import GatewayConfig
from router.policy.engine import PolicyEngine, TierLadder
from router.policy.schema import Condition, Policy, Route
from router.yamlsource import ConfigFileError, YamlDocument

logger = logging.getLogger(__name__)

# Policies are a few kilobytes; a cap keeps a wrong path (a log, a dump) from being read whole and parsed.
MAX_POLICY_BYTES = 1024 * 1024


class Catalog(Protocol):
    """A tenant intent catalog as the gateway uses it (``classifiers.catalog.CatalogIndex``)."""

    @property
    def version(self) -> str: ...


CatalogLoader = Callable[[Path], Catalog]


@dataclass(frozen=True)
class LoadedPolicy:
    engine: PolicyEngine
    version: str
    path: Path
    loaded_at: float
    catalogs: Mapping[str | None, Catalog] = field(default_factory=dict)
    catalog_paths: tuple[Path, ...] = ()

    @property
    def policy(self) -> Policy:
        return self.engine.policy

    def catalog_for(self, tenant: str) -> Catalog | None:
        """The tenant's own catalog, else the shared one, else none."""
        return self.catalogs.get(tenant) or self.catalogs.get(None)


@dataclass(frozen=True)
class Vocabulary:
    """Labels a policy may name; empty collections accept anything."""

    intents: Collection[str] = ()
    risks: Collection[str] = ()


def policy_version(policy: Policy, sha256: str) -> str:
    return f"{policy.name or 'policy'}@{sha256[:12]}"


def check_policy(document: YamlDocument, policy: Policy, config: GatewayConfig, vocabulary: Vocabulary) -> None:
    """Semantic checks pydantic cannot do alone; raises at the offending line."""
    tiers = set(config.tiers)
    deployments = {d.name for d in config.deployments}

    def check_tier(loc: tuple[str | int, ...], tier: str | None) -> None:
        if tier is not None and tier not in tiers:
            raise document.error(loc, f"unknown tier '{tier}' (tiers: {', '.join(config.tiers)})")

    def check_route(loc: tuple[str | int, ...], route: Route) -> None:
        check_tier((*loc, "tier"), route.tier)
        if route.deployment is not None and route.deployment not in deployments:
            raise document.error((*loc, "deployment"), f"unknown deployment '{route.deployment}'")

    def check_labels(loc: tuple[str | int, ...], names: Collection[str], known: Collection[str], kind: str) -> None:
        for name in names:
            if known and name not in known and name != "default":
                raise document.error(loc, f"unknown {kind} '{name}' (known: {', '.join(sorted(known))})")

    def check_condition(loc: tuple[str | int, ...], condition: Condition) -> None:
        check_labels((*loc, "intent"), condition.intent or (), vocabulary.intents, "intent")
        if condition.risk is not None:
            risk = condition.risk
            check_labels((*loc, "risk"), [*risk.any, *risk.all, *risk.none], vocabulary.risks, "risk")
        if condition.call is not None:
            check_tier((*loc, "call", "reached_tier"), condition.call.reached_tier)
            check_labels((*loc, "call", "risks_seen"), condition.call.risks_seen or (), vocabulary.risks, "risk")
        for key in ("any_of", "all_of"):
            for index, child in enumerate(getattr(condition, key) or ()):
                check_condition((*loc, key, index), child)
        if condition.not_ is not None:
            check_condition((*loc, "not"), condition.not_)

    check_route(("default",), policy.default)
    check_tier(("floor", "high_stakes"), policy.floor.high_stakes)
    for risk, tier in policy.floor.risks.items():
        check_tier(("floor", "risks", risk), tier)
    check_labels(("floor", "risks"), policy.floor.risks, vocabulary.risks, "risk")
    check_labels(("thresholds",), policy.thresholds, vocabulary.risks, "risk")
    if policy.low_confidence is not None:
        check_tier(("low_confidence", "escalate_to"), policy.low_confidence.escalate_to)
    if policy.classifier_failure is not None:
        check_route(("classifier_failure",), policy.classifier_failure)
    if policy.stickiness is not None:
        check_tier(("stickiness", "from_tier"), policy.stickiness.from_tier)
    if policy.budget_downgrade is not None:
        check_tier(("budget_downgrade", "tier"), policy.budget_downgrade.tier)
    unconditional: str | None = None
    for index, rule in enumerate(policy.rules):
        loc: tuple[str | int, ...] = ("rules", index)
        if unconditional is not None:
            raise document.error(loc, f"rule '{rule.name}' is unreachable: rule '{unconditional}' matches every turn")
        check_condition((*loc, "when"), rule.when)
        check_route((*loc, "route"), rule.route)
        if rule.when.is_unconditional:
            unconditional = rule.name
    for index, handoff in enumerate(policy.handoff):
        check_condition(("handoff", index, "when"), handoff.when)


def load_policy(
    path: Path,
    config: GatewayConfig,
    vocabulary: Vocabulary = Vocabulary(),
    catalog_loader: CatalogLoader | None = None,
) -> LoadedPolicy:
    """Parse, validate and compile a policy file (and its catalogs); errors name the file, line and reason."""
    document = YamlDocument.from_path(path, max_bytes=MAX_POLICY_BYTES)
    policy = document.validate(Policy)
    check_policy(document, policy, config, vocabulary)
    catalogs: dict[str | None, Catalog] = {}
    refs = policy.catalogs
    if refs is not None:
        wanted: list[tuple[tuple[str | int, ...], str | None, str]] = [
            (("catalogs", "tenants", tenant), tenant, ref) for tenant, ref in refs.tenants.items()
        ]
        if refs.shared is not None:
            wanted.append((("catalogs", "shared"), None, refs.shared))
        for loc, tenant, ref in wanted:
            catalog_path = (path.parent / ref).resolve()
            if catalog_loader is None:
                raise document.error(loc, "catalogs need the classifier (SWITCHBOARD_CLASSIFIER=on)")
            if not catalog_path.is_file():
                raise document.error(loc, f"no catalog file at {catalog_path}")
            catalogs[tenant] = catalog_loader(catalog_path)  # raises ConfigFileError at the catalog's own line
    version = policy_version(policy, document.sha256)
    if catalogs:
        digest = hashlib.sha256("".join(sorted(c.version for c in catalogs.values())).encode()).hexdigest()
        version = f"{version}+{digest[:8]}"
    engine = PolicyEngine(policy, TierLadder(config.tiers), [d.name for d in config.deployments])
    paths = tuple(sorted({(path.parent / ref).resolve() for _, _, ref in wanted})) if refs is not None else ()
    return LoadedPolicy(engine, version, path, time.time(), catalogs, paths)


class PolicyStore:
    """The active policy (and optional shadow) with reload-on-change; a failed reload keeps the old one."""

    def __init__(
        self,
        path: Path,
        config: GatewayConfig,
        vocabulary: Vocabulary = Vocabulary(),
        shadow_path: Path | None = None,
        on_change: Callable[[LoadedPolicy], None] | None = None,
        catalog_loader: CatalogLoader | None = None,
    ) -> None:
        self._config = config
        self._vocabulary = vocabulary
        self._catalog_loader = catalog_loader
        self.on_change = on_change
        self.active = self._load(path)
        self.folder = path.resolve().parent  # the only folder reloads may name other policy files in
        self.shadow = self._load(shadow_path) if shadow_path else None
        self.last_error: str | None = None
        self._mtimes = self._current_mtimes()

    def _load(self, path: Path) -> LoadedPolicy:
        return load_policy(path, self._config, self._vocabulary, self._catalog_loader)

    def _current_mtimes(self) -> tuple[float | None, ...]:
        loaded = [self.active] + ([self.shadow] if self.shadow else [])
        return tuple(_mtime(p) for policy in loaded for p in (policy.path, *policy.catalog_paths))

    def reload(self, path: Path | None = None) -> LoadedPolicy:
        """Reload the active policy (from ``path`` if given) and the shadow; raise and keep the old on error."""
        try:
            candidate = self._load(path or self.active.path)
            shadow = self._load(self.shadow.path) if self.shadow else None
        except ConfigFileError as exc:
            self.last_error = str(exc)
            logger.error("policy reload rejected, keeping %s: %s", self.active.version, exc)
            raise
        changed = candidate.version != self.active.version
        self.active, self.shadow, self.last_error = candidate, shadow, None
        self._mtimes = self._current_mtimes()
        if changed:
            logger.info("policy %s is active", candidate.version)
        if self.on_change is not None:
            self.on_change(candidate)
        return candidate

    async def watch(self, interval_seconds: float = 1.0) -> None:
        """Poll the files' modification times and reload on change (runs until cancelled)."""
        while True:
            await asyncio.sleep(interval_seconds)
            mtimes = self._current_mtimes()
            if mtimes != self._mtimes:
                self._mtimes = mtimes
                with contextlib.suppress(ConfigFileError):  # logged by reload; the running policy stays
                    self.reload()


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None
