"""The one form in which caller text is read for risks, and how much of it is read.

The detectors (``classifiers.detectors``) and the traffic-log redactor (``router.traffic.redact``) both read text
through :func:`fold`, so whatever a detector recognises the redactor finds and masks: a card number typed in
full-width digits or with a zero-width space after its first digit is the same card number to both.
:func:`fold_with_offsets` gives the redactor, besides the folded text, where each folded character came from.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

# How much of a turn the classifier reads: the head of the user's turn and the tail of the assistant turn before
# it. Detectors, the encoder and the keyword features cost time in proportion to the text (up to ~50 ms for the
# worst 2,048 characters); a spoken or typed turn is a few hundred characters, and the encoder reads only its
# first 256 tokens (about 1,000 characters) anyway.
MAX_TURN_CHARS = 2048


@lru_cache(maxsize=16_384)
def _fold_char(char: str) -> str:
    """One character folded: compatibility-decomposed (NFKD, so full-width and other compatibility forms become
    their plain letters and digits), case-folded (``ß`` is ``ss``, a final sigma a sigma), accents and other
    combining marks dropped, format characters (zero-width space and joiners, soft hyphen, bidi marks) dropped, any
    Unicode space a plain space and any decimal digit (Arabic-Indic, Devanagari, ...) its ASCII digit."""
    folded = []
    for part in unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", char).casefold()):
        if unicodedata.combining(part) or unicodedata.category(part) == "Cf":
            continue
        if part.isspace():
            folded.append(" ")
        elif (digit := unicodedata.decimal(part, None)) is not None:
            folded.append(str(digit))
        else:
            folded.append(part)
    return "".join(folded)


def fold(text: str) -> str:
    """``text`` as the detectors read it: every character folded (see ``_fold_char``), whitespace runs made one
    space, no leading or trailing space. Patterns over it can be written once in plain ASCII lowercase."""
    if text.isascii():  # the common case, and equal to the general one: ASCII has no marks or format characters
        return " ".join(text.lower().split())
    return " ".join("".join(map(_fold_char, text)).split())


def fold_with_offsets(text: str) -> tuple[str, list[int]]:
    """``fold(text)`` and, for each of its characters, the index in ``text`` of the character it came from."""
    chars: list[str] = []
    origins: list[int] = []
    for index, char in enumerate(text):
        for part in _fold_char(char):
            if part == " " and (not chars or chars[-1] == " "):
                continue
            chars.append(part)
            origins.append(index)
    if chars and chars[-1] == " ":
        chars.pop()
        origins.pop()
    return "".join(chars), origins
