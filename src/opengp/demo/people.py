"""The practice's patients: who they are (`patient_summary`) and their demographics.

`patient_summary` is cheap (a dozen random draws) and depends on (seed, index) and the
practice's GPs alone, so the appointment book can call it for any index. The demographic
resources (`demographics`) draw from a separate stream: names, address and telecom can change
without moving anyone's date of birth, registration or death.

Everything is synthetic:
- NHS numbers from the national test range (999...), unique per index and valid (modulus 11);
- phone numbers from Ofcom's ranges for drama (07700 900xxx, 01632 960xxx) and e-mail
  addresses at example.com (RFC 2606);
- addresses on made-up streets of a fictional town, with postcode-shaped values in one
  outward code, ZX4, of an area that does not exist (the real areas never start ZX).

Age and sex follow England's population (ONS mid-year estimates, rounded): about 18-19% aged
0-15, 62-63% aged 16-64 and 18-19% aged 65 and over, with more women among the old. Deaths,
about 0.8% of the list a year and steeply skewed to the old, fall in the history window;
the sampling weights are raised by each band's deaths so that the living list keeps that
shape.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from typing import Any

from opengp.demo.dates import YEAR_DAYS, age_on, random_day, years_before
from opengp.demo.model import (
    NHS_NUMBER_SYSTEM,
    DemoConfig,
    PatientSummary,
    Practice,
    StaffMember,
    demo_id,
    stream,
)
from opengp.demo.names import (
    BRITISH_COHORTS,
    BUILDINGS,
    HERITAGES,
    STREET_KINDS,
    STREET_WORDS,
    Heritage,
)
from opengp.fhir.nhs_number import check_digit

TOWN = "Brackenford"  # fictional
OUTWARD_CODE = "ZX4"  # no postcode area starts ZX
GP_KINDS = frozenset({"gp-partner", "salaried-gp"})

# (first age, last age + 1, per cent of England's population, female share, annual deaths)
AGE_BANDS: tuple[tuple[int, int, float, float, float], ...] = (
    (0, 5, 5.5, 0.488, 0.0009),
    (5, 10, 6.0, 0.488, 0.0001),
    (10, 15, 6.2, 0.488, 0.0001),
    (15, 20, 5.8, 0.487, 0.0002),
    (20, 25, 6.1, 0.495, 0.0003),
    (25, 30, 6.6, 0.502, 0.0004),
    (30, 35, 7.0, 0.506, 0.0006),
    (35, 40, 6.8, 0.507, 0.0009),
    (40, 45, 6.5, 0.505, 0.0013),
    (45, 50, 6.3, 0.508, 0.002),
    (50, 55, 6.8, 0.508, 0.003),
    (55, 60, 6.7, 0.506, 0.0045),
    (60, 65, 5.9, 0.511, 0.007),
    (65, 70, 5.0, 0.516, 0.011),
    (70, 75, 4.8, 0.527, 0.017),
    (75, 80, 3.9, 0.545, 0.029),
    (80, 85, 2.5, 0.573, 0.05),
    (85, 90, 1.5, 0.615, 0.09),
    (90, 101, 0.9, 0.68, 0.19),
)

_V3_ROLE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
_V2_CONTACT_ROLE = "http://terminology.hl7.org/CodeSystem/v2-0131"
_LANGUAGE = "urn:ietf:bcp:47"
_ENGLISH = {"coding": [{"system": _LANGUAGE, "code": "en", "display": "English"}]}
_NEXT_OF_KIN = {"coding": [{"system": _V2_CONTACT_ROLE, "code": "N", "display": "Next-of-Kin"}]}
_EMERGENCY = {"coding": [{"system": _V2_CONTACT_ROLE, "code": "C", "display": "Emergency Contact"}]}
_RELATIONSHIPS = {
    "MTH": "mother",
    "FTH": "father",
    "DAU": "natural daughter",
    "SON": "natural son",
    "WIFE": "wife",
    "HUSB": "husband",
}


# --- who: the summary -------------------------------------------------------------------


@cache
def _age_table(history_years: int) -> tuple[list[float], float]:
    """Cumulative sampling weights of AGE_BANDS: each band's share divided by its survival
    over the history window, so that the living list has the population's shape."""
    cumulative: list[float] = []
    total = 0.0
    for _, _, share, _, deaths in AGE_BANDS:
        total += share / (1 - deaths) ** history_years
        cumulative.append(total)
    return cumulative, total


def general_practitioners(practice: Practice) -> tuple[StaffMember, ...]:
    gps = tuple(s for s in practice.staff if s.kind in GP_KINDS)
    if not gps:
        raise ValueError(f"practice {practice.ods_code} has no GPs to register patients with")
    return gps


