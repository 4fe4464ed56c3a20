"""What the encoder and the heads read: caller text with disguises undone.

Callers (and people probing the router) write "sum1 hakked my acount", "p4ssw0rd" or "саrd" with Cyrillic
look-alike letters. The encoder has never seen those spellings, so the turn reads as harmless. ``fold_disguises``
maps them back to the plain words before classification:

* NFKC, then zero-width and other format characters removed (they split words invisibly);
* confusable skeleton: Cyrillic and Greek letters that look like Latin ones become Latin, inside words that are
  mostly Latin or in texts that are mostly Latin (a Russian sentence stays Russian);
* leetspeak: a digit or ``@``/``$`` standing between letters becomes the letter it imitates ("p4ssw0rd"),
  and a few whole-word shorthands ("sum1", "u", "pls") are spelled out;
* a short list of common misspellings of the words the routing contract turns on ("acount", "hakked").

Digits standing alone or at a word's edge ("4111 1111", "10am", "2nd") are never touched: the number detectors
read the digit-bearing original anyway, and folding must not invent or destroy a number.
All patterns are single character classes or literal alternations: linear time on any input.
"""

from __future__ import annotations

from classifiers import regex
from classifiers.schemas import normalise_text

# Cyrillic and Greek lower-case letters (after lower-casing) that render like a Latin letter.
CONFUSABLES: dict[str, str] = {
    # Cyrillic
    "а": "a",
    "в": "b",
    "с": "c",
    "ԁ": "d",
    "е": "e",
    "ё": "e",
    "һ": "h",
    "і": "i",
    "ї": "i",
    "ј": "j",
    "к": "k",
    "ӏ": "l",
    "м": "m",
    "н": "h",
    "о": "o",
    "р": "p",
    "ԛ": "q",
    "г": "r",
    "ѕ": "s",
    "т": "t",
    "ս": "u",
    "ѵ": "v",
    "ԝ": "w",
    "х": "x",
    "у": "y",
    "з": "3",
    # Greek
    "α": "a",
    "β": "b",
    "ε": "e",
    "η": "n",
    "ι": "i",
    "κ": "k",
    "ν": "v",
    "ο": "o",
    "ρ": "p",
    "τ": "t",
    "υ": "u",
    "χ": "x",
    "γ": "y",
}
_CONFUSABLE_TABLE = str.maketrans(CONFUSABLES)

# Up to three digits or symbols between two letters imitate the letters they look like ("n33d", "cl41m").
LEET: dict[str, str] = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a", "$": "s"}
# RE2 has no lookarounds: runs are found by the pattern, their neighbours checked in Python.
_LEET_RUN = regex.compile(r"[0134578@$]+")
_MAX_LEET_RUN = 3
_ASCII_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")

# Whole-word shorthands and misspellings, applied after the character folding above.
WORDS: dict[str, str] = {
    "sum1": "someone",
    "some1": "someone",
    "any1": "anyone",
    "every1": "everyone",
    "no1": "no one",
    "u": "you",
    "ur": "your",
    "r": "are",
    "pls": "please",
    "plz": "please",
    "thx": "thanks",
    "b4": "before",
    "2day": "today",
    "2moro": "tomorrow",
    "2morrow": "tomorrow",
    "acct": "account",
    "acount": "account",
    "accout": "account",
    "accnt": "account",
    "hakked": "hacked",
    "hakd": "hacked",
    "hacke": "hacked",
    "haked": "hacked",
    "pasword": "password",
    "passwrd": "password",
    "paswd": "password",
    "passwd": "password",
    "stolan": "stolen",
    "stollen": "stolen",
    "frod": "fraud",
    "withdrawl": "withdrawal",
    "transfered": "transferred",
    "refnd": "refund",
    "cahrge": "charge",
    "chrage": "charge",
    "unauthorised": "unauthorized",
    "perscription": "prescription",
    "prescripton": "prescription",
    "medicaton": "medication",
    "emergancy": "emergency",
    "emergensy": "emergency",
    "ambulence": "ambulance",
    "bleding": "bleeding",
    "claime": "claim",
    "insurence": "insurance",
    "lawer": "lawyer",
}
_WORD = regex.compile(r"[a-z0-9]+")
_LATIN_LETTER = regex.compile(r"[a-z]")
_CONFUSABLE_LETTER = regex.compile("[" + "".join(CONFUSABLES) + "]")


def skeleton(text: str) -> str:
    """Look-alike Cyrillic/Greek letters as Latin, when the text is mostly Latin script.

    A text where look-alikes are at least as many as Latin letters (a Russian or Greek sentence) is left as it is:
    folding it would turn a real language into nonsense rather than undo a disguise.
    """
    if text.isascii():  # the common case: look-alikes are all outside ASCII
        return text
    latin = len(_LATIN_LETTER.findall(text))
    confusable = len(_CONFUSABLE_LETTER.findall(text))
    if confusable == 0 or confusable >= latin:
        return text
    return text.translate(_CONFUSABLE_TABLE)


def _unleet_token(token: str) -> str:
    """Digits or symbols standing for letters: up to three between two letters ("n33d", "cl41m"), or a symbol
    opening a word before a letter ("$cam", "@ccount")."""
    if "@" in token and "." in token:  # an e-mail address or a domain, not a disguise
        return token
    chars = list(token)
    for match in _LEET_RUN.finditer(token):
        start, end = match.span()
        before = token[start - 1] if start else ""
        after = token[end] if end < len(token) else ""
        if after not in _ASCII_LOWER:
            continue
        if before in _ASCII_LOWER and end - start <= _MAX_LEET_RUN:
            chars[start:end] = [LEET[char] for char in token[start:end]]
        elif token[start] in "@$" and not (before.isalnum() or before == "_"):
            chars[start] = LEET[token[start]]
    return "".join(chars)


def undo_leetspeak(text: str) -> str:
    folded = " ".join(_unleet_token(token) for token in text.split())
    return _WORD.sub(lambda m: WORDS.get(m.group(), m.group()), folded)


def fold_disguises(text: str) -> str:
    """The text the encoder and the learned heads classify: the classifier's normal form (NFKC, no format
    characters, lower case, single spaces) with look-alike letters, leetspeak and shorthand undone."""
    return " ".join(undo_leetspeak(skeleton(normalise_text(text))).split())
