"""The building blocks of a sample call, and the exchanges every domain shares (hellos, asides, identity checks).

A call is a sequence of :class:`Beat`\\ s. A beat is one exchange: the agent may lead in (``prompts``, e.g. "can I
have your date of birth?"), the caller answers (``caller``), and the agent replies to that answer (``replies``).
Every text is a template over the caller's values (``{name}``, ``{card}``, see ``identities.CallerValues``).

The ``intent`` and ``risks`` of a beat are the generator's ground truth for the caller's line, in the label set of
the shipped classifier; they describe the sample, they are never written to the log.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# The risks that name a turn's category ahead of its intent, most serious first. PII alone does not: reading
# out a phone number is routine data collection.
CATEGORY_RISKS = ("emergency", "medical", "account_security", "legal", "payment")


@dataclass(frozen=True)
class Beat:
    """One exchange: the agent's optional lead-in, the caller's line, the agent's reply to it."""

    intent: str
    caller: tuple[str, ...]
    replies: tuple[str, ...]
    prompts: tuple[str, ...] = ()
    risks: frozenset[str] = frozenset()

    @property
    def category(self) -> str:
        """The turn's kind for mix statistics: its most serious risk, else its intent."""
        return next((risk for risk in CATEGORY_RISKS if risk in self.risks), self.intent)


def answered(
    intent: str, *pairs: tuple[str | tuple[str, ...], str | tuple[str, ...]], risks: Iterable[str] = ()
) -> tuple[Beat, ...]:
    """One beat per (question or questions, answer or answers) pair, so every question gets its own answer."""
    return tuple(
        beat(
            intent,
            caller=(asked,) if isinstance(asked, str) else asked,
            replies=(answer,) if isinstance(answer, str) else answer,
            risks=risks,
        )
        for asked, answer in pairs
    )


def beat(
    intent: str,
    caller: Iterable[str],
    replies: Iterable[str],
    prompts: Iterable[str] = (),
    risks: Iterable[str] = (),
) -> Beat:
    return Beat(intent, tuple(caller), tuple(replies), tuple(prompts), frozenset(risks))


@dataclass(frozen=True)
class Scenario:
    """Why someone calls: how they open, which identity checks apply, the body of the call and its detours.

    ``detours`` is the mean number of side questions and asides (drawn from ``asides``, the domain's FAQs and the
    shared asides) a call of this scenario takes.
    """

    name: str
    weight: float
    openers: tuple[Beat, ...]
    identity: tuple[Beat, ...]
    core: tuple[Beat, ...]
    asides: tuple[Beat, ...] = ()
    agent: str | None = None
    detours: float = 1.5


@dataclass(frozen=True)
class Domain:
    """One business on the phone: its tenant, its agent's prompt and tools, and why its callers call."""

    name: str
    tenant: str
    agent: str
    system_prompt: str
    greetings: tuple[str, ...]
    tools: tuple[dict[str, Any], ...]
    scenarios: tuple[Scenario, ...]
    faqs: tuple[Beat, ...]
    languages: tuple[tuple[str, float], ...] = (("en-US", 0.6), ("en-GB", 0.25), ("en-IN", 0.1), ("en-AU", 0.05))
    ivr_states: tuple[str, str] | None = field(default=None)


def tool(function_name: str, description: str, /, **parameters: str) -> dict[str, Any]:
    """An OpenAI function tool whose parameters are all required strings (described by ``parameters``)."""
    return {
        "type": "function",
        "function": {
            "name": function_name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {key: {"type": "string", "description": text} for key, text in parameters.items()},
                "required": list(parameters),
            },
        },
    }


# -- shared exchanges ---------------------------------------------------------------------------------------------

HELLO = beat(
    "smalltalk",
    caller=(
        "Hello? Hi, yes, hello.",
        "Hi there, can you hear me okay?",
        "Oh hi, sorry, I wasn't sure if this was a recording.",
        "Hey, good morning.",
        "Hello, is this the right number?",
        "Hi. Um, okay, am I talking to a computer?",
        "Yes hi, hello, sorry, bad signal here.",
    ),
    replies=(
        "Hi! Yes, I can hear you fine.",
        "Hello, you've reached the right place, I can hear you clearly.",
        "Good morning! I'm a virtual assistant, but I can help with most things or pass you to a colleague.",
        "No problem at all, I can hear you now.",
    ),
)

