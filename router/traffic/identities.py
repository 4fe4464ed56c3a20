"""Synthetic callers and the values they read out: names, card numbers, IBANs, dates of birth, order numbers.

Every value is drawn from the ``random.Random`` passed in, so a seed fixes them all. Card numbers pass the Luhn
check and IBANs the ISO 13616 mod-97 check, because the PII detectors validate checksums and a sample log must
exercise them the way real callers do.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from datetime import date, timedelta


def listed(text: str, separator: str | None = None) -> tuple[str, ...]:
    return tuple(text.split(separator))


FIRST_NAMES = listed(
    "Maria James Aisha Tom Priya Daniel Sofia Kwame Li Hannah Mateo Grace Omar Chloe Raj Emily Tariq "
    "Olivia Diego Fatima Noah Ingrid Samuel Mei Patrick Yara Lukas Amara Ben Rosa Kenji Zoe Ahmed Nina "
    "Carlos Leah"
)
LAST_NAMES = listed(
    "Garcia Okafor Smith Nguyen Patel Kowalski Brown Haddad Murphy Rossi Chen Johnson Mensah Silva "
    "Fischer O'Brien Kim Dubois Ivanova Walker Sato Ahmed Novak Lindqvist Torres Abara Reyes Campbell "
    "Yilmaz Schmidt Costa Baker"
)
EMAIL_DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me", "hotmail.co.uk", "fastmail.com")
STREETS = listed(
    "Maple Avenue, High Street, Elm Road, Station Road, Oak Lane, Church Street, Park Drive, Harbour Way, "
    "Mill Lane, Cedar Court, Victoria Road, Lakeview Terrace, King Street",
    ", ",
)
CITIES = ("Springfield", "Leeds", "Austin", "Bristol", "Denver", "Manchester", "Portland", "Glasgow", "Tucson")
DOCTORS = ("Dr. Patel", "Dr. Alvarez", "Dr. Okonkwo", "Dr. Brennan", "Dr. Sato", "Dr. Lindqvist", "Dr. Haddad")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
MONTHS = listed("January February March April May June July August September October November December")
ORDINALS = {1: "st", 2: "nd", 3: "rd", 21: "st", 22: "nd", 23: "rd", 31: "st"}
PLANS = ("Starter", "Team", "Growth", "Business", "Enterprise")
COMPANIES = ("Brightloop", "Northwind Studio", "Kestrel Labs", "Oakhouse Dental", "Bluefin Apps", "Parcelly")
# Card prefixes of the test ranges the big networks publish, so no generated number is someone's card.
CARD_PREFIXES = ("4111", "4012", "4242", "5555", "5105", "2223", "3782")
# Country → (bank-code letters, digits) of its BBAN.
IBAN_LAYOUTS = {"DE": (0, 18), "GB": (4, 14), "FR": (0, 23), "NL": (4, 10)}


def luhn_check_digit(body: str) -> str:
    total = 0
    for index, char in enumerate(reversed(body)):
        digit = int(char)
        if index % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return str((10 - total % 10) % 10)


def card_number(rng: random.Random) -> str:
    prefix = rng.choice(CARD_PREFIXES)
    length = 15 if prefix.startswith("37") else 16
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    number = body + luhn_check_digit(body)
    if length == 15:
        return f"{number[:4]} {number[4:10]} {number[10:]}"
    return " ".join(number[i : i + 4] for i in range(0, 16, 4))


def iban_check_digits(country: str, bban: str) -> str:
    rearranged = bban + country + "00"
    numeric = "".join(str(int(char, 36)) for char in rearranged)
    return f"{98 - int(numeric) % 97:02d}"


def iban(rng: random.Random) -> str:
    country = rng.choice(sorted(IBAN_LAYOUTS))
    bban = code(rng, *IBAN_LAYOUTS[country])
    compact = country + iban_check_digits(country, bban) + bban
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def ssn(rng: random.Random) -> str:
    area = rng.choice([n for n in range(1, 900) if n != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def phone(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return f"({rng.randint(201, 989)}) 555-{rng.randint(100, 199):04d}"
    return f"07700 900{rng.randint(0, 999):03d}"


def date_of_birth(rng: random.Random) -> date:
    return date(1940, 1, 1) + timedelta(days=rng.randint(0, 365 * 64))


def spoken_date(day: date, rng: random.Random) -> str:
    """A date the way callers say it, in one of several styles."""
    suffix = ORDINALS.get(day.day, "th")
    style = rng.randrange(4)
    if style == 0:
        return f"{MONTHS[day.month - 1]} {day.day}{suffix}, {day.year}"
    if style == 1:
        return f"the {day.day}{suffix} of {MONTHS[day.month - 1]} {day.year}"
    if style == 2:
        return f"{day.month:02d}/{day.day:02d}/{day.year}"
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def email(first: str, last: str, rng: random.Random) -> str:
    local = rng.choice(
        (f"{first}.{last}", f"{first}{last[0]}", f"{first[0]}{last}", f"{first}{rng.randint(1, 99)}", f"{last}.{first}")
    )
    return f"{local.lower().replace(chr(39), '')}@{rng.choice(EMAIL_DOMAINS)}"


def money(rng: random.Random, low: int, high: int) -> str:
    return f"${rng.randint(low, high)}.{rng.choice(('00', '99', '50', f'{rng.randint(0, 99):02d}'))}"


def clock_time(rng: random.Random) -> str:
    hour = rng.randint(8, 17)
    minute = rng.choice(("00", "15", "30", "45"))
    return f"{hour - 12 if hour > 12 else hour}:{minute} {'pm' if hour >= 12 else 'am'}"


def code(rng: random.Random, letters: int, digits: int) -> str:
    return "".join(rng.choice(string.ascii_uppercase) for _ in range(letters)) + "".join(
        rng.choice(string.digits) for _ in range(digits)
    )


class CallerValues:
    """The values one caller reads out during one call, drawn on first use and then kept.

    Templates name them as ``{slot}``; the same slot gives the same value for the whole call, so the caller who
    spelled an email keeps it when asked to confirm it.
    """

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._values: dict[str, str] = {}
        self._makers: dict[str, Callable[[], str]] = {
            "first": lambda: rng.choice(FIRST_NAMES),
            "last": lambda: rng.choice(LAST_NAMES),
            "name": lambda: f"{self['first']} {self['last']}",
            "email": lambda: email(self["first"], self["last"], rng),
            "phone": lambda: phone(rng),
            "dob": lambda: spoken_date(date_of_birth(rng), rng),
            "card": lambda: card_number(rng),
            "last4": lambda: f"{rng.randint(0, 9999):04d}",
            "iban": lambda: iban(rng),
            "ssn": lambda: ssn(rng),
            "ssn4": lambda: f"{rng.randint(1, 9999):04d}",
            "street": lambda: f"{rng.randint(2, 480)} {rng.choice(STREETS)}",
            "city": lambda: rng.choice(CITIES),
            "zip": lambda: f"{rng.randint(10000, 99899)}",
            "tracking": lambda: code(rng, 2, 9) + rng.choice(("US", "GB", "DE")),
            "order": lambda: f"{rng.randint(100000, 999999)}",
            "invoice": lambda: f"INV-{rng.randint(2024, 2025)}-{rng.randint(1000, 99999)}",
            "member": lambda: code(rng, 3, 7),
            "amount": lambda: money(rng, 9, 480),
            "big_amount": lambda: money(rng, 600, 9500),
            "day": lambda: rng.choice(WEEKDAYS),
            "time": lambda: clock_time(rng),
            "doctor": lambda: rng.choice(DOCTORS),
            "plan": lambda: rng.choice(PLANS),
            "company": lambda: rng.choice(COMPANIES),
            "seats": lambda: str(rng.choice((3, 5, 8, 12, 25, 40))),
            "days": lambda: str(rng.randint(2, 12)),
        }

    def __getitem__(self, slot: str) -> str:
        if slot not in self._values:
            self._values[slot] = self._makers[slot]()
        return self._values[slot]

    def fill(self, template: str) -> str:
        return template.format_map(self)

    @property
    def slots(self) -> frozenset[str]:
        return frozenset(self._makers)
