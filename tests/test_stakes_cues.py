"""The contract's phrasings of high-stakes acts (``classifiers.stakes_cues``): each item found, topics left alone."""

from __future__ import annotations

import pytest

from classifiers.folding import fold_disguises
from classifiers.stakes_cues import (
    ACCOUNT_SECURITY,
    HEALTH,
    HEALTH_ANSWER,
    LEGAL,
    MONEY_PROBLEM,
    MONEY_REQUEST,
    SECRET_ANSWER,
    answer_cue,
    stakes_cue,
)

STATED_ACTS = [
    # The issue's own misses, then each contract item in a few everyday phrasings.
    ("the app shows a cash withdrawal I never made", MONEY_PROBLEM),
    ("I need to file a claim for my car", LEGAL),
    ("I get a burning pain in my stomach after every meal", HEALTH),
    ("someone got into my account", ACCOUNT_SECURITY),
    ("sum1 hakked my acount", ACCOUNT_SECURITY),
    ("My top-up was declined", MONEY_PROBLEM),
    ("where is my refund?", MONEY_PROBLEM),
    ("Why is my cash deposit not in my account?", MONEY_PROBLEM),
    ("I was charged twice for the same order", MONEY_PROBLEM),
    ("there's a payment I don’t recognise on my statement", MONEY_PROBLEM),
    ("I didnt get my withdrawal amount", MONEY_PROBLEM),
    ("I want to send 200 dollars to my brother", MONEY_REQUEST),
    ("I'd like a refund please", MONEY_REQUEST),
    ("please cancel the direct debit to my gym", MONEY_REQUEST),
    ("I want to return my order", MONEY_REQUEST),
    ("I lost my card yesterday", ACCOUNT_SECURITY),
    ("I forgot my PIN", ACCOUNT_SECURITY),
    ("I need to change the phone number on my account", ACCOUNT_SECURITY),
    ("please close my account", ACCOUNT_SECURITY),
    ("I want to delete my PAN card", ACCOUNT_SECURITY),
    ("I think I was scammed", ACCOUNT_SECURITY),
    ("I'm going to take you to court over this", LEGAL),
    ("delete my personal data under GDPR", LEGAL),
    ("I want to apply for a mortgage", LEGAL),
    ("my daughter has had a fever since last night", HEALTH),
    ("it hurts when I swallow", HEALTH),
    ("can I take ibuprofen with my blood pressure medication", HEALTH),
]

NO_ACT = [
    # Information questions on money and health logistics, slot values, chatter and routine orders: small-safe.
    "which cards do you support?",
    "what are your fees for international transfers?",
    "how do I transfer money to another account?",
    "what's the exchange rate for euros today?",
    "what time do you open tomorrow?",
    "how long does delivery take to Leeds?",
    "how does the refund process work?",
    "my name is Sarah Collins",
    "I'd like a large pepperoni pizza and a coke",
    "I'll pay by card",
    "thanks, that's all for today",
    "No, don't make any transfers.",
    "Sorry, I didn't get that, can you repeat?",
    "set a reminder for 5pm",
    "is the clinic open on Saturdays?",
    "can I book an appointment for next Tuesday at 10?",
    "I would like to know your exchange rates",
]


@pytest.mark.parametrize(("text", "cue"), STATED_ACTS)
def test_a_stated_high_stakes_act_names_its_contract_item(text: str, cue: str) -> None:
    assert stakes_cue(fold_disguises(text)) == cue


@pytest.mark.parametrize("text", NO_ACT)
def test_topic_alone_is_not_a_cue(text: str) -> None:
    assert stakes_cue(fold_disguises(text)) is None


DISCLOSING_QUESTIONS = [
    # The agent's turn before the caller's answer: a clinical question, or one asking for a secret or a number.
    ("So you do not have any more nausea or vomiting?", HEALTH_ANSWER),
    ("How is your foot feeling?", HEALTH_ANSWER),
    ("Thanks for waiting. Where is the pain? Does it come and go?", HEALTH_ANSWER),
    ("Do you know if you've had any health related problems before?", HEALTH_ANSWER),
    ("Were there any complications with your pregnancy?", HEALTH_ANSWER),
    ("Which medications are you taking at the moment?", HEALTH_ANSWER),
    ("Can you tell me your account number, please?", SECRET_ANSWER),
    ("To verify it's you, what is your PIN?", SECRET_ANSWER),
    ("What's the answer to your security question?", SECRET_ANSWER),
]

HARMLESS_QUESTIONS = [
    "Hello, how are you?",
    "How are you doing today?",
    "What time would you like the appointment?",
    "I'm checking your account number now.",  # no question: the agent asks nothing
    "Your prescription is ready for pickup. Anything else I can help with?",  # the question is not about it
    "Would you like a receipt?",
    "",
]


@pytest.mark.parametrize(("question", "cue"), DISCLOSING_QUESTIONS)
def test_an_answer_to_a_disclosing_question_is_a_disclosure(question: str, cue: str) -> None:
    assert answer_cue(fold_disguises(question)) == cue


@pytest.mark.parametrize("question", HARMLESS_QUESTIONS)
def test_an_answer_to_an_everyday_question_discloses_nothing(question: str) -> None:
    assert answer_cue(fold_disguises(question)) is None


def test_only_the_last_questions_of_the_agent_turn_are_answered() -> None:
    turn = "Any allergies? Thanks, noted. What day suits you? And what time?"
    assert answer_cue(fold_disguises(turn)) is None  # the allergy question was answered turns ago
