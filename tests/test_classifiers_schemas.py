from __future__ import annotations

import pytest
from pydantic import ValidationError

from classifiers import Conversation


def test_from_messages_takes_latest_user_turn_and_the_assistant_turn_before_it() -> None:
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "Can I have your"}, {"type": "text", "text": "card number?"}],
        },
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
        {"role": "tool", "content": "{}"},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "4111"}],
        },
    ]
    conversation = Conversation.from_messages(messages, has_tools=True)
    assert conversation.latest_user_text == "4111"
    assert conversation.previous_assistant_text == "Can I have your card number?"
    assert conversation.message_count == 6 and conversation.has_tools


def test_assistant_turns_before_an_earlier_user_turn_are_not_context() -> None:
    messages = [
        {"role": "assistant", "content": "Welcome!"},
        {"role": "user", "content": "hello"},
        {"role": "user", "content": "are you there?"},
    ]
    assert Conversation.from_messages(messages).previous_assistant_text is None


def test_chat_without_user_turn_gives_empty_text() -> None:
    assert Conversation.from_messages([{"role": "system", "content": "x"}]).latest_user_text == ""


def test_conversation_is_frozen_and_normalises() -> None:
    conversation = Conversation(latest_user_text="  What  TIME\tdo you open ", previous_assistant_text="  ")
    with pytest.raises(ValidationError):
        conversation.latest_user_text = "x"  # type: ignore[misc]
    normalised = conversation.normalised()
    assert normalised.latest_user_text == "what time do you open"
    assert normalised.previous_assistant_text is None


def test_each_earlier_user_turn_keeps_the_assistant_text_it_answers() -> None:
    conversation = Conversation.from_messages(
        [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Any more nausea or vomiting?"},
            {"role": "tool", "content": "{}"},
            {"role": "user", "content": "no I don't"},
            {"role": "user", "content": "well, a little"},  # follows a user turn: answers nothing
            {"role": "assistant", "content": "Thanks."},
            {"role": "user", "content": "ok"},
        ]
    )
    assert conversation.earlier_turns == [
        ("hi", ""),
        ("no I don't", "Any more nausea or vomiting?"),
        ("well, a little", ""),
    ]
    # Built by hand without contexts, each earlier turn answers nothing known.
    assert Conversation(latest_user_text="ok", earlier_user_texts=("a", "b")).earlier_turns == [("a", ""), ("b", "")]


def test_earlier_contexts_must_match_earlier_turns() -> None:
    with pytest.raises(ValidationError, match="one entry per earlier user text"):
        Conversation(latest_user_text="ok", earlier_user_texts=("a", "b"), earlier_user_contexts=("x",))
