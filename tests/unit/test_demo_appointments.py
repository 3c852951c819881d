"""The appointment book: valid, deterministic, consistent, streamed and realistic in mix."""

from __future__ import annotations

import random
import types
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest

from opengp.demo.appointments import DELIVERY_CHANNEL_URL, appointment_book
from opengp.demo.model import DemoConfig, PatientSummary, Practice, demo_id
from opengp.demo.practice import build_practice, site_of
from opengp.fhir.validation import validate_resource

# A window with Easter 2025 (Good Friday 18 April, Easter Monday 21 April) and the start of
# British Summer Time (30 March) in it.
AS_OF = date(2025, 4, 9)

Book = list[dict[str, Any]]


def fake_summaries(config: DemoConfig, patients: int) -> Callable[[int], PatientSummary]:
    """Patients of all ages; some registered during the window, some died during it."""

    def summary_of(index: int) -> PatientSummary:
        rng = random.Random(f"{config.seed}:test-patient:{index}")
        birth = config.as_of - timedelta(days=rng.randrange(0, 95 * 365))
        if index % 10 == 0:  # newly registered: around the window
            registered = config.as_of + timedelta(days=rng.randrange(-40, 20))
        else:
            registered = config.as_of - timedelta(days=rng.randrange(100, 20 * 365))
        died = None
        if index % 10 == 1:
            died = config.as_of + timedelta(days=rng.randrange(-40, 20))
        registered = max(registered, birth)
        sex = rng.choice(["female", "male"])
        patient_id = demo_id(config, "patient", index)
        return PatientSummary(index, patient_id, birth, sex, registered, died, "role")

    assert patients > 0
    return summary_of


def _book(patients: int, seed: int = 1, past: int = 3, ahead: int = 3) -> tuple[Practice, Book]:
    config = DemoConfig(
        patients=patients,
        seed=seed,
        as_of=AS_OF,
        appointment_weeks_past=past,
        appointment_weeks_ahead=ahead,
    )
    practice, _ = build_practice(config)
    summaries = fake_summaries(config, patients)
    return practice, list(appointment_book(config, practice, patients, summaries))


@pytest.fixture(scope="module")
def small() -> tuple[Practice, Book]:
    return _book(400)


@pytest.fixture(scope="module")
def large() -> tuple[Practice, Book]:
    """Big enough for the mix to settle: a 5,000-patient practice over 14 weeks."""
    return _book(5000, past=8, ahead=6)


def _of(book: Book, resource_type: str) -> list[dict[str, Any]]:
    return [r for r in book if r["resourceType"] == resource_type]


def _date(value: str) -> date:
    return date.fromisoformat(value[:10])


def test_every_resource_is_valid(small: tuple[Practice, Book]) -> None:
    _, book = small
    assert {r["resourceType"] for r in book} == {"Schedule", "Slot", "Appointment"}
    for resource in book:
        validate_resource(resource)


def test_same_seed_same_book_other_seed_other_book(small: tuple[Practice, Book]) -> None:
    _, book = small
    assert _book(400)[1] == book
    assert {r["id"] for r in _book(400, seed=2)[1]}.isdisjoint(r["id"] for r in book)


def test_the_book_is_streamed() -> None:
    config = DemoConfig(patients=400, as_of=AS_OF)
    practice, _ = build_practice(config)
    book = appointment_book(config, practice, 400, fake_summaries(config, 400))
    assert isinstance(book, types.GeneratorType)
    assert next(book)["resourceType"] == "Schedule"


def test_ids_are_unique(small: tuple[Practice, Book]) -> None:
    _, book = small
    keys = [f"{r['resourceType']}/{r['id']}" for r in book]
    assert len(keys) == len(set(keys))