def patient_summary(config: DemoConfig, index: int, practice: Practice) -> PatientSummary:
    """Who patient `index` is: date of birth, sex, registration, death, usual GP."""
    rng = stream(config, "patient", index)
    as_of = config.as_of
    cumulative, total = _age_table(config.history_years)
    band = AGE_BANDS[bisect.bisect_right(cumulative, rng.random() * total)]
    first, last, _, female_share, deaths = band
    age = rng.triangular(first, last, first) if first >= 90 else rng.uniform(first, last)
    birth = as_of - timedelta(days=int(age * YEAR_DAYS))
    sex = "female" if rng.random() < female_share else "male"
    registration = _registration(rng, birth, age, as_of)
    death = _death(rng, config, registration, deaths)
    gps = general_practitioners(practice)
    usual_gp = gps[rng.randrange(len(gps))]
    return PatientSummary(
        index=index,
        patient_id=demo_id(config, "patient", index),
        birth_date=birth,
        sex=sex,
        registration_date=registration,
        death_date=death,
        usual_gp_role_id=usual_gp.role_id,
    )


def _registration(rng: random.Random, birth: date, age: float, as_of: date) -> date:
    """Babies are registered a few weeks after birth; about one in ten of the list joined in
    the last year, and the longest-standing have been with the practice for decades."""
    at_birth = min(birth + timedelta(days=rng.randint(10, 42)), as_of)
    if age < 16:
        moved_in = rng.random() < 0.25
    else:
        years = rng.expovariate(1 / 11)
        moved_in = years < age - 0.2
        if moved_in:
            return max(as_of - timedelta(days=int(years * YEAR_DAYS)), at_birth)
    if not moved_in or at_birth >= as_of:
        return at_birth
    return random_day(rng, at_birth, as_of)


def _death(
    rng: random.Random, config: DemoConfig, registration: date, annual: float
) -> date | None:
    history_start = years_before(config.as_of, config.history_years)
    first = max(history_start, registration + timedelta(days=1))
    last = config.as_of - timedelta(days=1)
    if first > last:
        return None
    years = (last - first).days / YEAR_DAYS
    if rng.random() >= 1 - (1 - annual) ** years:
        return None
    return random_day(rng, first, last)


