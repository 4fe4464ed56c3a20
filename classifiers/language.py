"""A language signal for a turn: English, one of the five other languages of the written set, or ``other``.

The encoder is English; the heads read other languages through character n-grams and the multilingual risk
keywords, and are measurably weaker there. The signal lets the classifier apply a safer rule to those turns
(see ``TurnClassifier``: a non-English turn with a risk keyword is never judged low-stakes) and shows in the
reasons. Counting common function words is enough for that: it needs no model and runs in microseconds.
"""

from __future__ import annotations

from classifiers import regex
from classifiers.normalise import fold


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


FUNCTION_WORDS: dict[str, frozenset[str]] = {
    "en": _words(
        "the a an i my me you your is are was do does did to of and in on for it this that what how can have "
        "with not no yes please want need there be at from"
    ),
    "es": _words(
        "el la los las un una mi mis yo tu es son esta estoy de del y en por para que como no si quiero necesito "
        "con lo se me hola gracias"
    ),
    "de": _words(
        "der die das ein eine ich mein meine du ist sind nicht und zu mit auf fur von wie was kann ich mochte "
        "bitte danke hallo ja nein habe haben wurde"
    ),
    "fr": _words(
        "le la les un une je mon ma mes vous est sont pas et de du des en pour que comment ne oui non merci "
        "bonjour avec sur ai avez veux"
    ),
    "pt": _words(
        "o a os as um uma eu meu minha voce e sao nao de do da em para que como sim obrigado ola com por quero "
        "preciso esta estou"
    ),
    "hi": _words(
        "hai hain nahi nahin mera meri mujhe aap kya kaise kar karo karna ho gaya gayi tha thi ka ki ke se "
        "mein haan ji bhai yaar abhi"
    ),
}
_WORD = regex.compile(r"[a-z]+")
_LETTER = regex.compile(r"\pL")  # any script's letter
_LATIN = regex.compile(r"[a-z]")


def guess_language(text: str) -> str:
    """ISO 639-1 code of the language with most function words in ``text`` (ties and no evidence: ``en``);
    ``other`` when most letters are not Latin script."""
    folded = fold(text)
    if not folded.isascii():  # folded ASCII letters are all Latin
        letters = len(_LETTER.findall(folded))
        if letters and len(_LATIN.findall(folded)) * 2 < letters:
            return "other"
    words = _WORD.findall(folded)
    counts = {language: sum(word in vocabulary for word in words) for language, vocabulary in FUNCTION_WORDS.items()}
    best = max(counts, key=lambda language: counts[language])
    return best if counts[best] > counts["en"] else "en"
