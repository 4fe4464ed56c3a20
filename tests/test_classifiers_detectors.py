from __future__ import annotations

import pytest

from classifiers.detectors import detect, iban_valid, luhn_valid
from classifiers.lexicon import RiskLexicon
from classifiers.spoken import digit_runs


def names(text: str, context: str = "") -> set[str]:
    return {hit.name for hit in detect(text, context)}


@pytest.mark.parametrize("number", ["4111111111111111", "5500000000000004", "378282246310005", "6011111111111117"])
def test_luhn_accepts_valid_card_numbers(number: str) -> None:
    assert luhn_valid(number)


@pytest.mark.parametrize("number", ["4111111111111112", "5500000000000005", "1234567812345678"])
def test_luhn_rejects_invalid_card_numbers(number: str) -> None:
    assert not luhn_valid(number)


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1111",
        "my card is 4111-1111-1111-1111 exp 12/26",
        "The card number is 5500 0000 0000 0004.",
        "four one one one one one one one one one one one one one one one",
        "uh four one one one, one one one one, um one one one one, double one one one",
        "five five oh oh oh oh oh oh oh oh oh oh oh oh oh four",
    ],
)
def test_card_numbers_typed_and_spoken(text: str) -> None:
    hits = [hit for hit in detect(text) if hit.name == "card_number"]
    assert hits and set(hits[0].risks) == {"payment", "pii"}
    assert hits[0].reason.startswith("detector:card_number(")


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1112",
        "0000 0000 0000 0000",
        "my order number is 55-7721-009",
        "tracking 1Z 999 AA1 0123 4567 84",
    ],
)
def test_no_card_number_without_a_valid_checksum(text: str) -> None:
    assert "card_number" not in names(text)


def test_spoken_digits_keep_group_boundaries() -> None:
    (run,) = digit_runs("call me at five five five two oh one eight eight three four")
    assert run.digits == "5552018834" and run.spoken
    assert [r.digits for r in digit_runs("order 12345 and 67890")] == ["12345", "67890"]


def test_iban_checksum() -> None:
    assert iban_valid("DE89370400440532013000") and iban_valid("GB82WEST12345698765432")
    assert not iban_valid("GB82WEST12345698765431")
    assert "iban" in names("my iban is DE89 3704 0044 0532 0130 00")
    assert "iban" not in names("my iban is DE89 3704 0044 0532 0130 01")


@pytest.mark.parametrize(
    ("text", "detector"),
    [
        ("My email is jen.park@gmail.com.", "email"),
        ("it's john dot smith at gmail dot com", "email"),
        ("send it to maria at outlook", "email"),
        ("The phone number is 555-201-8834.", "phone_number"),
        ("call me back on five five five two oh one eight eight three four", "phone_number"),
        ("my ssn is 123-45-6789", "national_id"),
        ("I was born on the 12th of July 1990.", "date_of_birth"),
        ("dob nineteen eighty four", "date_of_birth"),
        ("Yara Petrov, Petrov like it sounds.", "personal_name"),
        ("The delivery address is 2100 Westlake Ave, unit 304, Seattle.", "postal_address"),
        ("twenty one hundred westlake avenue", "postal_address"),
        ("Ich wohne in der Lindenstraße 12, 10115 Berlin.", "postal_address"),
        ("Der Code lautet 551203.", "one_time_code"),
    ],
)
def test_personal_data(text: str, detector: str) -> None:
    assert detector in names(text)


def test_no_personal_data_in_ordinary_requests() -> None:
    assert not detect("is it possible to get the tuesday four forty slot with dr chen")
    assert not detect("my name is on the account but I can't log in")
    assert not detect("the delivery code on the card is 5521")


def test_context_supplies_the_cue_but_not_the_evidence() -> None:
    assert "date_of_birth" in names("march third nineteen eighty four", "And what's your date of birth?")
    assert "date_of_birth" not in names("yes that's right", "And what's your date of birth?")
    assert "phone_number" in names("five five five two oh one eight eight three four", "What's a good phone number?")
    assert "one_time_code" in names("it's 670 465", "Please read me the code we just texted you.")
    assert "personal_name" in names("ahmed okafor", "Who am I speaking with?")
    assert "personal_name" not in names("yes that's fine", "Can I confirm your full name?")


@pytest.mark.parametrize(
    "text",
    [
        "I'm dying to know when my package arrives",
        "this is killing me",
        "you nearly gave me a heart attack with that bill",
        "I'm killing it at work this week",
        "fire away",
        "when is the fire drill",
        "the app is not responding",
        "my package is not moving",
        "what a stroke of luck",
        "I want to end my life insurance policy",
        "My sister is going to kill me if I forget her birthday again.",
        "cut the cake with a knife",
    ],
)
def test_idioms_are_not_emergencies(text: str) -> None:
    assert not any("emergency" in hit.risks for hit in detect(text))


@pytest.mark.parametrize(
    ("text", "detector", "medical"),
    [
        ("my chest hurts and my left arm is numb", "chest_pain", True),
        ("I can't breathe", "breathing", True),
        ("my throat is um closing up i think it's the peanuts", "anaphylaxis", True),
        ("I want to kill myself", "self_harm", False),
        ("someone has a gun", "violence", False),
        ("there's a fire in my kitchen", "fire", False),
        ("I think I'm having a stroke, my face feels droopy", "stroke", True),
        ("My daughter swallowed a bunch of pills.", "overdose", True),
        ("tengo un dolor en el pecho", "chest_pain", True),
        ("no puedo respirar", "breathing", True),
        ("Ich habe starke Brustschmerzen", "chest_pain", True),
        ("ähm in der der küche brennt brennt es", "fire", False),
        ("je n'arrive pas à respirer", "breathing", True),
        ("Mon ex est devant ma porte avec un couteau.", "violence", False),
        ("estou com dor no peito", "chest_pain", True),
        ("quero morrer", "self_harm", False),
        ("mere seene mein dard ho raha hai", "chest_pain", True),
        ("ghar mein aag lag gayi", "fire", False),
    ],
)
def test_multilingual_emergencies(text: str, detector: str, medical: bool) -> None:
    hits = {hit.name: hit for hit in detect(text)}
    assert detector in hits
    assert "emergency" in hits[detector].risks
    assert ("medical" in hits[detector].risks) is medical


def test_risk_keywords_fire_on_the_same_concept_across_languages() -> None:
    lexicon = RiskLexicon(["payment", "account_security", "legal"])
    indicators = lexicon.transform(
        ["Warum wurde meine Karte abgelehnt?", "Olvidé mi contraseña", "Je veux parler à un avocat", "hello there"]
    )
    assert indicators.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]]