ASIDES = (
    *answered(
        "smalltalk",
        (
            (
                "Sorry, hang on one second, my dog is going crazy at the door.",
                "One sec, let me grab a pen.",
                "Sorry, my kids are yelling in the background.",
            ),
            ("No rush at all, take your time.", "Of course, I'll wait."),
        ),
        (
            ("Sorry, I'm driving, you're on speaker, go ahead.", "I'm on the bus so it might be noisy."),
            ("That's perfectly fine, I'll keep it short.", "No problem, I can hear you fine."),
        ),
        (
            ("Ha, yeah, it's been one of those weeks.", "Oh, nice, okay.", "Okay, cool, cool."),
            ("I hear you.", "Great."),
        ),
        (
            ("How's your day going, by the way?", "Are you having a busy day?"),
            "I'm doing well, thanks for asking! Lots of calls today, but all good ones like yours.",
        ),
    ),
    *answered(
        "other",
        (
            (
                "Sorry, you cut out there, can you say that again?",
                "Wait, what was that? The line is really bad.",
                "Hmm, I didn't quite get that.",
            ),
            "Sorry about that, let me say it again more slowly.",
        ),
        (
            ("Can I just talk to a real person?", "Are you a robot?"),
            "I'm an automated assistant, but I can handle this, and if you'd prefer a person I can transfer you.",
        ),
        (("Hello? Are you still there?", "Did I lose you?"), "Yes, I'm still here."),
    ),
)

CLOSING = beat(
    "smalltalk",
    caller=(
        "No, that's everything. Thanks so much.",
        "Great, thank you, bye.",
        "Perfect, you've been really helpful.",
        "Alright, cheers, bye bye.",
        "Okay, that's all I needed. Have a good one.",
        "Thanks, that really helps. Bye now.",
        "No, I'm good. Thank you!",
        "Lovely, thanks, bye.",
    ),
    replies=(
        "You're welcome! Have a great day.",
        "Happy to help. Goodbye!",
        "Thanks for calling, take care.",
        "My pleasure. Bye for now.",
    ),
    prompts=(
        "Is there anything else I can help you with today?",
        "Anything else I can do for you?",
        "Was there anything else?",
    ),
)

# -- identity checks -----------------------------------------------------------------------------------------------

FULL_NAME = beat(
    "data_collection",
    caller=(
        "It's {name}.",
        "Yeah, {name}.",
        "{first}, and the last name is {last}.",
        "My name is {name}.",
        "Sure, it's {first} {last}. {last} like it sounds.",
    ),
    replies=("Thank you, {first}.", "Thanks, {first}.", "Got it, thank you.", "Great, thanks."),
    prompts=(
        "Can I start with your full name, please?",
        "Could I have your first and last name?",
        "Who am I speaking with today?",
    ),
    risks=("pii",),
)

DATE_OF_BIRTH = beat(
    "data_collection",
    caller=(
        "{dob}.",
        "It's {dob}.",
        "Date of birth is {dob}.",
        "Um, {dob}.",
    ),
    replies=("Thank you, that matches.", "Perfect, that's verified.", "Thanks, I've found you."),
    prompts=(
        "And can you confirm your date of birth?",
        "For security, what's your date of birth?",
        "Could you give me your date of birth, please?",
    ),
    risks=("pii",),
)

PHONE = beat(
    "data_collection",
    caller=(
        "Best number is {phone}.",
        "You can reach me on {phone}.",
        "It's {phone}, that's my mobile.",
        "Same as on file, {phone}.",
    ),
    replies=("Thanks, I've noted {phone}.", "Got it.", "Thank you, that's updated."),
    prompts=(
        "What's the best phone number to reach you on?",
        "Can I get a callback number in case we get cut off?",
    ),
    risks=("pii",),
)

EMAIL = beat(
    "data_collection",
    caller=(
        "It's {email}.",
        "My email is {email}.",
        "Should be {email}.",
        "Try {email}, that's the account email.",
    ),
    replies=("Thanks, I've found the account.", "Great, that matches our records.", "Got it, thank you."),
    prompts=(
        "What email address is the account under?",
        "Can I have the email address on the account?",
        "Could you confirm your email address?",
    ),
    risks=("pii",),
)

POSTCODE = beat(
    "data_collection",
    caller=("It's {zip}.", "Zip code {zip}.", "{zip}.", "Postcode is {zip}."),
    replies=("Thanks.", "Great, that matches.", "Thank you, confirmed."),
    prompts=("And the zip code, please?", "Can you confirm the postcode?"),
)

ADDRESS = beat(
    "data_collection",
    caller=(
        "It's {street}, {city}.",
        "{street} in {city}, zip {zip}.",
        "The address is {street}, {city}.",
    ),
    replies=("Thank you, I've got {street}.", "Got it, thanks.", "Perfect, that's saved."),
    prompts=("What's the full address?", "Which address should we use?"),
    risks=("pii",),
)

CARD_NUMBER = beat(
    "data_collection",
    caller=(
        "Okay, the card number is {card}.",
        "It's {card}.",
        "Ready? {card}.",
        "The long number is {card}, expiry oh nine twenty seven.",
    ),
    replies=(
        "Thank you, the card is saved.",
        "Thanks, that card has been accepted.",
        "Got it, the card went through verification.",
    ),
    prompts=(
        "Please read me the long card number when you're ready.",
        "Whenever you're ready, go ahead with the card number.",
    ),
    risks=("payment", "pii"),
)
