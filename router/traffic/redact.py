"""Mask personal data in logged messages, and put stand-ins back before a replay classifies them.

The PII detectors of ``classifiers.detectors`` decide *whether* a text holds a card number, an IBAN, a date of
birth and so on, but not *where*. This module finds the spans for each detector that fired, reusing the
detectors' own checks (Luhn, mod-97, the spoken-digit vocabulary), replaces them with a placeholder such as
``[CARD]``, and then runs the detectors again on the result: a text on which any PII detector still fires has
every number masked, and if even that is not enough, the whole text becomes the placeholder of what still fires
(``[NAME]`` for "it's Maria Garcia" answering "what's your name?": the detector takes the whole answer for a
name). So a logged message never holds anything the detectors recognise as personal data.

A replay must classify a turn as the live gateway did, and the live classifier saw the real number, not
``[CARD]``: :func:`with_stand_ins` swaps each placeholder for a fixed, obviously fake value that fires the same
detector (a test card number, the textbook IBAN, ...). Masking replaces only the value, so the cues some detectors
need ("my date of birth is", "account number") stay in the text, and the replayed turn carries the same forced
risks as the live one.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from classifiers import regex
from classifiers.detectors import detect, iban_valid, luhn_valid
from classifiers.normalise import MAX_TURN_CHARS, fold_with_offsets
from classifiers.spoken import FILLERS, REPEATS, TEENS, TENS, TOKEN, UNITS

# Detector name → placeholder, most specific first (where spans of two detectors overlap, the first names it),
# and the stand-in that makes the same detector fire in a replay.
PLACEHOLDERS = {
    "card_number": "[CARD]",
    "iban": "[IBAN]",
    "national_id": "[SSN]",
    "email": "[EMAIL]",
    "phone_number": "[PHONE]",
    "date_of_birth": "[DOB]",
    "postal_address": "[ADDRESS]",
    "personal_name": "[NAME]",
    "bank_account": "[ACCOUNT]",
    "card_security_code": "[CVV]",
}
_PRIORITY = {placeholder: rank for rank, placeholder in enumerate(PLACEHOLDERS.values())}
STAND_INS = {
    "[CARD]": "4111 1111 1111 1111",
    "[CVV]": "123",
    "[IBAN]": "GB82 WEST 1234 5698 7654 32",
    "[ACCOUNT]": "12345678",
    "[SSN]": "123-45-6789",
    "[DOB]": "March 4, 1987",
    "[EMAIL]": "jane.doe@example.com",
    "[PHONE]": "(555) 010-0199",
    "[ADDRESS]": "12 Maple Street",
    "[NAME]": "my name is Jane Doe",
}
# Digit runs this long are masked when the spans of the detectors that fired were not enough.
FALLBACK_MIN_DIGITS = 3
_STAND_IN = regex.compile("|".join(regex.escape(placeholder) for placeholder in STAND_INS))

_NUMBER_SEPARATORS = frozenset({"-", ".", "/", "(", ")", "+", ","})
_IBAN = regex.compile(r"\b[a-z]{2}\d{2}(?: ?[a-z0-9]){11,30}\b")
# RE2 has no lookarounds: the character before a value is part of the match (the value is group 1), and the one
# after it is checked by ``_isolated``.
_SSN = regex.compile(r"(?:^|[^\d-])(\d{3}[- ]\d{2}[- ]\d{4})")
_EMAIL = regex.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_SPOKEN_FILLER = rf"(?:\s+(?:{'|'.join(FILLERS)}))*"
# "jane dot doe two at example dot com", "jane at gmail": the local part, "at", then a domain with a top-level
# domain or a well-known mail provider (the detector accepts either).
_SPOKEN_EMAIL = regex.compile(
    rf"\b[a-z0-9]+(?:\s+(?:dot|underscore|dash)\s+[a-z0-9]+)*(?:\s+(?:{'|'.join(UNITS)}))*{_SPOKEN_FILLER}"
    rf"\s+(?:at|arroba)\s+(?:[a-z0-9-]+(?:{_SPOKEN_FILLER}\s+dot\s+[a-z0-9-]+)*{_SPOKEN_FILLER}\s+dot\s+[a-z]{{2,4}}\b"
    r"|(?:gmail|googlemail|yahoo|hotmail|outlook|icloud|aol|protonmail|proton|live|msn)\b)"
)
_PHONE = regex.compile(r"(?:^|[^\w-])((?:\+\d{1,3}[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4})")
_WORD_OR_HYPHEN = regex.compile(r"[\w-]")
_DIGIT_OR_HYPHEN = regex.compile(r"[\d-]")
_MONTHS = frozenset(
    [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
    ]
)
_ORDINAL_WORDS = frozenset(
    [
        "first",
        "second",
        "third",
        "fourth",
        "fifth",
        "sixth",
        "seventh",
        "eighth",
        "ninth",
        "tenth",
        "eleventh",
        "twelfth",
        "thirteenth",
        "fourteenth",
        "fifteenth",
        "sixteenth",
        "seventeenth",
        "eighteenth",
        "nineteenth",
        "twentieth",
        "thirtieth",
    ]
)
_NUMBER_WORDS = frozenset(UNITS) | frozenset(TEENS) | frozenset(TENS)
_ORDINAL_SUFFIXES = frozenset({"st", "nd", "rd", "th"})
# Words that may sit inside a spoken date without being one: "the 4th of march", "two thousand and five", fillers.
_DATE_GLUE = (
    frozenset({"of", "the", "and", "hundred", "thousand", "/", "-", ".", ",", "you", "know", "i", "mean"})
    | frozenset(FILLERS)
    | _ORDINAL_SUFFIXES
)


@dataclass(frozen=True, slots=True)
class Group:
    """One group of a digit run: its digits and where it sits in the text."""

    digits: str
    start: int
    end: int


@lru_cache(maxsize=4)  # each detector that fired asks again for the same window
def digit_groups(folded: str) -> tuple[tuple[Group, ...], ...]:
    """The digit runs of a folded text (``classifiers.normalise.fold``), typed or spoken, with the position of
    every group.

    Follows ``classifiers.spoken.digit_runs`` token for token (same vocabulary, fillers and separators), so a run
    the detectors see is a run found here.
    """
    runs: list[tuple[Group, ...]] = []
    groups: list[Group] = []
    repeat, repeat_start = 1, None
    tokens = list(TOKEN.finditer(folded))
    index = 0
    while index < len(tokens):
        token = tokens[index]
        word = token.group()
        following = tokens[index + 1].group() if index + 1 < len(tokens) else ""
        start = repeat_start if repeat_start is not None else token.start()
        if word.isdigit():
            groups.append(Group(word * repeat if len(word) == 1 else word, start, token.end()))
        elif word in TENS:
            if following in UNITS and UNITS[following] != "0":
                groups.append(Group(TENS[word] + UNITS[following], start, tokens[index + 1].end()))
                index += 1
            else:
                groups.append(Group(TENS[word] + "0", start, token.end()))
        elif word in TEENS:
            groups.append(Group(TEENS[word], start, token.end()))
        elif word in UNITS:
            groups.append(Group(UNITS[word] * repeat, start, token.end()))
        elif word in REPEATS:
            repeat, repeat_start = REPEATS[word], token.start()
            index += 1
            continue
        elif word not in FILLERS and word not in _NUMBER_SEPARATORS and groups:
            runs.append(tuple(groups))
            groups = []
        repeat, repeat_start = 1, None
        index += 1
    if groups:
        runs.append(tuple(groups))
    return tuple(runs)


def _windows(run: tuple[Group, ...], min_length: int, max_length: int) -> Iterator[str]:
    """The digits of every contiguous span of groups with a length within the bounds."""
    for first in range(len(run)):
        digits = ""
        for last in range(first, len(run)):
            digits += run[last].digits
            if len(digits) > max_length:
                break
            if len(digits) >= min_length:
                yield digits


def _card_spans(folded: str) -> Iterator[tuple[int, int]]:
    """Whole digit runs holding a Luhn-valid window: the rest of such a run is usually the expiry or CVV."""
    for run in digit_groups(folded):
        if any(len(set(digits)) > 1 and luhn_valid(digits) for digits in _windows(run, 13, 19)):
            yield run[0].start, run[-1].end


def _runs_with_digits(folded: str, min_digits: int, max_digits: int = 64) -> Iterator[tuple[int, int]]:
    for run in digit_groups(folded):
        if min_digits <= sum(len(group.digits) for group in run) <= max_digits:
            yield run[0].start, run[-1].end


def _iban_spans(folded: str) -> Iterator[tuple[int, int]]:
    for match in _IBAN.finditer(folded):
        positions = [match.start() + i for i, char in enumerate(match.group()) if char != " "]
        compact = match.group().replace(" ", "")
        for end in range(len(compact), 14, -1):
            if iban_valid(compact[:end]):
                yield positions[0], positions[end - 1] + 1
                break


def _date_spans(folded: str) -> Iterator[tuple[int, int]]:
    """Maximal stretches of date words and numbers ("the 4th of march 1987") that are shaped like a date."""
    tokens = list(TOKEN.finditer(folded))
    index = 0
    while index < len(tokens):
        stretch = []
        while index < len(tokens) and _is_date_token(tokens[index].group()):
            stretch.append(tokens[index])
            index += 1
        while stretch and stretch[0].group() in _DATE_GLUE:
            stretch.pop(0)
        while stretch and stretch[-1].group() in _DATE_GLUE - _ORDINAL_SUFFIXES:
            stretch.pop()
        if stretch and _date_shaped([token.group() for token in stretch]):
            yield stretch[0].start(), stretch[-1].end()
        index += 1


def _date_shaped(words: list[str]) -> bool:
    """A month or ordinal, a year, a typed d/m/y, or at least three spoken numbers: "911" alone is not a date."""
    digits = [word for word in words if word.isdigit()]
    return bool(
        set(words) & (_MONTHS | _ORDINAL_WORDS)
        or any(len(number) == 4 and number[:2] in ("19", "20") for number in digits)
        or len(digits) >= 3
        or sum(word in _NUMBER_WORDS for word in words) >= 3
    )


def _is_date_token(word: str) -> bool:
    return word.isdigit() or word in _MONTHS or word in _ORDINAL_WORDS or word in _DATE_GLUE or word in _NUMBER_WORDS


# Where a caller introduces a name ("my name is", "under the name"); the name is the next one to three words.
_NAME_INTRO = regex.compile(
    r"\b(?:my name is|my name's|name is|under the name|surname is|the (?:account holder|patient|recipient|"
    r"cardholder|policy holder) is|this is|me llamo|mi nombre es|ich heisse|mein name ist|je m'appelle|"
    r"mon nom est|meu nome e|me chamo|mera naam)\s+"
)
# The name after an introduction: up to three words, stopping at a word that starts the next clause.
_NAME_WORD = regex.compile(r"[a-z][a-z'-]*")
_NEXT_NAME_WORD = regex.compile(r"\s+([a-z]+)[a-z'-]*")
_NOT_NAME_WORDS = frozenset({"and", "from", "i", "calling", "speaking"})
_ANSWER_LEAD = regex.compile(
    r"^(?:\s*(?:yes|yeah|sure|okay|ok|so|well|it's|its|it is|that's|i'm|i am|this is|uh|um|er|hmm|"
    r"like|you know|i mean|right)\b[,.]?)*\s*"
)
_STREET_WORDS = (
    "street|st|avenue|ave|road|rd|drive|lane|ln|boulevard|blvd|way|court|ct|place|pl|terrace|crescent|close"
    "|highway|hwy|parkway|pkwy|circle|square"
)
_SPOKEN_NUMBER = "|".join([*UNITS, *TEENS, *TENS, "hundred", "thousand"])
_STREET_ADDRESS = regex.compile(
    rf"\b(?:(?:\d{{1,5}}[a-z]?|{_SPOKEN_NUMBER})[ -]?)+\s+(?:[a-z]+\s+){{1,3}}(?:{_STREET_WORDS})\b"
    r"|\b[a-z]{1,2}\d[a-z\d]? \d[a-z]{2}\b"
)


def _isolated(matches: Iterable[regex.Match], text: str, not_after: regex.Pattern) -> Iterator[tuple[int, int]]:
    """The spans of group 1 of ``matches`` not followed by a character ``not_after`` matches."""
    for match in matches:
        start, end = match.span(1)
        if not not_after.match(text, end):
            yield start, end


def _name_end(folded: str, start: int) -> int | None:
    """Where the name that starts at ``start`` ends: its first word and up to two more."""
    word = _NAME_WORD.match(folded, start)
    if word is None:
        return None
    end = word.end()
    for _ in range(2):
        following = _NEXT_NAME_WORD.match(folded, end)
        if following is None or following.group(1) in _NOT_NAME_WORDS:
            break
        end = following.end()
    return end


def _name_spans(folded: str) -> Iterator[tuple[int, int]]:
    """A name introduction with the words it introduces (some introductions alone make the detector fire), or,
    for an answer to "what's your name?", the answer itself."""
    introduced = False
    for intro in _NAME_INTRO.finditer(folded):
        end = _name_end(folded, intro.end())
        if end is not None:
            introduced = True
            yield intro.start(), end
    if not introduced:
        start = _ANSWER_LEAD.match(folded).end()  # type: ignore[union-attr]  # the pattern matches empty text
        end = len(folded.rstrip(" .,!?"))
        if start < end:
            yield start, end


def _spans(detector: str, folded: str) -> Iterator[tuple[int, int]]:
    if detector == "card_number":
        yield from _card_spans(folded)
    elif detector == "card_security_code":
        yield from _runs_with_digits(folded, 3, 4)
    elif detector == "iban":
        yield from _iban_spans(folded)
    elif detector == "bank_account":
        yield from _runs_with_digits(folded, 6)
    elif detector == "national_id":
        found = list(_isolated(_SSN.finditer(folded), folded, _DIGIT_OR_HYPHEN))
        yield from found or _runs_with_digits(folded, 4)
    elif detector == "date_of_birth":
        yield from _date_spans(folded)
    elif detector == "email":
        yield from (m.span() for m in _EMAIL.finditer(folded))
        yield from (m.span() for m in _SPOKEN_EMAIL.finditer(folded))
    elif detector == "phone_number":
        found = list(_isolated(_PHONE.finditer(folded), folded, _WORD_OR_HYPHEN))
        yield from found or _runs_with_digits(folded, 7, 15)
    elif detector == "postal_address":
        found = [m.span() for m in _STREET_ADDRESS.finditer(folded)]
        yield from found or _runs_with_digits(folded, 1)
    elif detector == "personal_name":
        yield from _name_spans(folded)


def _replace(text: str, spans: list[tuple[int, int, str]]) -> str:
    """``text`` with each span replaced by its placeholder; overlapping spans merge under the most specific name."""
    pieces, cursor = [], 0
    for start, end, placeholder in sorted(spans, key=lambda span: (span[0], _PRIORITY.get(span[2], len(_PRIORITY)))):
        if start < cursor:
            if end > cursor:
                cursor = end
            continue
        pieces += [text[cursor:start], placeholder]
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)


def _pii_detectors(text: str, context: str) -> list[str]:
    return list(dict.fromkeys(hit.name for hit in detect(text, context) if "pii" in hit.risks))


class Redactor:
    """Masks PII in message texts; remembers recent texts, since every turn of a call resends the history."""

    def __init__(self, cache_size: int = 8192) -> None:
        self._cache: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._cache_size = cache_size

    def mask(self, text: str, context: str = "") -> str:
        """``text`` with personal data replaced by placeholders; ``context`` is the message it answers."""
        key = (text, context)
        masked = self._cache.get(key)
        if masked is None:
            masked = self._mask(text, context)
            self._cache[key] = masked
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return masked

    @staticmethod
    def _mask(text: str, context: str) -> str:
        if len(text) > 2 * MAX_TURN_CHARS:
            # Logged as what the classifier reads of a user turn (its head) and of an assistant turn (its tail),
            # each cut from a masked stretch a little longer, so no value is cut in two before it is masked.
            reach = MAX_TURN_CHARS + _STRADDLE_CHARS
            head = _mask_windows(text[:reach], context)[:MAX_TURN_CHARS]
            tail = _mask_windows(text[-reach:], context)[-MAX_TURN_CHARS:]
            return f"{head} [{len(text) - 2 * MAX_TURN_CHARS} characters not logged] {tail}"
        return _mask_windows(text, context)


# Detectors read MAX_TURN_CHARS at a time, so a longer text is masked in windows of that size, each overlapping
# the next by twice this: any value shorter (at most 64 digits, an IBAN, an address line) is whole in one window.
# A text longer than two windows is logged as its head and tail only, so masking a message costs at most four
# windows; a replay's prompt_tokens fact for such a message is lower than the live one.
_STRADDLE_CHARS = 256


def _text_windows(length: int) -> list[tuple[int, int]]:
    """Windows of at most ``MAX_TURN_CHARS`` covering ``[0, length)``, each overlapping the next."""
    step = MAX_TURN_CHARS - 2 * _STRADDLE_CHARS
    return [
        (start, min(start + MAX_TURN_CHARS, length)) for start in range(0, max(length - 2 * _STRADDLE_CHARS, 1), step)
    ]


def _mask_windows(text: str, context: str) -> str:
    """Mask what the detectors find (see the docstring of this module), window by window."""
    spans = [
        (offset + start, offset + end, PLACEHOLDERS[name])
        for offset, stop in _text_windows(len(text))
        for name in _pii_detectors(text[offset:stop], context)
        for start, end in _in_original(text[offset:stop], functools.partial(_spans, name))
    ]
    masked = _replace(text, spans)
    numbers = [
        (offset + start, offset + end, "[NUMBER]")
        for offset, stop in _text_windows(len(masked))
        if _unmasked(masked[offset:stop], context)
        for start, end in _in_original(
            masked[offset:stop], lambda folded: _runs_with_digits(folded, FALLBACK_MIN_DIGITS)
        )
    ]
    masked = _replace(masked, numbers)
    remaining = [
        (offset, stop, PLACEHOLDERS[unmasked[0]])
        for offset, stop in _text_windows(len(masked))
        if (unmasked := _unmasked(masked[offset:stop], context))
    ]
    return _replace(masked, remaining)


def _in_original(text: str, find: Callable[[str], Iterable[tuple[int, int]]]) -> list[tuple[int, int]]:
    """The spans ``find`` reports in ``text`` as the detectors read it (``fold``-ed), as spans of ``text`` itself.

    A span covers every character its folded characters came from, and what folding dropped between them: the
    zero-width space inside a card number is masked with the number.
    """
    folded, origins = fold_with_offsets(text)
    return [(origins[start], origins[end - 1] + 1) for start, end in find(folded) if start < end]


def _unmasked(masked: str, context: str) -> list[str]:
    """The detectors that still find personal data. A date-of-birth hit alone does not count: that detector
    also fires on a date cue followed by a month name or by "for" (read as the digit four), neither of which
    identifies anyone, and every date-shaped stretch after it has been masked already."""
    return [name for name in _pii_detectors(masked, context) if name != "date_of_birth"]


def with_stand_ins(text: str) -> str:
    """A masked text with each placeholder replaced by a fake value that fires the same detector."""
    return _STAND_IN.sub(lambda match: STAND_INS[match.group()], text)
