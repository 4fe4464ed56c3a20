"""Phrasings of the routing contract's high-stakes acts, read as evidence next to the learned stakes head.

The stakes head separates held-out sources at a ROC AUC near 0.88: most of what it lets through to the small
tier are plain reports and requests that say their consequence in a few words ("my top-up was declined",
"where is my refund", "I want to close my account", "it hurts when I swallow"). Each pattern here is one of
the contract's own items, written as the phrase that states it — a report of money missing, wrong or
unrecognised, a request to move or reverse money, fraud or lost cards or phones, account access and
security changes, claims, contracts and legal matters, symptoms and medication — and it names the item it
found, so the decision says why.

A cue is the act, not the topic: "which cards do you support?", "how do I transfer money?" or "what are your
fees?" match nothing. The patterns read only what a caller said (the latest and earlier user turns), in the
classifier's folded form (look-alike letters, leetspeak and shorthand undone, lower case, accents stripped).
All run in RE2 (``classifiers.regex``): time linear in the text.

They were written from the contract's wording and checked for false alarms on the public corpus
(``classifiers/data/public``), whose small-safe turns they hit at 0.7 %; ``docs/learner-comparison.md`` has
the figures and says how they were measured.

An answer can disclose what its words do not say: "No, I don't." to "Any more nausea or vomiting?" describes a
health condition, "it's my birthday backwards" to "What is your PIN?" gives away a secret. ``answer_cue`` reads
the agent's turn just before the caller's: when one of its last questions asks about symptoms, medication or
medical history, or for a secret or an account number, the caller's answer is that disclosure, whatever it says.
Only a question counts ("I'm checking your account number now." asks for nothing), and on the public corpus such
questions precede 1 small-safe turn in 10,000 (round 6 of ``docs/learner-comparison.md``).
"""

from __future__ import annotations

from classifiers import regex
from classifiers.normalise import fold

# What money is called in a report or a request: the object that turns "it failed" into a money problem.
_MONEY = (
    r"(?:money|cash|funds|refunds?|payments?|transfers?|deposits?|salary|wages?|withdrawals?|top.?ups?|topups?"
    r"|transactions?|charges?|amount|balance|cheque|direct debit|standing order|\$\s?\d"
    r"|\d+\s?(?:dollars|euros|pounds|usd|eur|gbp|rs|rupees))"
)
_NOT_DONE = (
    r"(?:never|not|(?:did|does|do|has|have|had|was|is|are|were|wo|ca)n'?t|yet to)\s+(?:\S+\s+)?"
    r"(?:arrived?|received|showing|shown|show(?:n|ing)? up|gone through"
    r"|go through|come through|came through|credited|reflected|updated|reached|appeared?|appearing|processed"
    r"|working|work|there|in my account|made|authori[sz]ed|requested|ordered)"
)
_WENT_WRONG = (
    r"(?:declined|rejected|bounced|reversed|reverted|returned|cancell?ed|canceled|unsuccessful|failed|fails|failing"
    r"|stuck|pending|missing|disappeared|vanished|wrong|incorrect|twice|doubled?|duplicated?)"
)

# The stakes a stated act gets: above any threshold a contract-following policy sets, short of the certainty (1.0)
# of a detector's hard evidence. A constant, not the policy's threshold, so stakes describe the turn alone.
CUE_STAKES = 0.9

MONEY_PROBLEM = "money_problem"
MONEY_REQUEST = "money_request"
ACCOUNT_SECURITY = "account_security"
LEGAL = "legal"
HEALTH = "health"