def nhs_number(config: DemoConfig, index: int) -> str:
    """A valid NHS number in the test range (999...), unique to `index` within a seed.

    The nine-digit stems come in blocks of ten (same first eight digits); at most one stem in
    a block has no check digit (the weight of the last digit is 2, so the ten sums are
    distinct modulo 11). Index i takes the (i % 9)th valid stem of a block picked by a
    bijection of i // 9, shifted by the seed: no two indexes share a number.
    """
    blocks = 100_000
    if not 0 <= index < blocks * 9:
        raise ValueError(f"index {index} is beyond the {blocks * 9} numbers of the test range")
    block = (7_919 * (index // 9) + 104_729 * config.seed) % blocks
    wanted = index % 9
    base = 999_000_000 + block * 10
    for last in range(10):
        stem = str(base + last)
        digit = check_digit(stem)
        if digit is None:
            continue
        if wanted == 0:
            return f"{stem}{digit}"
        wanted -= 1
    raise AssertionError("unreachable: every block of ten stems has nine valid ones")


# --- what: names, address, telecom ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Person:
    """Demographic facts the clinical record also uses (letters, proxies)."""

    nhs_number: str
    given: str
    family: str
    title: str | None
    heritage: str
    language: tuple[str, str] | None  # preferred language other than English

    @property
    def display(self) -> str:
        return f"{self.given} {self.family}"


_HERITAGE_WEIGHTS = [h.weight for h in HERITAGES]


def _heritage(rng: random.Random) -> Heritage:
    return rng.choices(HERITAGES, _HERITAGE_WEIGHTS)[0]


def _given(rng: random.Random, heritage: Heritage, sex: str, born: int) -> str:
    if heritage.female:
        return rng.choice(heritage.female if sex == "female" else heritage.male)
    for before, female, male in BRITISH_COHORTS:
        if born < before:
            return rng.choice(female if sex == "female" else male)
    raise AssertionError("the last cohort is open-ended")


def _surname(rng: random.Random, heritage: Heritage, sex: str) -> str:
    surname = rng.choice(heritage.surnames)
    if sex == "female":
        for ending, feminine in heritage.feminine:
            if surname.endswith(ending) and (ending != surname or rng.random() < 0.6):
                return surname[: -len(ending)] + feminine
    return surname


def _title(rng: random.Random, sex: str, age: int) -> str | None:
    if age < 16:
        return None
    if rng.random() < 0.01:
        return "Dr"
    if sex == "male":
        return "Mr"
    if age < 25:
        return "Miss" if rng.random() < 0.7 else "Ms"
    draw = rng.random()
    return "Mrs" if draw < 0.6 else "Ms" if draw < 0.85 else "Miss"


def _mobile(rng: random.Random) -> str:
    return f"07700 900{rng.randrange(1000):03d}"


def _landline(rng: random.Random) -> str:
    return f"01632 960{rng.randrange(1000):03d}"


def _address(rng: random.Random) -> dict[str, Any]:
    word = rng.randrange(len(STREET_WORDS))
    kind = rng.randrange(len(STREET_KINDS))
    street = f"{STREET_WORDS[word]} {STREET_KINDS[kind]}"
    # One street, one postcode: sector and unit derived from the street.
    code = word * len(STREET_KINDS) + kind
    letters = "ABDEFGHJLNPQRSTUWXYZ"
    postcode = f"{OUTWARD_CODE} {code % 10}{letters[code // 10 % 20]}{letters[code // 200 % 20]}"
    number = int(rng.triangular(1, 160, 1))
    if rng.random() < 0.15:
        line = [f"Flat {rng.randint(1, 24)}", f"{rng.choice(BUILDINGS)}, {number} {street}"]
    else:
        line = [f"{number} {street}"]
    return {
        "use": "home",
        "type": "both",
        "line": line,
        "city": TOWN,
        "postalCode": postcode,
        "country": "GB",
    }


def _human_name(given: str, family: str, title: str | None, middle: str | None = None) -> Any:
    name: dict[str, Any] = {"use": "official", "family": family, "given": [given]}
    if middle:
        name["given"].append(middle)
    if title:
        name["prefix"] = [title]
    return name


def demographics(
    config: DemoConfig, practice: Practice, summary: PatientSummary
) -> tuple[Person, list[dict[str, Any]]]:
    """The Patient, the registration (EpisodeOfCare) and any proxies (RelatedPerson)."""
    rng = stream(config, "demographics", summary.index)
    as_of = config.as_of
    end = summary.death_date or as_of
    age = age_on(summary.birth_date, end)
    sex = summary.sex
    heritage = _heritage(rng)
    born = summary.birth_date.year
    given = _given(rng, heritage, sex, born)
    family = _surname(rng, heritage, sex)
    middle = _given(rng, heritage, sex, born) if rng.random() < 0.4 else None
    if middle == given:
        middle = None
    title = _title(rng, sex, age)
    language = None
    chance = heritage.other_language * (1.6 if age >= 60 else 1.0)
    if heritage.languages and age >= 18 and rng.random() < chance:
        language = rng.choice(heritage.languages)
    person = Person(nhs_number(config, summary.index), given, family, title, heritage.key, language)
    pid = summary.patient_id
    patient_ref = {"reference": f"Patient/{pid}", "display": person.display}
    gp = next(s for s in practice.staff if s.role_id == summary.usual_gp_role_id)

    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": person.nhs_number}],
        "active": summary.death_date is None,
        "name": [_human_name(given, family, title, middle)],
    }
    telecom = _telecom(rng, person, age)
    if telecom:
        patient["telecom"] = telecom
    patient["gender"] = sex
    patient["birthDate"] = summary.birth_date.isoformat()
    if summary.death_date is not None:
        patient["deceasedDateTime"] = summary.death_date.isoformat()
    address = _address(rng)
    patient["address"] = [address]

    resources: list[dict[str, Any]] = [patient]
    contacts: list[dict[str, Any]] = []
    if age < 16:
        relative = _relative(rng, heritage, family, "MTH" if rng.random() < 0.65 else "FTH", born)
        contacts.append(_contact(relative, (_NEXT_OF_KIN, _EMERGENCY)))
        if rng.random() < 0.3:  # online proxy access for a parent
            resources.append(
                _related_person(config, summary, patient_ref, relative, "Parent, proxy")
            )
    elif age >= 18 and rng.random() < 0.45:
        code = _kin_code(rng, sex, age)
        relative = _relative(rng, heritage, family, code, born)
        contacts.append(_contact(relative, (_NEXT_OF_KIN,)))
        if age >= 75 and summary.death_date is None and rng.random() < 0.25:
            resources.append(
                _related_person(config, summary, patient_ref, relative, "Carer, proxy")
            )
    if contacts:
        patient["contact"] = contacts
    preferred = (
        {"coding": [{"system": _LANGUAGE, "code": language[0], "display": language[1]}]}
        if language
        else _ENGLISH
    )
    patient["communication"] = [{"language": preferred, "preferred": True}]
    if language and rng.random() < 0.5:
        patient["communication"].append({"language": _ENGLISH, "preferred": False})
    patient["generalPractitioner"] = [
        {"reference": f"PractitionerRole/{gp.role_id}", "display": gp.name}
    ]
    patient["managingOrganization"] = {
        "reference": f"Organization/{practice.organization_id}",
        "display": practice.name,
    }
    resources.insert(1, _registration_episode(config, practice, summary, patient_ref, gp))
    return person, resources


def _telecom(rng: random.Random, person: Person, age: int) -> list[dict[str, Any]]:
    if age < 16:
        return []
    telecom: list[dict[str, Any]] = []
    has_mobile = rng.random() < (0.97 if age < 70 else 0.8 if age < 85 else 0.45)
    if has_mobile:
        telecom.append({"system": "phone", "value": _mobile(rng), "use": "mobile"})
    if rng.random() < (0.2 if age < 50 else 0.5 if age < 70 else 0.85) or not has_mobile:
        telecom.append({"system": "phone", "value": _landline(rng), "use": "home"})
    if age < 80 and rng.random() < 0.55:
        local = f"{person.given}.{person.family}".lower().replace("'", "").replace(" ", "")
        email = f"{local}{rng.randrange(10, 99)}@example.com"
        telecom.append({"system": "email", "value": email, "use": "home"})
    # rank 1 is the preferred way to contact; the old without a mobile prefer the landline.
    for rank, point in enumerate(telecom, start=1):
        point["rank"] = rank
    return telecom


def _kin_code(rng: random.Random, sex: str, age: int) -> str:
    if age >= 60 and rng.random() < 0.55:
        return "DAU" if rng.random() < 0.6 else "SON"
    if sex == "female":
        return "HUSB" if rng.random() < 0.9 else "WIFE"
    return "WIFE" if rng.random() < 0.9 else "HUSB"


@dataclass(frozen=True, slots=True)
class _Relative:
    code: str
    given: str
    family: str
    sex: str
    mobile: str


def _relative(
    rng: random.Random, heritage: Heritage, family: str, code: str, patient_born: int
) -> _Relative:
    sex = "female" if code in ("MTH", "DAU", "WIFE") else "male"
    born = {"MTH": patient_born - 30, "FTH": patient_born - 32}.get(code, patient_born)
    if code in ("DAU", "SON"):
        born = patient_born + 30
    given = _given(rng, heritage, sex, born)
    keeps_name = rng.random() < (0.5 if code == "DAU" else 0.85)
    surname = family if keeps_name else _surname(rng, heritage, sex)
    return _Relative(code, given, surname, sex, _mobile(rng))


def _contact(relative: _Relative, roles: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    return {
        "relationship": list(roles),
        "name": {"use": "usual", "family": relative.family, "given": [relative.given]},
        "telecom": [{"system": "phone", "value": relative.mobile, "use": "mobile", "rank": 1}],
        "gender": relative.sex,
    }


def _related_person(
    config: DemoConfig,
    summary: PatientSummary,
    patient_ref: dict[str, Any],
    relative: _Relative,
    role: str,
) -> dict[str, Any]:
    rng = stream(config, "proxy", summary.index)
    end = summary.death_date or config.as_of
    start = random_day(rng, summary.registration_date, end)
    relationship = _RELATIONSHIPS[relative.code]
    return {
        "resourceType": "RelatedPerson",
        "id": demo_id(config, "patient", summary.index, "RelatedPerson", 1),
        "active": True,
        "patient": patient_ref,
        "relationship": [
            {
                "coding": [{"system": _V3_ROLE, "code": relative.code, "display": relationship}],
                "text": f"{relationship.split()[-1].capitalize()} ({role.lower()})",
            }
        ],
        "name": [{"use": "usual", "family": relative.family, "given": [relative.given]}],
        "telecom": [{"system": "phone", "value": relative.mobile, "use": "mobile", "rank": 1}],
        "gender": relative.sex,
        "period": {"start": start.isoformat()},
    }


def _registration_episode(
    config: DemoConfig,
    practice: Practice,
    summary: PatientSummary,
    patient_ref: dict[str, Any],
    gp: StaffMember,
) -> dict[str, Any]:
    """The GP registration as an EpisodeOfCare: core R4 has nowhere else to keep the date
    the patient joined the list (UK Core's registration extensions are optional)."""
    period = {"start": summary.registration_date.isoformat()}
    if summary.death_date is not None:
        period["end"] = summary.death_date.isoformat()
    return {
        "resourceType": "EpisodeOfCare",
        "id": demo_id(config, "patient", summary.index, "EpisodeOfCare", 1),
        "status": "active" if summary.death_date is None else "finished",
        "type": [{"text": "GP registration"}],
        "patient": patient_ref,
        "managingOrganization": {
            "reference": f"Organization/{practice.organization_id}",
            "display": practice.name,
        },
        "period": period,
        "careManager": {"reference": f"PractitionerRole/{gp.role_id}", "display": gp.name},
    }