def test_one_schedule_per_clinician(small: tuple[Practice, Book]) -> None:
    practice, book = small
    schedules = _of(book, "Schedule")
    assert len(schedules) == len(practice.clinicians())
    for schedule, member in zip(schedules, practice.clinicians(), strict=True):
        actors = [a["reference"] for a in schedule["actor"]]
        assert f"PractitionerRole/{member.role_id}" in actors
        assert f"Location/{site_of(practice, member).location_id}" in actors
        assert schedule["active"] is True
        assert schedule["planningHorizon"]["start"] < schedule["planningHorizon"]["end"]


def test_references_resolve(small: tuple[Practice, Book]) -> None:
    practice, book = small
    schedules = {f"Schedule/{s['id']}" for s in _of(book, "Schedule")}
    slots = {f"Slot/{s['id']}": s for s in _of(book, "Slot")}
    roles = {f"PractitionerRole/{m.role_id}" for m in practice.clinicians()}
    locations = {f"Location/{s.location_id}" for s in practice.sites}
    for slot in slots.values():
        assert slot["schedule"]["reference"] in schedules
    appointments = _of(book, "Appointment")
    assert appointments
    for appointment in appointments:
        (slot_ref,) = appointment["slot"]
        assert slot_ref["reference"] in slots
        actors = [p["actor"]["reference"] for p in appointment["participant"]]
        assert actors[0].startswith("Patient/")
        assert actors[1] in roles
        assert all(a in locations for a in actors[2:])
        assert all(p["status"] == "accepted" for p in appointment["participant"])


def test_appointments_follow_their_slot(small: tuple[Practice, Book]) -> None:
    _, book = small
    slots = {s["id"]: s for s in _of(book, "Slot")}
    for appointment in _of(book, "Appointment"):
        slot = slots[appointment["slot"][0]["reference"].removeprefix("Slot/")]
        assert (appointment["start"], appointment["end"]) == (slot["start"], slot["end"])
        assert appointment["serviceCategory"] == slot["serviceCategory"]
        assert appointment["serviceType"] == slot["serviceType"]
        assert appointment["extension"] == slot["extension"]
        assert appointment["created"] < appointment["start"]


def test_no_slot_is_double_booked(large: tuple[Practice, Book]) -> None:
    _, book = large
    holders: defaultdict[str, list[str]] = defaultdict(list)
    for appointment in _of(book, "Appointment"):
        holders[appointment["slot"][0]["reference"].removeprefix("Slot/")].append(
            appointment["status"]
        )
    rebooked = 0
    for slot in _of(book, "Slot"):
        statuses = holders.get(slot["id"], [])
        active = [s for s in statuses if s != "cancelled"]
        assert len(active) <= 1
        assert slot["status"] == ("busy" if active else "free")
        rebooked += bool(active) and "cancelled" in statuses
    assert rebooked  # cancelled appointments whose slot another patient then took


def test_no_appointment_before_registration_or_after_death(
    large: tuple[Practice, Book],
) -> None:
    _, book = large
    config = DemoConfig(patients=5000, as_of=AS_OF)
    summary_of = fake_summaries(config, 5000)
    by_id = {summary_of(i).patient_id: summary_of(i) for i in range(5000)}
    checked = Counter[str]()
    for appointment in _of(book, "Appointment"):
        patient = by_id[appointment["participant"][0]["actor"]["reference"][len("Patient/") :]]
        assert _date(appointment["created"]) >= patient.registration_date
        assert _date(appointment["start"]) >= patient.birth_date
        if patient.death_date is not None:
            assert _date(appointment["start"]) < patient.death_date
            checked["died"] += 1
        if patient.registration_date > AS_OF - timedelta(weeks=8):
            checked["registered late"] += 1
    assert checked["died"] and checked["registered late"]