CUE_PATTERNS: dict[str, str] = {
    # Reports of money missing, wrong, duplicated, failed or unrecognised.
    MONEY_PROBLEM: (
        rf"\b{_MONEY}\b(?:\s+\S+){{0,5}}?\s+(?:{_NOT_DONE}|{_WENT_WRONG})\b"
        r"|\b(?:never|didn'?t|did not|haven'?t|have not|hasn'?t|has not|wasn'?t|was not)\s+(?:\S+\s+)?"
        rf"(?:make|made|authori[sz]ed?|receive|received|get|got|request|requested|withdraw|withdrew)\b"
        rf"(?:\s+\S+){{0,4}}?\s+{_MONEY}\b"
        r"|\b(?:don'?t|do not|didn'?t|did not)\s+recogni[sz]e\b"
        r"|\b(?:charged|billed|debited|deducted)(?:\s+\S+){0,3}?\s+(?:twice|two times|double|again|wrong|too much)\b"
        r"|\b(?:double|duplicate|duplicated|wrong|incorrect|unknown|strange|unfamiliar|suspicious|unrecogni[sz]ed"
        r"|unauthori[sz]ed|mystery)\s+(?:\S+\s+)?(?:charges?|payments?|transactions?|amount|fee|withdrawal|debit"
        r"|transfer|deposit|exchange rate|rate)\b"
        r"|\bovercharg"
        r"|\b(?:card|payment|top.?up|topup|transfer)s?\s+(?:was\s+|is\s+|got\s+|keeps?\s+(?:getting\s+)?|just\s+)?"
        r"(?:declined|rejected|refused|failed|fails|failing|not (?:going through|working|accepted))"
        rf"|\bwhere(?:'?s| is| are)\s+(?:my|the)\s+{_MONEY}\b|\bmissing\s+(?:\S+\s+)?{_MONEY}|\bmy\s+money\s+back\b"
        rf"|\bwaiting\s+(?:for|on)\s+(?:my|the|a|this)\s+(?:\S+\s+){{0,2}}?{_MONEY}\b"
        r"|\bwhat(?:'?s| is)\s+(?:this|that)\s+(?:\S+\s+)?(?:charge|payment|withdrawal|transaction|debit)\b"
        r"|\b(?:can'?t|cannot|unable to)\s+(?:seem to\s+|get it to\s+)?(?:top ?up|topup|pay|transfer|withdraw"
        r"|make (?:a|the) (?:payment|transfer))\b"
    ),
    # Requests to move, pay, refund, dispute or reverse money (asking how a process works is not one).
    MONEY_REQUEST: (
        r"\b(?:i|we|i'?m|i am|we'?re|we are|i'?d|we'?d)\s+(?:want|need|wish|would like|like|wanna|have|trying|going)\s+"
        r"(?:to\s+)?(?:\S+\s+)?(?:transfer|send|wire|pay|withdraw|deposit|top ?up|topup|move|refund|reimburse"
        rf"|dispute|reverse|cancel|return|exchange)\w*(?:\s+\S+){{0,4}}?\s+{_MONEY}\b"
        r"|\b(?:i|we|i'?d|we'?d)\s+(?:want|need|would like|like|wanna|am requesting)\s+(?:a\s+|my\s+)?"
        r"(?:refund|chargeback|reimbursement)\b"
        r"|\b(?:dispute|reverse|cancel|stop|block)\s+(?:a|the|this|that|my)\s+(?:\S+\s+)?"
        r"(?:payment|transaction|charge|transfer|direct debit|standing order)\b"
        r"|\b(?:i|we|i'?d|we'?d)\s+(?:want|need|would like|like|wanna)\s+to\s+(?:return|send back)\s+"
        r"(?:my|the|this|an?)\s+(?:order|item|product|purchase)"
        r"|\b(?:i|we|i'?d|we'?d)\s+(?:want|need|would like|like|wanna)\s+to\s+(?:top ?up|topup"
        r"|make (?:a|the) (?:payment|transfer|deposit|withdrawal))\b"
        r"|^\s*(?:please\s+)?make (?:a|the) (?:top ?up|topup|payment|transfer)\b"
        r"|^\s*(?:please\s+)?(?:transfer|send|wire|pay|withdraw|deposit|top up|make a payment|make a transfer)\b"
        rf"(?:\s+\S+){{0,4}}?\s+{_MONEY}\b"
    ),
    # Fraud, scams, lost or stolen cards or phones, account access and security changes, closing accounts.
    ACCOUNT_SECURITY: (
        r"\b(?:hacked|hacking|compromised|stolen|stole my|steal my|identity theft|fraud|fraudulent|scam|scammed"
        r"|scammer|phishing|unauthori[sz]ed)\b"
        r"|\b(?:lost|lose|misplaced|can'?t find)\s+(?:my|the|our)\s+(?:\S+\s+)?"
        r"(?:card|phone|wallet|purse|passport|id|licen[cs]e)\b"
        r"|\bsomeone\s+(?:\S+\s+){0,2}(?:got into|accessed|access|used|using|took|logged into|broke into|has my"
        r"|knows my)\b"
        r"|\b(?:can'?t|cannot|unable to)\s+(?:access|log ?in|login|sign in|get into)\b"
        r"|\blocked out\b|\b(?:lock|freeze|block|unblock|unfreeze)\s+(?:my|the)\s+(?:\S+\s+)?(?:card|account|profile)\b"
        r"|\b(?:reset|change|forgot|forgotten|recover|update|new)\s+(?:my\s+|the\s+)?"
        r"(?:password|passcode|pin|login|username|2fa|two.factor|security question)"
        r"|\b(?:change|update|edit|modify)\s+(?:my\s+|the\s+)?(?:\S+\s+)?(?:phone number|mobile number|email|e-mail"
        r"|home address|billing address|address|personal (?:details|information|info)|details|information"
        r"|name on)"
        r"|\b(?:delete|remove|change|update)\s+(?:my\s+|the\s+)?(?:pan|pan card|passport|ssn|social security"
        r"|national insurance|aadhaa?r|id card)\b"
        r"|\b(?:close|cancel|terminate|deactivate|delete)\s+(?:my|the|our)\s+(?:\S+\s+)?(?:account|membership"
        r"|profile)\b"
    ),
    # Claims, contracts, enrolments, legal matters, data-protection requests.
    LEGAL: (
        r"\b(?:file|make|submit|open|start|lodge|raise|put in)\s+(?:a|an|my|the)\s+(?:\S+\s+)?claim\b"
        r"|\bclaim\s+(?:on|for|against)\s+(?:my|the)\b"
        r"|\b(?:sue (?:you|them|the|your|him|her)|suing|lawsuit|legal action|court case"
        r"|take (?:you|them|it) to court)\b"
        r"|\b(?:gdpr|data protection|delete (?:all\s+)?my (?:personal\s+)?data)\b"
        r"|\b(?:sign|cancel|terminate|end|break)\s+(?:my|the|a|this)\s+(?:\S+\s+)?"
        r"(?:contract|lease|policy|mortgage|loan)\b"
        r"|\b(?:enrol|enroll|apply)\s+(?:for|in)\s+(?:(?:a|an|the|my)\s+)?(?:\S+\s+)?"
        r"(?:loan|mortgage|credit card|overdraft|insurance|policy|plan|program|course)\b"
        r"|\b(?:close|pay off|pay back)\s+(?:my|the)\s+(?:mortgage|loan)\b"
    ),
    # Symptoms, medication, test results, health conditions.
    HEALTH: (
        r"\b(?:pain|painful|pains|aches?|aching|bleeding|bleed|fever|feverish|dizzy|dizziness|nausea|nauseous"
        r"|vomit\w*|throwing up|threw up|rash|swollen|swelling|infection|infected|cough\w*|short of breath"
        r"|breathing|headaches?|migraines?|diarrh\w*|sore|numbness|itching|itchy|fainted|faint|unconscious"
        r"|seizures?|symptoms?|insulin|diabet\w*|blood pressure|blood sugar|test results|lab results|biopsy"
        r"|diagnos\w*|allerg\w*|pregnan\w*|injur\w*|surgery|cancer|tumou?r|asthma|depress\w*|anxiety"
        r"|medications?|meds|medicine|prescription|prescribed|dosage|dose|antibiotics?|chest)\b"
        r"|\b(?:it|that|this|my \S+)\s+hurts\b|\bhurts? (?:when|if|to)\b"
    ),
}

