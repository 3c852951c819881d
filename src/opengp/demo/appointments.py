"""The appointment book: each clinician's Schedule, its Slots session by session, and the
Appointments booked into them, streamed.

Shape (UK Core R4 profiles, following GP Connect Appointment Management where it fits R4):
- one Schedule per clinician: `actor` = their PractitionerRole, the Location they work at and
  the HealthcareService they deliver; `serviceCategory` HL7 service-category 17 General
  Practice with the service name as text; `serviceType` the practice slot types offered;
  `planningHorizon` the generated window;
- Slot: `schedule`, `status` free|busy, `start`/`end` in UK local time with offset (as GP
  Connect sends them), and three ways of saying what the slot is for:
  - `serviceType.text`: the practice-defined slot type ("Routine GP appointment"), exactly
    where GP Connect puts it ("SHALL populate Slot.serviceType.text with a practice defined
    slot type description");
  - `serviceCategory`: the National Slot Type Category the practice maps that slot type to
    (NHS England's General Practice Appointments Data categories), coded; GP Connect has no
    element for it, and R4's serviceCategory ("a broad categorization of the service that
    is to be performed during this appointment") is the element meant for it;
  - the delivery channel (In-person | Telephone | Video) in UK Core's
    Extension-UKCore-DeliveryChannel, whose context is Appointment and Slot, as GP Connect
    does with its STU3 delivery-channel extension;
- Appointment: copies the slot's category, type text and delivery channel; `slot`; `start`/
  `end` from the slot; `created` (when it was booked); `participant` = the patient, the
  PractitionerRole and the Location (none for a home visit, which happens at the patient's
  home), each `accepted`; `appointmentType` from HL7 v2-0276 (ROUTINE, FOLLOWUP, CHECKUP)
  or UK Core's urgent-follow-up where one applies, text only for same-day urgent care, which
  neither list has; `cancelationReason` from the HL7 appointment-cancellation-reason codes.

Booking model, per slot: past slots (before `as_of`) are booked ~80% of the time; future
slots within two weeks mostly, further out less, same-day slot types hardly at all (they are
released on the day). Booked past appointments are fulfilled, or noshow (~4-5%: fewer for
same-day bookings, more for those booked weeks ahead); some past slots also hold an
appointment cancelled before it (a slot left free, or re-booked by another patient); future
appointments are all `booked`. Days from booking to appointment follow the slot type: same-
day slot types are booked on the day, routine GP slots from the same day to six weeks
ahead, planned clinics weeks ahead; about 40% of past appointments are same-day bookings.

Volume scales with the list: about 1,300 slots a week per 10,000 patients (so ~4,500
appointments a month), shared among the clinicians of each kind; part-time clinicians work
fewer sessions on fixed days; nobody works weekends or English bank holidays, and each
clinician is on leave some weeks.

Determinism and memory: every clinician-day draws from its own stream, so the book is the
same for a seed whatever else is generated; slots are yielded as they are made and
forgotten.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from math import floor
from typing import Any

from opengp.demo.model import DemoConfig, PatientSummary, Practice, StaffMember, demo_id, stream
from opengp.demo.practice import (
    SERVICES,
    general_practice_category,
    profile,
    service_id,
    service_of,
    site_of,
)
from opengp.terminology import concept, starter_set

DELIVERY_CHANNEL_URL = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-DeliveryChannel"
)
V2_0276 = "http://terminology.hl7.org/CodeSystem/v2-0276"
UKCORE_APPOINTMENT_REASON = "https://fhir.hl7.org.uk/CodeSystem/UKCore-AppointmentReasonCode"
CANCELLATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason"

# Slots a week per 10,000 patients, by service (GPs: partners and salaried together).
WEEKLY_SLOTS_PER_10K = {"gp": 790, "nurse": 249, "hca": 176, "pharmacist": 66}
MAX_SESSIONS = 9  # of the 10 half-days in a week
LEAVE = 0.08  # chance a clinician is away for a given week

PAST_UTILISATION = 0.8
REBOOKED_AFTER_CANCELLATION = 0.05  # booked past slot that first held a cancelled booking
CANCELLED_AND_LEFT_FREE = 0.2  # free past slot that held a cancelled booking
NOSHOW_SAME_DAY = 0.02
NOSHOW_BOOKED_AHEAD = 0.06
PICK_TRIES = 25

# Lead times (days from booking to appointment): (lowest, highest, weight) buckets.
Lead = tuple[tuple[int, int, float], ...]
SAME_DAY: Lead = ((0, 0, 0.9), (1, 1, 0.1))
GP_PREBOOK: Lead = ((0, 0, 0.25), (1, 7, 0.35), (8, 28, 0.3), (29, 42, 0.1))
PLANNED: Lead = ((0, 0, 0.04), (1, 7, 0.26), (8, 28, 0.45), (29, 56, 0.25))

AM, PM = 0, 1
IN_PERSON, TELEPHONE, VIDEO = "channel_in_person", "channel_telephone", "channel_video"

Who = Callable[[int, str], float]  # (age, sex) -> chance of accepting the patient


def _age_weight(young: float, adult: float, middle: float, older: float, old: float) -> Who:
    def weight(age: int, sex: str) -> float:
        if age < 15:
            w = young
        elif age < 45:
            w = adult
        elif age < 65:
            w = middle
        elif age < 75:
            w = older
        else:
            w = old
        return w if sex == "female" else w * 0.8

    return weight


GP_PATIENTS = _age_weight(0.6, 0.55, 0.7, 0.9, 1.0)
ADULTS_OLDER = _age_weight(0.0, 0.3, 0.6, 1.0, 1.0)
ADULTS_ALL = _age_weight(0.15, 0.6, 0.8, 1.0, 1.0)


def _home_visit(age: int, sex: str) -> float:
    return 1.0 if age >= 80 else 0.3 if age >= 70 else 0.01


def _cervical_screening(age: int, sex: str) -> float:
    return 1.0 if sex == "female" and 25 <= age <= 64 else 0.0


def _childhood_immunisations(age: int, sex: str) -> float:
    return 1.0 if age <= 5 else 0.0


def _health_check(age: int, sex: str) -> float:
    return 1.0 if 40 <= age <= 74 else 0.0


def _medication_review(age: int, sex: str) -> float:
    return 1.0 if age >= 65 else 0.4 if age >= 45 else 0.08 if age >= 18 else 0.0


@dataclass(frozen=True, slots=True)
class SlotType:
    text: str  # practice-defined slot type
    categories: tuple[str, ...]  # National Slot Type Category keys, first present wins
    on_the_day: bool  # released and booked on the day
    lead: Lead
    purpose: str  # routine | checkup | urgent: how appointmentType is chosen
    who: Who
    channel: str | None = None  # overrides the session's channel
    minutes: int | None = None  # overrides the session's slot length


GP_ROUTINE = SlotType(
    "Routine GP appointment",
    ("slot_general_consultation_routine",),
    False,
    GP_PREBOOK,
    "routine",
    GP_PATIENTS,
)
GP_ACUTE = SlotType(
    "On the day GP appointment",
    ("slot_general_consultation_acute",),
    True,
    SAME_DAY,
    "urgent",
    GP_PATIENTS,
)
GP_TRIAGE = SlotType(
    "Duty doctor telephone triage",
    ("slot_clinical_triage",),
    True,
    SAME_DAY,
    "urgent",
    GP_PATIENTS,
)
HOME_VISIT = SlotType(
    "GP home visit",
    ("slot_home_visit",),
    True,
    SAME_DAY,
    "urgent",
    _home_visit,
    channel=IN_PERSON,
    minutes=30,
)
NURSE_GENERAL = SlotType(
    "Practice nurse appointment",
    ("slot_planned_clinical_procedure", "slot_planned_clinics"),
    False,
    PLANNED,
    "routine",
    ADULTS_ALL,
)
CERVICAL_SCREENING = SlotType(
    "Cervical screening",
    ("slot_planned_clinical_procedure", "slot_planned_clinics"),
    False,
    PLANNED,
    "checkup",
    _cervical_screening,
)
IMMUNISATIONS = SlotType(
    "Childhood immunisations",
    ("slot_planned_clinics",),
    False,
    PLANNED,
    "checkup",
    _childhood_immunisations,
)
LTC_REVIEW = SlotType(
    "Long-term condition review",
    ("slot_planned_clinics",),
    False,
    PLANNED,
    "checkup",
    ADULTS_OLDER,
)
BLOOD_TEST = SlotType(
    "Blood test",
    ("slot_planned_clinical_procedure", "slot_planned_clinics"),
    False,
    PLANNED,
    "routine",
    ADULTS_OLDER,
)
BP_CHECK = SlotType(
    "Blood pressure check",
    ("slot_planned_clinical_procedure", "slot_planned_clinics"),
    False,
    PLANNED,
    "routine",
    ADULTS_OLDER,
)
HEALTH_CHECK = SlotType(
    "NHS Health Check",
    ("slot_planned_clinics",),
    False,
    PLANNED,
    "checkup",
    _health_check,
)
MEDICATION_REVIEW = SlotType(
    "Structured medication review",
    ("slot_structured_medication_review",),
    False,
    PLANNED,
    "checkup",
    _medication_review,
)


@dataclass(frozen=True, slots=True)
class Session:
    name: str
    channel: str  # delivery channel concept key
    start: int  # minutes after midnight
    end: int
    minutes: int  # slot length
    pattern: tuple[SlotType, ...]  # slot types, cycled through the session
    weight: float  # chance of this session, among those of its service and half-day


def _gp(start: int, end: int, weights: tuple[float, float, float, float]) -> tuple[Session, ...]:
    surgery, telephone, video, triage = weights
    mixed = (GP_ROUTINE, GP_ACUTE)
    mostly_routine = (GP_ROUTINE, GP_ROUTINE, GP_ACUTE)
    return (
        Session("GP surgery", IN_PERSON, start, end, 10, mixed, surgery),
        Session("GP telephone clinic", TELEPHONE, start, end, 10, mixed, telephone),
        Session("GP video clinic", VIDEO, start, end, 10, mostly_routine, video),
        Session("Duty doctor triage", TELEPHONE, start, end, 10, (GP_TRIAGE,), triage),
    )


def _nurse(start: int, end: int) -> tuple[Session, ...]:
    general = (NURSE_GENERAL, CERVICAL_SCREENING, NURSE_GENERAL, IMMUNISATIONS)
    reviews = (LTC_REVIEW,)
    return (
        Session("Practice nurse clinic", IN_PERSON, start, end, 15, general, 0.55),
        Session("Long-term condition clinic", IN_PERSON, start, end, 20, reviews, 0.3),
        Session("Telephone reviews", TELEPHONE, start, end, 20, reviews, 0.15),
    )


def _hca(start: int, end: int, morning: bool) -> tuple[Session, ...]:
    if morning:  # bloods early, in time for the laboratory collection
        return (Session("Phlebotomy clinic", IN_PERSON, start, end, 10, (BLOOD_TEST,), 1.0),)
    checks = (BP_CHECK, BLOOD_TEST, HEALTH_CHECK)
    return (Session("Healthcare assistant clinic", IN_PERSON, start, end, 15, checks, 1.0),)


def _pharmacist(start: int, end: int) -> tuple[Session, ...]:
    reviews = (MEDICATION_REVIEW,)
    return (
        Session("Medication review clinic", IN_PERSON, start, end, 20, reviews, 0.5),
        Session("Telephone medication reviews", TELEPHONE, start, end, 20, reviews, 0.5),
    )


def _at(hours: int, minutes: int = 0) -> int:
    return hours * 60 + minutes


# Sessions by service, morning then afternoon.
SESSIONS: dict[str, tuple[tuple[Session, ...], tuple[Session, ...]]] = {
    "gp": (
        _gp(_at(8, 30), _at(11, 30), (0.42, 0.2, 0.08, 0.3)),
        _gp(_at(14, 30), _at(17, 30), (0.55, 0.25, 0.1, 0.1)),
    ),
    "nurse": (_nurse(_at(8, 30), _at(12)), _nurse(_at(13, 30), _at(17))),
    "hca": (_hca(_at(8), _at(11), True), _hca(_at(14), _at(16, 30), False)),
    "pharmacist": (_pharmacist(_at(9), _at(12, 20)), _pharmacist(_at(13, 30), _at(16, 50))),
}
HOME_VISITS_AFTER_AM = 0.3  # chance a GP's morning ends with two home-visit slots
HOME_VISIT_START = _at(12)

# (code, display, text, weight)
CANCELLATION_REASONS = (
    ("pat", "Patient", "Cancelled by the patient by telephone"),
    (
        "pat-crs",
        "Patient: Canceled via automated reminder system",
        "Cancelled by reply to the SMS reminder",
    ),
    ("pat-cpp", "Patient: Canceled via Patient Portal", "Cancelled in the NHS App"),
    ("pat-fb", "Patient: Feeling Better", "Patient feeling better"),
    ("prov-pers", "Provider: Personal", "Clinician unavailable"),
    ("oth-err", "Other: Error", "Booked in error"),
)
CANCELLATION_WEIGHTS = (0.35, 0.15, 0.15, 0.15, 0.1, 0.1)

_TIMES = tuple(f"{m // 60:02d}:{m % 60:02d}:00" for m in range(24 * 60))


def appointment_book(
    config: DemoConfig,
    practice: Practice,
    patient_count: int,
    summary_of: Callable[[int], PatientSummary],
) -> Iterator[dict[str, Any]]:
    """Schedules, Slots and Appointments for every clinician, from `as_of` minus
    `appointment_weeks_past` to `as_of` plus `appointment_weeks_ahead`."""
    book = _Book(config, practice, patient_count, summary_of)
    for member in practice.clinicians():
        yield from book.clinician(member)


class _Book:
    def __init__(
        self,
        config: DemoConfig,
        practice: Practice,
        patient_count: int,
        summary_of: Callable[[int], PatientSummary],
    ) -> None:
        self.config = config
        self.practice = practice
        self.patient_count = patient_count
        self.summary = lru_cache(maxsize=8192)(summary_of)
        self.first = config.as_of - timedelta(weeks=config.appointment_weeks_past)
        self.last = config.as_of + timedelta(weeks=config.appointment_weeks_ahead)  # exclusive
        self.holidays = _bank_holidays(self.first.year, self.last.year)
        self.channels = {key: concept(key).coding() for key in _CHANNELS}
        present = starter_set()
        self.categories: dict[str, dict[str, str]] = {}
        for slot_type in _SLOT_TYPES:
            key = next((k for k in slot_type.categories if k in present), None)
            if key is None:
                raise KeyError(f"no National Slot Type Category among {slot_type.categories}")
            self.categories[slot_type.text] = present[key].coding()
        self.per_week = self._sessions_per_week()

    def _sessions_per_week(self) -> dict[str, float]:
        """Sessions a week for one clinician of each service."""
        clinicians: dict[str, int] = {}
        for member in self.practice.clinicians():
            key = service_of(member)
            if key is not None:
                clinicians[key] = clinicians.get(key, 0) + 1
        per_week = {}
        for key, count in clinicians.items():
            slots = WEEKLY_SLOTS_PER_10K[key] * self.patient_count / 10_000
            per_session = sum(_mean_slots(half) for half in SESSIONS[key]) / 2
            # Cover for leave keeps the practice's weekly total steady.
            sessions = slots / per_session / (1 - LEAVE)
            per_week[key] = min(MAX_SESSIONS, sessions / count)
        return per_week

    def clinician(self, member: StaffMember) -> Iterator[dict[str, Any]]:
        key = service_of(member)
        if key is None or key not in self.per_week:
            return
        site = site_of(self.practice, member)
        schedule_id = demo_id(self.config, "schedule", member.role_id)
        yield self._schedule(member, key, schedule_id, site.location_id)
        rota = stream(self.config, "rota", member.role_id)
        positions = [(weekday, half) for weekday in range(5) for half in (AM, PM)]
        rota.shuffle(positions)
        phase = rota.random()
        sessions_a_week = self.per_week[key]
        context = _Clinician(member, key, schedule_id, site.location_id)
        monday = self.first - timedelta(days=self.first.weekday())
        while monday < self.last:
            week = (monday.toordinal() - 1) // 7
            count = floor((week + 1) * sessions_a_week + phase) - floor(
                week * sessions_a_week + phase
            )
            if count and stream(self.config, "leave", member.role_id, week).random() >= LEAVE:
                working = sorted(positions[:count])
                for weekday in sorted({w for w, _ in working}):
                    day = monday + timedelta(days=weekday)
                    if self.first <= day < self.last and day not in self.holidays:
                        halves = [h for w, h in working if w == weekday]
                        yield from self._day(context, day, halves)
            monday += timedelta(days=7)

    def _schedule(
        self, member: StaffMember, key: str, schedule_id: str, location_id: str
    ) -> dict[str, Any]:
        offered: list[str] = []
        for half in SESSIONS[key]:
            for session in half:
                offered += [s.text for s in session.pattern if s.text not in offered]
        if key == "gp":
            offered.append(HOME_VISIT.text)
        category = general_practice_category()
        category["text"] = next(s.name for s in SERVICES if s.key == key)
        return {
            "resourceType": "Schedule",
            "id": schedule_id,
            "meta": profile("Schedule"),
            "active": True,
            "serviceCategory": [category],
            "serviceType": [{"text": text} for text in offered],
            "actor": [
                {"reference": f"PractitionerRole/{member.role_id}", "display": member.name},
                {"reference": f"Location/{location_id}"},
                {"reference": f"HealthcareService/{service_id(self.config, key)}"},
            ],
            "planningHorizon": {
                "start": f"{self.first.isoformat()}T00:00:00{_offset(self.first)}",
                "end": f"{self.last.isoformat()}T00:00:00{_offset(self.last)}",
            },
            "comment": f"Appointment book of {member.name}",
        }

    def _day(self, who: _Clinician, day: date, halves: list[int]) -> Iterator[dict[str, Any]]:
        rng = stream(self.config, "book", who.member.role_id, day.isoformat())
        days_ahead = (day - self.config.as_of).days
        day_text = day.isoformat()
        offset = _offset(day)
        for half in halves:
            session = _choose(rng, SESSIONS[who.service][half])
            utilisation = min(0.97, max(0.5, rng.gauss(PAST_UTILISATION, 0.06)))
            slots = [
                (start, session.minutes, session.pattern[i % len(session.pattern)])
                for i, start in enumerate(range(session.start, session.end, session.minutes))
                if start + session.minutes <= session.end
            ]
            if who.service == "gp" and half == AM and rng.random() < HOME_VISITS_AFTER_AM:
                slots += [(HOME_VISIT_START + 30 * i, 30, HOME_VISIT) for i in range(2)]
            for number, (start, minutes, slot_type) in enumerate(slots):
                at = _SlotAt(
                    id=demo_id(self.config, "slot", who.member.role_id, day_text, half, number),
                    day=day,
                    days_ahead=days_ahead,
                    minute=start,
                    start=f"{day_text}T{_TIMES[start]}{offset}",
                    end=f"{day_text}T{_TIMES[start + minutes]}{offset}",
                    type=slot_type,
                    channel=slot_type.channel or session.channel,
                )
                yield from self._slot(rng, who, at, utilisation)

    def _slot(
        self, rng: random.Random, who: _Clinician, at: _SlotAt, utilisation: float
    ) -> Iterator[dict[str, Any]]:
        """The slot, then its appointments: a cancelled one first if there is one."""
        past = at.days_ahead < 0
        chance = utilisation if past else _future_utilisation(at.days_ahead, at.type)
        appointments: list[dict[str, Any]] = []
        patient: PatientSummary | None = None
        if rng.random() < chance:
            lead = _lead(rng, at.type.lead, at.days_ahead)
            patient = self._pick(rng, at, lead)
            if patient is not None:
                if past and rng.random() < REBOOKED_AFTER_CANCELLATION:
                    earlier = lead + 1 + rng.randrange(14)
                    first = self._pick(rng, at, earlier)
                    if first is not None and first.index != patient.index:
                        appointments.append(
                            self._appointment(rng, who, at, 0, earlier, first, "cancelled")
                        )
                if not past:
                    status = "booked"
                elif rng.random() < (NOSHOW_SAME_DAY if lead == 0 else NOSHOW_BOOKED_AHEAD):
                    status = "noshow"
                else:
                    status = "fulfilled"
                appointments.append(self._appointment(rng, who, at, 1, lead, patient, status))
        elif past and rng.random() < CANCELLED_AND_LEFT_FREE:
            lead = max(1, _lead(rng, at.type.lead, at.days_ahead))
            cancelled = self._pick(rng, at, lead)
            if cancelled is not None:
                appointments.append(
                    self._appointment(rng, who, at, 0, lead, cancelled, "cancelled")
                )
        yield {
            "resourceType": "Slot",
            "id": at.id,
            "meta": profile("Slot"),
            "extension": [self._channel(at.channel)],
            "serviceCategory": [{"coding": [dict(self.categories[at.type.text])]}],
            "serviceType": [{"text": at.type.text}],
            "schedule": {"reference": f"Schedule/{who.schedule_id}"},
            "status": "busy" if patient is not None else "free",
            "start": at.start,
            "end": at.end,
        }
        yield from appointments

    def _channel(self, key: str) -> dict[str, Any]:
        return {
            "url": DELIVERY_CHANNEL_URL,
            "valueCodeableConcept": {"coding": [dict(self.channels[key])]},
        }

    def _pick(self, rng: random.Random, at: _SlotAt, lead: int) -> PatientSummary | None:
        """A patient registered when the booking was made `lead` days before the slot, alive
        on the day, and suited to the slot type; None if none turns up in a few tries."""
        booked_on = at.day - timedelta(days=lead)
        for _ in range(PICK_TRIES if self.patient_count > 0 else 0):
            summary = self.summary(rng.randrange(self.patient_count))
            if summary.registration_date > booked_on:
                continue
            if summary.death_date is not None and summary.death_date <= at.day:
                continue
            age = _age(summary.birth_date, at.day)
            if age >= 0 and rng.random() < at.type.who(age, summary.sex):
                return summary
        return None

    def _appointment(
        self,
        rng: random.Random,
        who: _Clinician,
        at: _SlotAt,
        number: int,
        lead: int,
        patient: PatientSummary,
        status: str,
    ) -> dict[str, Any]:
        booked_on = at.day - timedelta(days=lead)
        if lead == 0:  # on the day, from when the phones open until just before
            minute = rng.randrange(min(at.minute - 5, _at(8)), at.minute - 4)
        else:
            minute = rng.randrange(_at(8), _at(18, 30))
        created = f"{booked_on.isoformat()}T{_TIMES[minute]}{_offset(booked_on)}"
        resource: dict[str, Any] = {
            "resourceType": "Appointment",
            "id": demo_id(self.config, "appointment", at.id, number),
            "meta": profile("Appointment"),
            "extension": [self._channel(at.channel)],
            "status": status,
        }
        if status == "cancelled":
            resource["cancelationReason"] = _cancellation(rng)
        resource["serviceCategory"] = [{"coding": [dict(self.categories[at.type.text])]}]
        resource["serviceType"] = [{"text": at.type.text}]
        resource["appointmentType"] = _appointment_type(rng, at.type, lead)
        resource["start"] = at.start
        resource["end"] = at.end
        resource["created"] = created
        resource["slot"] = [{"reference": f"Slot/{at.id}"}]
        participants = [
            {
                "actor": {"reference": f"Patient/{patient.patient_id}"},
                "required": "required",
                "status": "accepted",
            },
            {
                "actor": {
                    "reference": f"PractitionerRole/{who.member.role_id}",
                    "display": who.member.name,
                },
                "required": "required",
                "status": "accepted",
            },
        ]
        if at.type is not HOME_VISIT:
            participants.append(
                {
                    "actor": {"reference": f"Location/{who.location_id}"},
                    "required": "required",
                    "status": "accepted",
                }
            )
        resource["participant"] = participants
        return resource


@dataclass(frozen=True, slots=True)
class _SlotAt:
    id: str
    day: date
    days_ahead: int  # from as_of: negative in the past
    minute: int  # start, minutes after midnight
    start: str
    end: str
    type: SlotType
    channel: str


@dataclass(frozen=True, slots=True)
class _Clinician:
    member: StaffMember
    service: str
    schedule_id: str
    location_id: str


_SLOT_TYPES = (
    GP_ROUTINE, GP_ACUTE, GP_TRIAGE, HOME_VISIT, NURSE_GENERAL, CERVICAL_SCREENING,
    IMMUNISATIONS, LTC_REVIEW, BLOOD_TEST, BP_CHECK, HEALTH_CHECK, MEDICATION_REVIEW,
)  # fmt: skip
_CHANNELS = (IN_PERSON, TELEPHONE, VIDEO)


def _mean_slots(sessions: tuple[Session, ...]) -> float:
    total = sum(s.weight for s in sessions)
    return sum(s.weight * ((s.end - s.start) // s.minutes) for s in sessions) / total


def _choose(rng: random.Random, sessions: tuple[Session, ...]) -> Session:
    if len(sessions) == 1:
        return sessions[0]
    return rng.choices(sessions, weights=[s.weight for s in sessions])[0]


def _weighted(point: float, weights: Sequence[float]) -> int:
    """The index `point` (in [0, 1)) falls at among `weights` summing to 1."""
    for index, weight in enumerate(weights):
        point -= weight
        if point < 0:
            return index
    return len(weights) - 1


def _future_utilisation(days_ahead: int, slot_type: SlotType) -> float:
    """Chance a slot `days_ahead` days from `as_of` (0 = that day) is booked already."""
    if slot_type.on_the_day:
        return 0.08 if days_ahead <= 1 else 0.02
    if days_ahead < 14:
        return 0.95 - 0.02 * days_ahead
    if days_ahead < 28:
        return 0.45
    return 0.2


def _lead(rng: random.Random, lead: Lead, days_ahead: int) -> int:
    """Days from booking to the appointment; for a future slot, booked before `as_of`."""
    least = days_ahead + 1 if days_ahead >= 0 else 0
    for _ in range(8):
        low, high, _ = lead[_weighted(rng.random(), [w for _, _, w in lead])]
        days = rng.randint(low, high)
        if days >= least:
            return days
    return least + rng.randrange(7)


def _age(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def _appointment_type(rng: random.Random, slot_type: SlotType, lead: int) -> dict[str, Any]:
    if slot_type.purpose == "urgent":
        if lead > 0:  # a same-day slot given out ahead: a clinician's urgent follow-up
            code = (UKCORE_APPOINTMENT_REASON, "urgent-follow-up", "Urgent follow-up")
        else:
            return {"text": "Same-day urgent"}
    elif slot_type.purpose == "checkup":
        code = (V2_0276, "CHECKUP", "A routine check-up, such as an annual physical")
    elif rng.random() < 0.25:
        code = (V2_0276, "FOLLOWUP", "A follow up visit from a previous appointment")
    else:
        code = (V2_0276, "ROUTINE", "Routine appointment - default if not valued")
    system, value, display = code
    return {"coding": [{"system": system, "code": value, "display": display}]}


def _cancellation(rng: random.Random) -> dict[str, Any]:
    code, display, text = CANCELLATION_REASONS[_weighted(rng.random(), CANCELLATION_WEIGHTS)]
    coding = {"system": CANCELLATION_SYSTEM, "code": code, "display": display}
    return {"coding": [coding], "text": text}


@lru_cache(maxsize=64)
def _last_sunday(year: int, month: int) -> date:
    last = date(year, month + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() + 1) % 7)


def _offset(day: date) -> str:
    """UK local time offset for daytime on `day`: BST from the last Sunday in March to the
    last Sunday in October (the clocks change at 01:00 UTC, before any slot)."""
    in_summer_time = _last_sunday(day.year, 3) <= day < _last_sunday(day.year, 10)
    return "+01:00" if in_summer_time else "+00:00"


def _easter(year: int) -> date:
    """Easter Sunday (the anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month, day = divmod(h + l_ - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _bank_holidays(first_year: int, last_year: int) -> frozenset[date]:
    """England and Wales bank holidays (the regular ones, with weekend substitutes)."""
    days: set[date] = set()
    for year in range(first_year, last_year + 1):
        easter = _easter(year)
        may_first_monday = date(year, 5, 1) + timedelta(days=(7 - date(year, 5, 1).weekday()) % 7)
        days |= {
            easter - timedelta(days=2),
            easter + timedelta(days=1),
            may_first_monday,
            _last_monday(year, 5),
            _last_monday(year, 8),
        }
        for fixed in (date(year, 1, 1), date(year, 12, 25), date(year, 12, 26)):
            while fixed.weekday() >= 5 or fixed in days:
                fixed += timedelta(days=1)
            days.add(fixed)
    return frozenset(days)


def _last_monday(year: int, month: int) -> date:
    last = date(year, month + 1, 1) - timedelta(days=1)
    return last - timedelta(days=last.weekday())
