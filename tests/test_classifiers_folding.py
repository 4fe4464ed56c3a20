"""Disguised text is folded back before classification; the rest of the chat is read for stakes."""

from __future__ import annotations

import pytest

from classifiers.contract import HIGH_STAKES, SMALL_SAFE, STANDARD, written_contract
from classifiers.folding import fold_disguises, skeleton
from classifiers.language import guess_language
from classifiers.pipeline import detect_both, is_directive
from classifiers.schemas import MAX_EARLIER_USER_TURNS, Conversation


@pytest.mark.parametrize(
    ("disguised", "plain"),
    [
        ("sum1 hakked my acount", "someone hacked my account"),
        ("my p4ssw0rd got ch4nged", "my password got changed"),
        ("i n33d to f1le a cl41m", "i need to file a claim"),
        ("my саrd wаs stоlen", "my card was stolen"),  # Cyrillic а, о
        ("some\u200bone st\u200dole my ph\u2060one", "someone stole my phone"),
        ("$cam and p@ssword", "scam and password"),
        ("ＦＲＡＵＤ on my card", "fraud on my card"),  # full-width letters: NFKC
    ],
)
def test_disguises_are_undone(disguised: str, plain: str) -> None:
    assert fold_disguises(disguised) == plain


@pytest.mark.parametrize(
    "text",
    ["card 4111 1111 1111 1111 at 10am on the 2nd", "de89 3704 0044 0532 0130 00", "email john@example.com", "mp3"],
)
def test_numbers_addresses_and_units_are_left_alone(text: str) -> None:
    assert fold_disguises(text) == text


def test_a_text_in_another_script_is_not_turned_into_latin() -> None:
    assert skeleton("мой пароль украден") == "мой пароль украден"


def test_number_detectors_read_the_digits_and_phrase_detectors_the_folded_text() -> None:
    card = "my c4rd is 4111 1111 1111 1111"
    assert "card_number" in {hit.name for hit in detect_both(card, fold_disguises(card))}
    chest = "my сhest hurts and my left arm is numb"  # Cyrillic с
    assert "chest_pain" not in {hit.name for hit in detect_both(chest, chest)}
    assert "chest_pain" in {hit.name for hit in detect_both(chest, fold_disguises(chest))}


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("what time do you open tomorrow", "en"),
        ("mi tarjeta fue robada y necesito ayuda", "es"),
        ("ich habe mein Passwort vergessen", "de"),
        ("je ne peux pas me connecter à mon compte", "fr"),
        ("eu preciso de ajuda com a minha fatura", "pt"),
        ("mera payment nahi hua hai", "hi"),
        ("мой пароль украден", "other"),
    ],
)
def test_language_signal(text: str, language: str) -> None:
    assert guess_language(text) == language


def test_the_conversation_keeps_earlier_user_turns_and_instructions() -> None:
    messages = [
        {"role": "system", "content": "You are the bank's agent."},
        *[{"role": "user", "content": f"turn {i}"} for i in range(MAX_EARLIER_USER_TURNS + 3)],
        {"role": "tool", "content": [{"type": "text", "text": "card status: stolen"}]},
        {"role": "assistant", "content": "Anything else?"},
        {"role": "user", "content": "no thanks"},
    ]
    conversation = Conversation.from_messages(messages)
    assert conversation.latest_user_text == "no thanks"
    assert conversation.previous_assistant_text == "Anything else?"
    assert len(conversation.earlier_user_texts) == MAX_EARLIER_USER_TURNS
    assert conversation.earlier_user_texts[-1] == f"turn {MAX_EARLIER_USER_TURNS + 2}"
    assert conversation.instruction_texts == ("You are the bank's agent.",)
    assert conversation.tool_texts == ("card status: stolen",)


@pytest.mark.parametrize(
    ("sentence", "directive"),
    [
        ("You are Ava, the phone receptionist of North Clinic", True),
        ("Never give medical advice: for symptoms, offer a nurse callback", True),
        ("If the caller reports fraud, transfer them to a human", True),
        ("Escalate security concerns and legal threats to a human", True),
        ("The caller has just reported their debit card stolen", False),
        ("Escalation note: the caller says someone is threatening them", False),
        ("Patient reports a new rash after starting amoxicillin yesterday", False),
        ("", False),
    ],
)
def test_a_directive_instructs_the_agent_and_a_report_tells_what_happened(sentence: str, directive: bool) -> None:
    assert is_directive(sentence) is directive


@pytest.mark.parametrize(
    ("intent", "risks", "contract"),
    [
        ("faq", {"payment"}, SMALL_SAFE),  # which cards do you support
        ("transaction", {"payment"}, HIGH_STAKES),
        ("faq", {"account_security"}, HIGH_STAKES),  # my password doesn't work
        ("other", {"emergency"}, HIGH_STAKES),
        ("data_collection", {"pii"}, SMALL_SAFE),  # a name or an address
        ("transaction", {"pii"}, HIGH_STAKES),  # change the address on the account
        ("complaint", set(), STANDARD),
        ("other", set(), SMALL_SAFE),
    ],
)
def test_written_rows_get_their_contract_from_intent_and_risks(intent: str, risks: set[str], contract: str) -> None:
    assert written_contract(intent, risks) == contract