def test_past_and_future_statuses(large: tuple[Practice, Book]) -> None:
    _, book = large
    past = Counter(a["status"] for a in _of(book, "Appointment") if _date(a["start"]) < AS_OF)
    future = Counter(a["status"] for a in _of(book, "Appointment") if _date(a["start"]) >= AS_OF)
    assert set(past) == {"fulfilled", "noshow", "cancelled"}
    assert set(future) == {"booked"}
    attended_or_not = past["fulfilled"] + past["noshow"]
    assert 0.03 <= past["noshow"] / attended_or_not <= 0.065
    assert 0.04 <= past["cancelled"] / past.total() <= 0.15


def test_cancelled_appointments_say_why(large: tuple[Practice, Book]) -> None:
    _, book = large
    for appointment in _of(book, "Appointment"):
        has_reason = "cancelationReason" in appointment
        assert has_reason == (appointment["status"] == "cancelled")


def test_utilisation(large: tuple[Practice, Book]) -> None:
    _, book = large

    def busy(low: int, high: int) -> float:
        slots = [s for s in _of(book, "Slot") if low <= (_date(s["start"]) - AS_OF).days < high]
        busy_slots: int = sum(s["status"] == "busy" for s in slots)
        return busy_slots / len(slots)

    assert 0.74 <= busy(-56, 0) <= 0.86
    assert 0.42 <= busy(0, 14) <= 0.65
    assert busy(28, 42) < busy(14, 28) < busy(0, 14)


def test_days_from_booking_to_appointment(large: tuple[Practice, Book]) -> None:
    _, book = large
    leads = [
        (_date(a["start"]) - _date(a["created"])).days
        for a in _of(book, "Appointment")
        if a["status"] in {"fulfilled", "noshow"}
    ]
    share = Counter(
        "same day" if d == 0 else "week" if d <= 7 else "month" if d <= 28 else "more"
        for d in leads
    )
    assert 0.33 <= share["same day"] / len(leads) <= 0.48
    assert min(share["week"], share["month"], share["more"]) / len(leads) >= 0.05


def test_volume_scales_with_the_list(large: tuple[Practice, Book]) -> None:
    """About 4,500 appointments a month for 10,000 patients."""
    _, book = large
    held = [a for a in _of(book, "Appointment") if a["status"] in {"fulfilled", "noshow"}]
    per_month_per_10k = len(held) / 8 * (365.25 / 12 / 7) * 10_000 / 5000
    assert 3600 <= per_month_per_10k <= 5400
    _, small_book = _book(1000, past=8, ahead=0)
    small_held = [a for a in _of(small_book, "Appointment") if a["status"] != "cancelled"]
    assert 0.12 <= len(small_held) / len(held) <= 0.3


def test_sessions_are_on_working_days_in_uk_time(large: tuple[Practice, Book]) -> None:
    _, book = large
    holidays = {date(2025, 4, 18), date(2025, 4, 21), date(2025, 5, 5)}
    days = {_date(s["start"]) for s in _of(book, "Slot")}
    assert days
    assert all(d.weekday() < 5 and d not in holidays for d in days)
    for slot in _of(book, "Slot"):
        in_summer_time = _date(slot["start"]) >= date(2025, 3, 30)
        assert slot["start"].endswith("+01:00" if in_summer_time else "+00:00")


def test_channels_and_categories_vary(large: tuple[Practice, Book]) -> None:
    _, book = large
    channels: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    for slot in _of(book, "Slot"):
        (extension,) = slot["extension"]
        assert extension["url"] == DELIVERY_CHANNEL_URL
        channels[extension["valueCodeableConcept"]["coding"][0]["code"]] += 1
        categories[slot["serviceCategory"][0]["coding"][0]["code"]] += 1
    assert set(channels) == {"In-person", "Telephone", "Video"}
    assert channels["In-person"] > channels["Telephone"] > channels["Video"]
    assert len(categories) >= 6
    home_visits = [
        a for a in _of(book, "Appointment") if a["serviceType"][0]["text"] == "GP home visit"
    ]
    assert home_visits
    assert all(len(a["participant"]) == 2 for a in home_visits)  # at the patient's home