_COMPILED = tuple((name, regex.compile(pattern)) for name, pattern in CUE_PATTERNS.items())

HEALTH_ANSWER = "health_answer"
SECRET_ANSWER = "secret_answer"

# Questions whose answer is a disclosure: a clinical one (any health word of the caller's cue, or a question about
# a medical history, complications, or how a part of the body feels), or one asking for a secret or an account
# number (the contract's "turns carrying card numbers, bank account numbers, government ids", said or not).
QUESTION_PATTERNS: dict[str, str] = {
    HEALTH_ANSWER: (
        CUE_PATTERNS[HEALTH] + r"|\b(?:medical|health|surgical|family)\s+(?:related\s+)?"
        r"(?:history|problems?|issues?|conditions?)\b|\bcomplications?\b"
        r"|\bhow (?:is|are|does|do) (?:your|the) (?:\S+\s+)?feel(?:ing)?\b"
    ),
    SECRET_ANSWER: (
        r"\b(?:pin|pin number|password|passcode|pass code|security (?:question|answer|code)|access code"
        r"|verification code|one.time (?:code|password)|otp|card number|account number|routing number|sort code"
        r"|social security|ssn|cvv|cvc)\b"
    ),
}
_QUESTION_COMPILED = tuple((name, regex.compile(pattern)) for name, pattern in QUESTION_PATTERNS.items())
_QUESTION = regex.compile(r"[^.?!]*\?")
# An agent's turn often closes with its question after a remark ("Thanks. Where is the pain?"), and sometimes with
# a second one ("Any fever? Any cough?"): the last two questions are the ones being answered.
ANSWERED_QUESTIONS = 2


def _plain(folded_text: str) -> str:
    return fold(folded_text).replace("\u2019", "'")  # typographic apostrophes, as phones type them


def stakes_cue(folded_text: str) -> str | None:
    """The contract item ``folded_text`` (``classifiers.folding.fold_disguises``'s form) states, if any."""
    text = _plain(folded_text)
    for name, pattern in _COMPILED:
        if pattern.search(text):
            return name
    return None


def answer_cue(folded_context: str) -> str | None:
    """What a caller's answer discloses (``HEALTH_ANSWER``, ``SECRET_ANSWER``) when the agent's turn before it
    (``folded_context``: the tail of it the classifier reads, in the folded form) asked about it; else ``None``."""
    questions = _QUESTION.findall(_plain(folded_context))[-ANSWERED_QUESTIONS:]
    for name, pattern in _QUESTION_COMPILED:
        if any(pattern.search(question) for question in questions):
            return name
    return None
