"""Digit sequences as people type them and as speech recognisers transcribe them.

"4111-1111 1111 1111", "four one one one one one one one ...", "double four", "oh" for zero and fillers
("uh", "um") in the middle of a number all become one ``DigitRun`` whose groups keep the token boundaries,
so detectors can check any contiguous window of groups (a card number inside a longer run, for example).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from classifiers import regex

UNITS = {
    "zero": "0",
    "oh": "0",
    "o": "0",
    "nought": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "for": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
TEENS = {
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
    "thirteen": "13",
    "fourteen": "14",
    "fifteen": "15",
    "sixteen": "16",
    "seventeen": "17",
    "eighteen": "18",
    "nineteen": "19",
}
TENS = {
    "twenty": "2",
    "thirty": "3",
    "forty": "4",
    "fifty": "5",
    "sixty": "6",
    "seventy": "7",
    "eighty": "8",
    "ninety": "9",
}
REPEATS = {"double": 2, "triple": 3}
# Skipped inside a number; "and" is not among them, so "order 12345 and 67890" stays two numbers.
FILLERS = frozenset({"uh", "um", "er", "erm", "ah", "hmm", "mm", "like"})

# A word, a number or one other character of folded text; ``router.traffic.redact`` reads text in the same tokens.
TOKEN = regex.compile(r"[a-z]+|\d+|[^\sa-z\d]")
_SEPARATORS = frozenset({"-", ".", "/", "(", ")", "+", ","})


@dataclass(frozen=True)
class DigitRun:
    """Consecutive digit groups; ``spoken`` when any group came from words."""

    groups: tuple[str, ...]
    spoken: bool

    @property
    def digits(self) -> str:
        return "".join(self.groups)

    def windows(self, min_length: int, max_length: int) -> list[str]:
        """Digit strings of every contiguous span of groups whose length is within the bounds."""
        found = []
        for start in range(len(self.groups)):
            length = 0
            for end in range(start, len(self.groups)):
                length += len(self.groups[end])
                if length > max_length:
                    break
                if length >= min_length:
                    found.append("".join(self.groups[start : end + 1]))
        return found


@lru_cache(maxsize=4)  # most detectors ask for the runs of the same turn
def digit_runs(text: str) -> tuple[DigitRun, ...]:
    """Every maximal run of digits in ``text`` (already ``classifiers.normalise.fold``-ed), typed or spoken,
    fillers and separators skipped.

    Ordinary words that double as digits ("oh", "for") may add a stray group at the edge of a run; detectors
    look at windows of groups, so that does not hide a number.
    """
    runs: list[DigitRun] = []
    groups: list[str] = []
    spoken = False
    repeat = 1
    tokens = TOKEN.findall(text)
    index = 0
    while index < len(tokens):
        token = tokens[index]
        following = tokens[index + 1] if index + 1 < len(tokens) else ""
        if token.isdigit():
            groups.append(token * repeat if len(token) == 1 else token)
            repeat = 1
        elif token in TENS:
            if following in UNITS and UNITS[following] != "0":
                groups.append(TENS[token] + UNITS[following])
                index += 1
            else:
                groups.append(TENS[token] + "0")
            spoken = True
        elif token in TEENS:
            groups.append(TEENS[token])
            spoken = True
        elif token in UNITS:
            groups.append(UNITS[token] * repeat)
            repeat = 1
            spoken = True
        elif token in REPEATS:
            repeat = REPEATS[token]
        elif token not in FILLERS and token not in _SEPARATORS:
            if groups:
                runs.append(DigitRun(tuple(groups), spoken))
            groups, spoken, repeat = [], False, 1
        index += 1
    if groups:
        runs.append(DigitRun(tuple(groups), spoken))
    return tuple(runs)
