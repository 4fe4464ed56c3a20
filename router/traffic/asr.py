"""What a speech recogniser makes of a caller: lower case, lost punctuation, fillers, digits read out as words.

Each call gets an :class:`AsrProfile` (one recogniser on one phone line), and every caller utterance of the call is
passed through it. The confidence the recogniser reports falls with the noise it introduced.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEEN_WORDS = (
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
)
TENS_WORDS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
ORDINAL_WORDS = (
    "zeroth",
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
)
FILLERS = ("uh", "um", "like", "you know", "er", "hmm", "i mean")
# What people say while reading out a number: a hesitation, not a phrase.
NUMBER_FILLERS = ("uh", "um", "er")
_NUMBER_WORDS = frozenset(DIGIT_WORDS + TEEN_WORDS + TENS_WORDS[2:] + ("oh", "double", "hundred", "thousand"))
SENTENCE_FILLERS = ("yeah so", "okay so", "right so", "um yeah", "so basically", "uh")

_MONEY = re.compile(r"\$(\d+)(?:\.(\d{2}))?")
_CLOCK = re.compile(r"\b(\d{1,2}):(\d{2})\s*(am|pm)\b", re.IGNORECASE)
_EMAIL = re.compile(r"\b([\w.]+)@([\w-]+)\.([\w.]+)\b")
_ORDINAL = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)\b")
# A year after a word, a comma or a slash ("March 4, 1987"); not a group of a card number.
_YEAR = re.compile(r"(?:(?<=[A-Za-z] )|(?<=, )|(?<=/))(19[3-9]\d|20[0-2]\d)\b")
# Codes mixing letters and digits (tracking numbers, invoice ids, IBANs) are spelled out character by character.
_CODE = re.compile(r"\b(?=[A-Za-z0-9-]*\d)(?=[A-Za-z0-9-]*[A-Za-z])[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*\b")
_DIGITS = re.compile(r"\d+")
_PUNCTUATION = re.compile(r"[^\w\s'$@.:/-]|(?<!\w)[.:/-]|[.:/-](?!\w)")
_SPACES = re.compile(r"\s+")


def number_words(value: int) -> str:
    """English words for 0..9999 the way amounts are said ("four hundred and twelve")."""
    if value < 10:
        return DIGIT_WORDS[value]
    if value < 20:
        return TEEN_WORDS[value - 10]
    if value < 100:
        tens, units = divmod(value, 10)
        return TENS_WORDS[tens] + (f" {DIGIT_WORDS[units]}" if units else "")
    if value < 1000:
        hundreds, rest = divmod(value, 100)
        return f"{DIGIT_WORDS[hundreds]} hundred" + (f" and {number_words(rest)}" if rest else "")
    thousands, rest = divmod(value, 1000)
    joiner = " and " if 0 < rest < 100 else " "
    return f"{number_words(thousands)} thousand" + (f"{joiner}{number_words(rest)}" if rest else "")


def ordinal_words(value: int) -> str:
    """ "fourth", "twenty first", "thirtieth" (1..99)."""
    if value < 20:
        return ORDINAL_WORDS[value]
    tens, units = divmod(value, 10)
    return f"{TENS_WORDS[tens]} {ORDINAL_WORDS[units]}" if units else TENS_WORDS[tens][:-1] + "ieth"


def year_words(year: int) -> str:
    """ "nineteen eighty seven", "nineteen oh five", "two thousand and eight", "twenty twenty four"."""
    century, rest = divmod(year, 100)
    if century == 20 and rest < 10:
        return "two thousand" + (f" and {DIGIT_WORDS[rest]}" if rest else "")
    if rest == 0:
        return f"{number_words(century)} hundred"
    return f"{number_words(century)} {number_words(rest) if rest >= 10 else 'oh ' + DIGIT_WORDS[rest]}"


def digits_read_out(digits: str, rng: random.Random) -> str:
    """A digit string read digit by digit, sometimes with "oh" for zero and "double" for a repeated digit."""
    words: list[str] = []
    index = 0
    while index < len(digits):
        digit = digits[index]
        word = "oh" if digit == "0" and rng.random() < 0.4 else DIGIT_WORDS[int(digit)]
        if index + 1 < len(digits) and digits[index + 1] == digit and rng.random() < 0.3:
            words.append(f"double {word}")
            index += 2
        else:
            words.append(word)
            index += 1
    return " ".join(words)


def _money_words(match: re.Match[str]) -> str:
    dollars, cents = int(match.group(1)), int(match.group(2) or 0)
    spoken = f"{number_words(dollars)} dollars"
    return spoken + (f" and {number_words(cents)} cents" if cents else "")


def _clock_words(match: re.Match[str]) -> str:
    hour, minute, half = int(match.group(1)), int(match.group(2)), match.group(3).lower()
    if minute == 0:
        return f"{number_words(hour)} {' '.join(half)}"
    return f"{number_words(hour)} {number_words(minute)} {' '.join(half)}"


def _spelled(match: re.Match[str], rng: random.Random) -> str:
    spoken = []
    for part in re.findall(r"[A-Za-z]|\d+", match.group()):
        spoken.append(part.lower() if part.isalpha() else digits_read_out(part, rng))
    return " ".join(spoken)


def _email_words(match: re.Match[str]) -> str:
    local = re.sub(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])", " ", match.group(1)).replace(".", " dot ")
    return f"{local} at {match.group(2)} dot {match.group(3).replace('.', ' dot ')}"


@dataclass(frozen=True)
class AsrProfile:
    """One recogniser on one line: how it formats and how much it mishears."""

    lowercase: bool
    keeps_punctuation: bool
    spoken_digits: float
    filler_rate: float
    stutter_rate: float
    base_confidence: float

    @classmethod
    def draw(cls, rng: random.Random) -> AsrProfile:
        noisy_line = rng.random() < 0.25
        return cls(
            lowercase=rng.random() < 0.8,
            keeps_punctuation=rng.random() < 0.3,
            spoken_digits=rng.choice((0.3, 0.6, 0.9)),
            filler_rate=rng.uniform(0.01, 0.07) * (2 if noisy_line else 1),
            stutter_rate=rng.uniform(0.0, 0.04) * (2 if noisy_line else 1),
            base_confidence=rng.uniform(0.72, 0.86) if noisy_line else rng.uniform(0.86, 0.97),
        )

    def transcribe(self, text: str, rng: random.Random) -> tuple[str, float]:
        """The transcript of ``text`` as said by the caller, and the confidence the recogniser reports."""
        noise = 0
        if rng.random() < self.spoken_digits:
            text = _MONEY.sub(_money_words, text)
            text = _CLOCK.sub(_clock_words, text)
            text = _EMAIL.sub(_email_words, text)
            text = _ORDINAL.sub(lambda m: ordinal_words(int(m.group(1))), text)
            text = _YEAR.sub(lambda m: year_words(int(m.group(1))), text)
            text = _CODE.sub(lambda m: _spelled(m, rng), text)
            text = _DIGITS.sub(lambda m: digits_read_out(m.group(0), rng), text).replace("/", " ")
        if not self.keeps_punctuation:
            text = _PUNCTUATION.sub(" ", text)
        if self.lowercase:
            text = text.lower()
        words = _SPACES.sub(" ", text).strip().split(" ")
        transcript: list[str] = []
        if rng.random() < self.filler_rate * 2:
            transcript.append(rng.choice(SENTENCE_FILLERS))
            noise += 1
        for position, word in enumerate(words, start=1):
            if rng.random() < self.stutter_rate:
                transcript.append(word)
                noise += 1
            transcript.append(word)
            if position < len(words) and rng.random() < self.filler_rate:
                in_number = word.lower() in _NUMBER_WORDS and words[position].lower() in _NUMBER_WORDS
                transcript.append(rng.choice(NUMBER_FILLERS if in_number else FILLERS))
                noise += 1
        confidence = self.base_confidence - 0.02 * noise + rng.uniform(-0.04, 0.03)
        return " ".join(transcript), round(min(max(confidence, 0.3), 0.99), 3)
