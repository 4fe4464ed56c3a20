"""Deterministic risk detectors for what a learned head must never miss.

Each detector is checksum- or phrase-based, reads both typed text and speech-recogniser transcripts
("four one one one ...", "john at gmail dot com"), and names itself in the reasons of a classification.
A detector hit sets its risks to 1.0; the learned heads can raise other risks but never lower these.

Emergency phrases cover English, Spanish, German, French, Portuguese and romanised Hindi. Idioms that borrow
emergency words ("I'm dying to know", "this is killing me", "you gave me a heart attack") are blanked out
before the phrases are matched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pydantic import BaseModel, ConfigDict

from classifiers import regex
from classifiers.normalise import MAX_TURN_CHARS, fold
from classifiers.spoken import digit_runs

PAYMENT = "payment"
MEDICAL = "medical"
PII = "pii"
EMERGENCY = "emergency"
ACCOUNT_SECURITY = "account_security"


class DetectorHit(BaseModel):
    """One detector firing on a turn: ``name`` is stable, ``method`` says how it matched."""

    model_config = ConfigDict(frozen=True)

    name: str
    method: str
    risks: tuple[str, ...]

    @property
    def reason(self) -> str:
        return f"detector:{self.name}({self.method})"


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


_IBAN_SHAPE = regex.compile(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}")


def iban_valid(candidate: str) -> bool:
    """ISO 13616 mod-97 check of an IBAN without spaces."""
    iban = candidate.upper()
    if not _IBAN_SHAPE.fullmatch(iban):
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def _spoken_or(run_spoken: bool, method: str) -> str:
    return f"spoken,{method}" if run_spoken else method


def _cue(pattern: regex.Pattern, text: str, context: str) -> str | None:
    """``"cue"`` when the turn names what it gives, ``"asked"`` when the assistant just asked for it."""
    if pattern.search(text):
        return "cue"
    if context and pattern.search(context):
        return "asked"
    return None


def _card_numbers(text: str, context: str = "") -> list[DetectorHit]:
    for run in digit_runs(text):
        for window in run.windows(13, 19):
            # A run of one repeated digit passes Luhn for some lengths but is never a real card.
            if len(set(window)) > 1 and luhn_valid(window):
                return [DetectorHit(name="card_number", method=_spoken_or(run.spoken, "luhn"), risks=(PAYMENT, PII))]
    return []


_IBAN = regex.compile(r"\b[a-z]{2}\d{2}(?:[ ]?[a-z0-9]){11,30}\b")


def _ibans(text: str, context: str = "") -> list[DetectorHit]:
    for match in _IBAN.finditer(text):
        compact = match.group().replace(" ", "")
        # The pattern can swallow a following word; try every shorter prefix of at least 15 characters.
        if any(iban_valid(compact[:end]) for end in range(len(compact), 14, -1)):
            return [DetectorHit(name="iban", method="mod97", risks=(PAYMENT, PII))]
    return []


# Neither a digit nor a hyphen on either side (RE2 has no lookarounds, so the neighbours are part of the match).
_SSN_FORMAT = regex.compile(r"(?:^|[^\d-])\d{3}[- ]\d{2}[- ]\d{4}(?:[^\d-]|$)")
_ID_CUE = regex.compile(
    r"\b(ssn|social security|(my|the|his|her) social\b|national insurance|passport( number| no)?|tax id|"
    r"taxpayer id|driver'?s licen[cs]e|dni|steuer-?id|personalausweis|numero de securite sociale|cpf)\b"
)


def _national_ids(text: str, context: str = "") -> list[DetectorHit]:
    if _SSN_FORMAT.search(text):
        return [DetectorHit(name="national_id", method="ssn_format", risks=(PII,))]
    cue = _cue(_ID_CUE, text, context)
    if cue and any(len(run.digits) >= 4 for run in digit_runs(text)):
        return [DetectorHit(name="national_id", method=f"{cue}+digits", risks=(PII,))]
    return []


_MONTHS = (
    r"jan(uary)?|feb(ruary)?|mar(ch)?|apr(il)?|may|june?|july?|aug(ust)?|sep(t|tember)?|oct(ober)?|"
    r"nov(ember)?|dec(ember)?"
)
_DOB_CUE = regex.compile(
    r"\b(born (on|in)|date of birth|birth ?date|birthday( is|'s)|d\.?o\.?b\b|fecha de nacimiento|geburtsdatum|"
    r"geboren am|date de naissance|ne le|nee le|data de nascimento|nasci (em|no))"
)
_DATE_LIKE = regex.compile(
    rf"\b({_MONTHS})\b|\b\d{{1,2}}[/.-]\d{{1,2}}[/.-]\d{{2,4}}\b|\b(19|20)\d{{2}}\b|\b\d{{1,2}}(st|nd|rd|th)\b|"
    r"\b(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|thirteenth|"
    r"fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth|thirtieth)\b|"
    r"\bnineteen (hundred|[a-z]+ty)|\btwo thousand\b"
)


def _dates_of_birth(text: str, context: str = "") -> list[DetectorHit]:
    cue = _DOB_CUE.search(text)
    if cue:
        after_cue = text[cue.end() :]
        if _DATE_LIKE.search(after_cue) or digit_runs(after_cue):
            return [DetectorHit(name="date_of_birth", method="cue+date", risks=(PII,))]
    elif context and _DOB_CUE.search(context) and (_DATE_LIKE.search(text) or digit_runs(text)):
        return [DetectorHit(name="date_of_birth", method="asked+date", risks=(PII,))]
    return []


_EMAIL = regex.compile(r"\b[\w.+-]+@[\w-]+(\.[\w-]+)+\b")
_TLDS = r"com|net|org|edu|gov|io|co|uk|us|ca|de|fr|es|it|nl|pt|br|mx|in|au|info|biz|me|ai|app|dev"
_SPOKEN_EMAIL = regex.compile(
    rf"\b(at|arroba)\s+[a-z0-9-]+(\s+dot\s+[a-z0-9-]+)*\s+dot\s+({_TLDS})\b"
    r"|\b[a-z0-9]+\s+at\s+(gmail|googlemail|yahoo|hotmail|outlook|icloud|aol|protonmail|proton|live|msn)\b"
)


def _emails(text: str, context: str = "") -> list[DetectorHit]:
    if _EMAIL.search(text):
        return [DetectorHit(name="email", method="address", risks=(PII,))]
    if _SPOKEN_EMAIL.search(text):
        return [DetectorHit(name="email", method="spoken", risks=(PII,))]
    return []


# A number with no word character or hyphen next to it (the neighbours are part of the match: RE2 has no
# lookarounds); "+" numbers need no word character before them.
_PHONE_FORMAT = regex.compile(
    r"(?:^|[^\w-])(\+\d{1,3}[\s.-]?)?(\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?:[^\w-]|$)"
    r"|(?:^|\W)\+\d{1,3}([\s.-]?\d{2,4}){2,5}(?:[^\w-]|$)"
)
_PHONE_CUE = regex.compile(
    r"\b(phone|cell|mobile|telephone|call me|call back|callback|reach me|text me|whatsapp|my number|"
    r"contact number|telefono|celular|telefon|handynummer|portable|numero de telefone)\b"
)


def _phone_numbers(text: str, context: str = "") -> list[DetectorHit]:
    if _PHONE_FORMAT.search(text):
        return [DetectorHit(name="phone_number", method="format", risks=(PII,))]
    cue = _cue(_PHONE_CUE, text, context)
    if cue:
        for run in digit_runs(text):
            if run.windows(7, 15):
                return [DetectorHit(name="phone_number", method=_spoken_or(run.spoken, cue), risks=(PII,))]
    return []


_BANK_CUE = regex.compile(r"\b(account (number|no|num)|acct|routing( number)?|sort code|bsb|aba|kontonummer)\b")


def _bank_accounts(text: str, context: str = "") -> list[DetectorHit]:
    cue = _cue(_BANK_CUE, text, context)
    if cue and any(len(run.digits) >= 6 for run in digit_runs(text)):
        return [DetectorHit(name="bank_account", method=f"{cue}+digits", risks=(PII,))]
    return []


_SECURITY_CODE = regex.compile(r"\b(cvv|cvc|cv2|security code|three digits on the back)\b")


def _card_security_codes(text: str, context: str = "") -> list[DetectorHit]:
    cue = _cue(_SECURITY_CODE, text, context)
    if cue and any(3 <= len(run.digits) <= 4 for run in digit_runs(text)):
        return [DetectorHit(name="card_security_code", method=f"{cue}+digits", risks=(PAYMENT, PII))]
    return []


# "my name is <word>" counts unless the word says the name is not being given ("my name is not on the list").
_NAME_IS = regex.compile(r"\bmy name is ([a-z]+)\b")
_NOT_NAMES = frozenset({"on", "not", "in", "the", "still", "wrong", "missing", "spelled"})
_NAME_CUE = regex.compile(
    r"\b(my name'?s [a-z]+"
    r"|under the name|(first|last|full|maiden) name is|surname is|like it sounds|spelled [a-z]( [a-z]){2,}"
    r"|the (account holder|patient|recipient|policy holder|cardholder) is [a-z]+"
    r"|this is [a-z]+ [a-z]+ (calling|speaking)"
    r"|me llamo|mi nombre es|a nombre de|ich heisse|mein name ist|je m'appelle|mon nom est|au nom de"
    r"|meu nome e|me chamo|em nome de|o titular( da conta)? e|mera naam)\b"
)
_WORD = regex.compile(r"[a-z]+")
_NAME_ASKED = regex.compile(
    r"\b(your|the) (full |first |last )?name\b|\bwho am i speaking (with|to)\b|\bwho'?s calling\b"
)
_NOT_A_NAME = regex.compile(
    r"^(yes|yeah|yep|no|nope|sure|ok|okay|sorry|what|why|how|can|could|i|it'?s (fine|ok)|that'?s|hold on|hang on|one"
    r" (sec|second|moment)|wait|hmm|uh|um)\b"
)


def _personal_names(text: str, context: str = "") -> list[DetectorHit]:
    if _NAME_CUE.search(text) or any(match.group(1) not in _NOT_NAMES for match in _NAME_IS.finditer(text)):
        return [DetectorHit(name="personal_name", method="cue", risks=(PII,))]
    words = _WORD.findall(text)
    if context and _NAME_ASKED.search(context) and 2 <= len(words) <= 8 and not _NOT_A_NAME.search(text):
        return [DetectorHit(name="personal_name", method="asked", risks=(PII,))]
    return []


_NUMBER = (
    r"(\d{1,5}[a-z]?|(one|two|three|four|five|six|seven|eight|nine|ten|twenty|thirty|forty|fifty|sixty|seventy"
    r"|eighty|ninety|hundred|thousand)( |-)?)+"
)
_STREET = (
    # No "dr": "the four forty slot with dr chen" is a doctor, not a drive.
    r"street|st|avenue|ave|road|rd|drive|lane|ln|boulevard|blvd|way|court|ct|place|pl|terrace|crescent|close"
    r"|highway|hwy|parkway|pkwy|circle|square"
)
_ADDRESS = regex.compile(
    rf"\b{_NUMBER}\s+([a-z]+\s+){{1,3}}({_STREET})\b"
    r"|\b[a-z]*(strasse|str|weg|platz|allee|gasse|ring|damm)\.?\s+\d{1,4}[a-z]?\b"
    r"|\b(calle|avenida|av|rua|travessa|alameda|carrer)\.?\s+([a-z]+\s+){1,4}\d{1,5}\b"
    r"|\b\d{1,4},?\s+(rue|avenue|boulevard|chemin|allee|impasse|place|quai)\b"
    r"|\b[a-z]{1,2}\d[a-z\d]? \d[a-z]{2}\b"  # UK postcode
)
_ADDRESS_CUE = regex.compile(
    r"\b(my address is|i live at|i live on|ship (it )?to|deliver (it )?to|send it to|mi direccion|vivo en"
    r"|meine adresse|ich wohne in|j'habite|mon adresse|moro na|moro em|meu endereco|mera pata)\b"
)


def _postal_addresses(text: str, context: str = "") -> list[DetectorHit]:
    if _ADDRESS.search(text):
        return [DetectorHit(name="postal_address", method="format", risks=(PII,))]
    if _ADDRESS_CUE.search(text) and digit_runs(text):
        return [DetectorHit(name="postal_address", method="cue+number", risks=(PII,))]
    return []


_CODE_CUE = regex.compile(
    r"\b(verification code|one[- ]time (code|password|passcode)|otp|2fa|two[- ]factor|passcode|pin( number)?"
    r"|log ?in code|sms code|code (you|we|they) (just )?(sent|texted|emailed)|texted me a code"
    r"|codigo de verificacion|bestatigungscode|code de verification|codigo de verificacao|der code lautet"
    r"|le code est|o codigo e|el codigo es)\b"
)


def _one_time_codes(text: str, context: str = "") -> list[DetectorHit]:
    cue = _cue(_CODE_CUE, text, context)
    if cue and any(4 <= len(run.digits) <= 8 for run in digit_runs(text)):
        return [DetectorHit(name="one_time_code", method=f"{cue}+digits", risks=(ACCOUNT_SECURITY,))]
    return []


# --- emergencies -------------------------------------------------------------------------------------------

# Speech fillers and stutters ("my throat is um closing", "brennt brennt es") would break phrase patterns.
_FILLERS = regex.compile(
    r"\b(uh+|um+|er+m?|ah+m?|eh+|euh|hmm+|mm+|you know|i mean|like|actually|basically|matlab|genre|tipo|este)\b,?"
)
_PIECES = regex.compile(r"(\w+)|(\s+)|[^\w\s]+")
_WHITESPACE = regex.compile(r"\s+")

# Spans blanked before emergency phrases are matched. Each is figurative in everyday speech.
_IDIOMS = regex.compile(
    r"\bdying (to|for) \w+|\bdying of (laughter|laughing|boredom|embarrassment|curiosity)"
    r"|\b(is|are|was|it'?s|that'?s|this'?s|you'?re|they'?re) killing (me|it|us)\b|\bkilling (it|time)\b"
    r"|\bkill(ing)? (myself|me) laughing\b|\b(nearly|almost) (died|killed me)\b|\bkill for a\b"
    r"|\b(gave|give|giving|gives) (me|him|her|us) a heart attack\b|\b(nearly|almost) had a heart attack\b"
    r"|\bstroke of (luck|genius)\b|\bfire (away|me an?|off an?)\b"
    r"|\b(you'?re|you are|i'?m|i am|be|got|get|getting) fired\b"
    r"|\b(i'?m|i am|we'?re|you'?re) on fire\b|\bshoot (me|us) an? (email|message|text|note|line)\b"
    r"|\bkill me if\b|\bover my dead body\b|\bdead (tired|serious|end)\b|\b(battery|phone|laptop) (is|was|went) dead\b"
    r"|\bbreathing down (my|our|his|her) neck\b|\bchoked up\b"
    r"|\bfire (drill|extinguisher|safety|insurance|exit|department|station)s?\b"
    r"|\bme muero de (ganas|risa|hambre)\b|\bmuero por\b|\bje meurs (d'envie|de faim|de rire)\b"
    r"|\bmorrendo de (vontade|rir|fome)\b"
    # Not figurative, but not an emergency either: "end my life" is, "end my life insurance" is not.
    r"|\bend(ing)? (my|it) (life|all) insurance"
)

_PERSON = (
    r"he|she|they|him|her|baby|husband|wife|son|daughter|mom|mum|mother|dad|father|child|kid|friend|"
    r"grandma|grandpa|grandmother|grandfather|partner|man|woman|someone|somebody|patient|roommate|toddler"
)
_WEAPON = r"gun|knife|weapon|rifle|pistol|machete|tire iron|crowbar|bat|hammer"
_INGESTED = (
    r"pills?|tablets|meds|medication|medicine|battery|batteries|magnets?|bleach|detergent|pods|chemicals|"
    r"cleaner|poison|antifreeze|something from under the sink"
)
_MED = (EMERGENCY, MEDICAL)
_EMG = (EMERGENCY,)
EmergencyRule = tuple[str, tuple[str, ...], str, str]


def _rule(name: str, risks: tuple[str, ...], language: str, *alternatives: str) -> EmergencyRule:
    return name, risks, language, "|".join(alternatives)


# (detector name, risks, language, pattern) over text text: lowercase, accents stripped, fillers removed.
EMERGENCY_RULES: tuple[EmergencyRule, ...] = (
    # English
    _rule(
        "chest_pain",
        _MED,
        "en",
        r"\bchest (pain|pains|hurts?|is hurting|(is |feels )?(tight|tightness|pressure|crushing))",
        r"\b(pain|pressure|tightness) in (my|his|her|the) chest",
        r"\bmy chest\b.{0,40}\b(hurts?|pain|crushing)",
    ),
    _rule("heart_attack", _MED, "en", r"\bheart attack\b", r"\bcardiac arrest\b"),
    _rule(
        "breathing",
        _MED,
        "en",
        r"\b(can ?no?t|can'?t|cannot|unable to|struggling to|hard to|can barely) breathe?\b",
        r"\b(isn'?t|is not|not|stopped) breathing\b",
        r"\b(trouble|difficulty|problems) breathing\b",
        r"\bshort of breath\b|\bgasping for (air|breath)\b|\bcan'?t catch (my|his|her) breath\b",
        r"\bchoking\b|\bwheezing\b|\bturning blue\b|\basthma attack\b",
    ),
    _rule(
        "stroke",
        _MED,
        "en",
        r"\b(having|had|is having|has had|think i'?m having|signs of) an? stroke\b",
        r"\bface (is |feels |looks )?(droop|drooping|droopy)|\bslurred speech|\bslurring (his|her|my) words",
        r"\bcan'?t (move|feel) (my|his|her) (left|right) (side|arm|leg)\b",
        r"\b(left|right) (arm|side) (is )?(\w+ ){0,3}numb\b",
        r"\bworst headache of (my|his|her) life\b",
    ),
    _rule(
        "unresponsive",
        _MED,
        "en",
        r"\b(collapsed|unconscious|unresponsive|passed out|passing out|fainted)\b",
        rf"\b({_PERSON})\b.{{0,25}}\b(not|isn'?t|stopped) (responding|waking up|moving|making sense)\b",
        rf"\b({_PERSON})\b.{{0,25}}\b(won'?t|will not|doesn'?t|does not|can'?t) wake (up|him|her)\b",
        r"\bhit (my|his|her|their) head\b.{0,40}\b(confused|throwing up|vomiting|unconscious|bleeding)\b",
        r"\b(blood )?sugar (crashed|dropped|is (very |really )?low)\b",
    ),
    _rule(
        "overdose",
        _MED,
        "en",
        r"\boverdos(e|ed|ing)\b",
        r"\b(took|taken|swallowed|ate|had) (a bunch of|too many|too much|a handful of|a (whole )?bottle of|"
        r"all (of )?(the|my|his|her))\b",
        r"\b(took|taken|swallowed) (about |around |maybe )?(\d{2}|ten|twelve|fifteen|twenty|thirty|forty|fifty)"
        r"( of (them|those|my|his|her)\b| (\w+ )?(pills|tablets)\b|\s*[.!?]?\s*$)",
        rf"\b(swallowed|ate|drank|got into)\b.{{0,25}}\b({_INGESTED})\b",
        r"\b(was|been|got) poisoned\b|\bpoison control\b|\bpill bottles everywhere\b",
    ),
    _rule("seizure", _MED, "en", r"\b(having|had|is having) a seizure\b|\bseizing\b|\bconvulsing\b"),
    _rule(
        "severe_bleeding",
        _MED,
        "en",
        r"\bbleeding (a lot|heavily|badly|everywhere|won'?t stop|profusely)",
        r"\b(won'?t|can'?t) stop (the )?bleeding\b|\blosing a lot of blood\b",
        r"\b(coughing|cough|throwing|vomiting|spitting) (up )?blood\b",
    ),
    _rule(
        "anaphylaxis",
        _MED,
        "en",
        r"\banaphyla\w*|\b(severe|bad) allergic reaction\b|\bepipen\b",
        r"\b(throat|tongue|lips|face) (is |are |feels )?(closing|swelling|swollen|tingling)",
    ),
    _rule(
        "injury_accident",
        _EMG,
        "en",
        r"\b(crash|accident|collision)\b.{0,40}\b(hurt|injured|bleeding|trapped|unconscious)\b",
        r"\b(hit|ran over|knocked down) (a|the|my|his|her) (kid|child|person|pedestrian|man|woman|cyclist|boy|girl)\b",
    ),
    _rule(
        "self_harm",
        _EMG,
        "en",
        r"\bkill(ing)? (myself|himself|herself)\b|\bsuicid(e|al)\b|\bself[- ]harm",
        r"\bend(ing)? (my|it) (life|all)\b|\b(don'?t|do not) want to (be alive|live)( anymore)?\b",
        r"\bwants? to die\b|\bbetter off dead\b",
        r"\b(want|going|trying|thinking about|thought about|planning|plan) (to )?(hurt|harm)(ing)? "
        r"(myself|himself|herself)\b",
        r"\b(standing|stood|sitting) on (the|a) (bridge|ledge|roof|edge)\b|\bpills (are )?in front of me\b",
    ),
    _rule(
        "violence",
        _EMG,
        "en",
        rf"\b(has|have|got|holding|pulled|waving|pointing|threatening me with) an? ({_WEAPON})\b",
        rf"\b(outside|door|here|standing|waiting|coming|someone|somebody|man|guy|woman|person|people)\b.{{0,25}}"
        rf"\bwith an? ({_WEAPON})\b",
        r"\b(and|to) (hurt|kill|shoot|stab) (somebody|someone|people|everyone|you all)\b",
        r"\b(been|got|was|being|getting) (shot|stabbed|attacked|assaulted)\b|\bshots? fired\b|\bgunshots?\b",
        r"\bactive shooter\b|\b(someone|somebody|he|she|they|people) (is |are )?shooting\b|\bat gunpoint\b",
        r"\bthreaten(ing|ed|s)? (me|us|to (hurt|kill|shoot|stab))\b",
        r"\b(going to|gonna|will) (hurt|kill|beat|shoot|stab) (me|you|him|her|somebody|someone|them|us|my)\b",
        r"\bbeat (him|her|you|them) up\b|\b(burn|blow) (it|this place|the (store|office|place|building)) (down|up)\b",
        r"\bi know where (you|your \w+) (live|lives|is|are)\b|\bforcing me to\b|\btried to grab me\b",
        r"\b(someone|somebody|a man|a guy|he|she)('s| is) following me\b",
    ),
    _rule(
        "intruder",
        _EMG,
        "en",
        r"\b(break(ing)?|get(ting)?) in(to)? (my|the|our) (house|home|apartment|flat|car)\b",
        r"\b(trying to|tried to) (get|break) in\b|\bsomeone is in (my|our) (house|home)\b|\bintruder\b",
    ),
    _rule(
        "fire",
        _EMG,
        "en",
        r"\bthere'?s a fire\b|\bthere is a fire\b|\bcaught fire\b|\bfire (broke out|in (the|my|our))",
        r"\b(house|home|kitchen|building|apartment|flat|car|room|office|garage|wall|stove|oven|it|that)('s| is)? "
        r"(caught )?on fire\b",
        r"\bsmoke (is )?(coming|pouring)|\b(full of|filling (up )?with) smoke\b|\bthere'?s smoke\b",
        r"\bsmell(s|ing)? (of |like )?(smoke|burning)\b|\bis smoking\b",
    ),
    _rule("gas_leak", _EMG, "en", r"\bgas (leak|smell)\b|\bsmell(s|ing)? (of )?gas\b|\bcarbon monoxide\b"),
    # Spanish
    _rule("chest_pain", _MED, "es", r"\bdolor (fuerte )?(en el|de|del) pecho\b|\bme duele (mucho )?el pecho\b"),
    _rule("heart_attack", _MED, "es", r"\b(infarto|ataque al corazon|ataque cardiaco)\b"),
    _rule(
        "breathing",
        _MED,
        "es",
        r"\bno (puedo|puede) respirar\b|\bno respira( bien)?\b|\brespira mal\b|\bme ahogo\b|\bse esta ahogando\b",
    ),
    _rule("stroke", _MED, "es", r"\b(derrame cerebral|ictus|accidente cerebrovascular)\b"),
    _rule("unresponsive", _MED, "es", r"\bse (desmayo|desplomo)\b|\binconsciente\b"),
    _rule(
        "overdose",
        _MED,
        "es",
        r"\bsobredosis\b|\bse tomo (todas las|muchas) pastillas\b|\benvenenad[oa]\b",
        r"\bse trago (una pila|una bateria|un iman|pastillas|lejia|cloro)\b",
    ),
    _rule("severe_bleeding", _MED, "es", r"\b(tosiendo|vomitando|escupiendo) sangre\b"),
    _rule(
        "self_harm",
        _EMG,
        "es",
        r"\bsuicid(io|arme)\b|\b(me quiero|quiero) (matar|morir)\b|\bmatarme\b",
        r"\bno quiero vivir\b|\bquitarme la vida\b",
    ),
    _rule(
        "violence",
        _EMG,
        "es",
        r"\btiene (una pistola|un arma|un cuchillo)\b|\b(disparos|balacera|tiroteo)\b",
        r"\bcon (un cuchillo|una pistola|un arma)\b",
    ),
    _rule("fire", _EMG, "es", r"\b(incendio|hay fuego|se esta quemando)\b|\bhay (mucho )?humo\b|\bsale humo\b"),
    _rule("gas_leak", _EMG, "es", r"\b(olor a gas|fuga de gas)\b"),
    # German
    _rule("chest_pain", _MED, "de", r"\bbrustschmerz\w*|\bschmerzen in der brust\b|\bdruck auf der brust\b"),
    _rule("heart_attack", _MED, "de", r"\bherzinfarkt\b"),
    _rule(
        "breathing",
        _MED,
        "de",
        r"\b(kann|konnen) (\w+ )?nicht (mehr )?atmen\b|\b(kriege|bekomme|kriegt|bekommt) keine luft\b",
        r"\batmet nicht\b|\batemnot\b",
    ),
    _rule("stroke", _MED, "de", r"\bschlaganfall\b"),
    _rule("unresponsive", _MED, "de", r"\bbewusstlos\b|\bzusammengebrochen\b|\bumgekippt\b"),
    _rule(
        "overdose",
        _MED,
        "de",
        r"\buberdosis\b|\bvergiftung\b|\bzu viele tabletten\b",
        r"\b(batterie|knopfbatterie|magnet|tabletten)\b.{0,20}\bverschluckt\b",
    ),
    _rule("severe_bleeding", _MED, "de", r"\b(huste|hustet|spuckt|erbricht) blut\b"),
    _rule("self_harm", _EMG, "de", r"\b(selbstmord|suizid\w*)\b|\bmich (umbringen|toten)\b|\bnicht mehr leben\b"),
    _rule(
        "violence",
        _EMG,
        "de",
        r"\bhat (eine (waffe|pistole)|ein messer)\b|\bschusse\b|\bmit (einem messer|einer waffe|einer pistole)\b",
    ),
    _rule("fire", _EMG, "de", r"\b(es brennt|brennt es)\b|\b(feuer|brand) (in|im)\b|\bvoller rauch\b"),
    _rule("gas_leak", _EMG, "de", r"\b(gasgeruch|gasleck|riecht nach gas)\b"),
    # French
    _rule("chest_pain", _MED, "fr", r"\b(douleur|mal) (a|dans) la poitrine\b|\bdouleur thoracique\b"),
    _rule("heart_attack", _MED, "fr", r"\b(crise cardiaque|infarctus|arret cardiaque)\b"),
    _rule(
        "breathing",
        _MED,
        "fr",
        r"\b(n'arrive|n'arrivons|n'arrive) (pas|plus) a respirer\b|\bne (peux|peut) (pas|plus) respirer\b",
        r"\bne respire (plus|pas)\b|\brespire mal\b|\bj'etouffe\b",
    ),
    _rule("stroke", _MED, "fr", r"\b(avc|accident vasculaire)\b"),
    _rule("unresponsive", _MED, "fr", r"\binconscient(e)?\b|\bs'est (effondre|evanoui)(e)?\b"),
    _rule(
        "overdose",
        _MED,
        "fr",
        r"\b(overdose|surdose)\b|\bempoisonne(e|ment)?\b",
        r"\bavale (une pile|des piles|un aimant|des medicaments|des cachets|de la javel)\b",
    ),
    _rule("severe_bleeding", _MED, "fr", r"\b(crache|tousse|vomit) du sang\b"),
    _rule(
        "self_harm",
        _EMG,
        "fr",
        r"\b(me suicider|suicide)\b|\bme tuer\b|\ben finir avec (la vie|ma vie|tout)\b",
        r"\bne veux plus vivre\b|\bplus envie de vivre\b",
    ),
    _rule(
        "violence",
        _EMG,
        "fr",
        r"\ba (une arme|un pistolet|un couteau)\b|\bcoups de feu\b|\bavec (un couteau|une arme|un pistolet)\b",
    ),
    _rule("fire", _EMG, "fr", r"\b(incendie|au feu|il y a le feu)\b|\bpleine? de fumee\b|\bde la fumee\b"),
    _rule("gas_leak", _EMG, "fr", r"\b(odeur de gaz|fuite de gaz)\b"),
    # Portuguese
    _rule("chest_pain", _MED, "pt", r"\bdor (forte )?no peito\b|\bpeito (esta |ta )?doendo\b"),
    _rule("heart_attack", _MED, "pt", r"\b(ataque cardiaco|infarto|parada cardiaca)\b"),
    _rule(
        "breathing",
        _MED,
        "pt",
        r"\bnao (consigo|consegue) respirar\b|\bnao (esta|ta) respirando\b|\bfalta de ar\b",
    ),
    _rule("stroke", _MED, "pt", r"\b(avc|derrame)\b|\bbraco (esquerdo|direito) (esta |ta )?dormente\b"),
    _rule("unresponsive", _MED, "pt", r"\b(desmaiou|desmaiada|desmaiado|inconsciente)\b"),
    _rule(
        "overdose",
        _MED,
        "pt",
        r"\boverdose\b|\btomou (muitos|todos os) (comprimidos|remedios)\b|\benvenenad[oa]\b",
        r"\bengoliu (uma|a|um) (bateria|pilha|ima|moeda)\b",
    ),
    _rule("severe_bleeding", _MED, "pt", r"\b(tossindo|vomitando|cuspindo) sangue\b"),
    _rule("self_harm", _EMG, "pt", r"\b(suicidio|me matar|quero morrer)\b|\bnao quero (mais )?viver\b"),
    _rule(
        "violence",
        _EMG,
        "pt",
        r"\b(tem|com) (uma arma|uma faca|um revolver)\b|\btiroteio\b|\btiros\b",
    ),
    _rule("fire", _EMG, "pt", r"\b(incendio|pegando fogo|pegou fogo)\b|\bfumaca\b"),
    _rule("gas_leak", _EMG, "pt", r"\b(cheiro de gas|vazamento de gas)\b"),
    # Romanised Hindi (Hinglish)
    _rule("chest_pain", _MED, "hi", r"\b(seene|sine|chhati|chhaati|chest) (mein|me|mai) (bahut |tez )?(dard|dukh)"),
    _rule("heart_attack", _MED, "hi", r"\bdil ka daura\b|\bheart attack aa"),
    _rule("breathing", _MED, "hi", r"\bsaa?ns (nahi|nahin)\b|\bsaa?ns lene (mein|me) (taklif|dikkat)"),
    _rule("stroke", _MED, "hi", r"\blakwa\b|\bpakshaghat\b|\bhaath sunn\b"),
    _rule("unresponsive", _MED, "hi", r"\bbehosh\b|\bhosh (nahi|nahin)\b|\brespond (nahi|nahin) kar"),
    _rule(
        "overdose",
        _MED,
        "hi",
        r"\b(zeher|jahar|zehar) (kha|pi) (liya|li)\b|\bbahut (saari|sari) (goliyan|dawai) kha li",
        r"\bnigal (li|liya|gaya|gayi)\b",
    ),
    _rule("severe_bleeding", _MED, "hi", r"\b(khaansi|khansi|ulti) (mein|me) khoon\b"),
    _rule(
        "self_harm",
        _EMG,
        "hi",
        r"\b(aatmahatya|atmahatya|khudkushi)\b|\b(marna|mar jaana|mar jana) chaht[aei]\b",
        r"\bkhud ko (maar|khatam)\b|\bjeena (nahi|nahin) (hai|chaht)",
    ),
    _rule("violence", _EMG, "hi", r"\b(bandook|banduk|pistol)\b|\b(chaaku|chaku) (mara|maar|se hamla|leke|lekar)"),
    _rule("fire", _EMG, "hi", r"\baag lag\b|\bdhu+a+n\b"),
    _rule("gas_leak", _EMG, "hi", r"\bgas (leak|ki smell|ki badboo)\b"),
)

_COMPILED_EMERGENCY_RULES = tuple(
    (name, risks, language, regex.compile(pattern)) for name, risks, language, pattern in EMERGENCY_RULES
)
# Nearly every turn matches no rule: one pass of all of them together settles that, and only a turn that matches
# is searched rule by rule.
_ANY_EMERGENCY = regex.compile("|".join(f"(?:{pattern})" for _, _, _, pattern in EMERGENCY_RULES))


def said_once(text: str) -> str:
    r"""``text`` with every run of one word repeated ("brennt brennt", "i i i can't") said once: what the
    backreference ``\b(\w+)(\s+\1\b)+`` replaced by ``\1`` did, which RE2 cannot express."""
    pieces = [
        (match.group(), match.group(1) is not None, match.group(2) is not None) for match in _PIECES.finditer(text)
    ]
    kept = []
    index = 0
    while index < len(pieces):
        piece, is_word, _ = pieces[index]
        kept.append(piece)
        index += 1
        if is_word:
            while index + 1 < len(pieces) and pieces[index][2] and pieces[index + 1][0] == piece:
                index += 2
    return "".join(kept)


def literal_reading(text: str) -> str:
    """Folded text without fillers, stutters or figurative idioms: what emergency phrases are matched against."""
    without_fillers = _FILLERS.sub(" ", text)
    collapsed = said_once(_WHITESPACE.sub(" ", without_fillers))
    return _IDIOMS.sub(" ", collapsed)


def _emergencies(text: str, context: str = "") -> list[DetectorHit]:
    literal = literal_reading(text)
    if not _ANY_EMERGENCY.search(literal):
        return []
    hits: dict[str, DetectorHit] = {}
    for name, risks, language, pattern in _COMPILED_EMERGENCY_RULES:
        if name not in hits and pattern.search(literal):
            hits[name] = DetectorHit(name=name, method=language, risks=risks)
    return list(hits.values())


# (latest user text, previous assistant text or ""), both text by ``detect``, -> hits. Context only supplies
# cues ("what's your date of birth?"); the evidence itself must be in the user's turn.
Detector = Callable[[str, str], list[DetectorHit]]

DEFAULT_DETECTORS: tuple[Detector, ...] = (
    _card_numbers,
    _card_security_codes,
    _ibans,
    _bank_accounts,
    _national_ids,
    _dates_of_birth,
    _emails,
    _phone_numbers,
    _personal_names,
    _postal_addresses,
    _one_time_codes,
    _emergencies,
)


def detect(text: str, context: str = "", detectors: Iterable[Detector] = DEFAULT_DETECTORS) -> list[DetectorHit]:
    """Every detector hit on the user's ``text``, in detector order.

    Detectors read the first ``MAX_TURN_CHARS`` characters of ``text`` and the last of ``context``, as the
    classifier does; ``router.traffic.redact`` masks longer texts a window at a time.
    """
    folded_text, folded_context = fold(text[:MAX_TURN_CHARS]), fold(context[-MAX_TURN_CHARS:])
    return [hit for detector in detectors for hit in detector(folded_text, folded_context)]


def forced_risks(hits: Iterable[DetectorHit]) -> set[str]:
    return {risk for hit in hits for risk in hit.risks}
