"""The appointment book's pure parts: rota sessions as FHIR, generated slots, the online
booking rule, the report's buckets, and agreement with the synthetic practice's codes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from opengp.demo import appointments as demo
from opengp.demo.model import DemoConfig
from opengp.demo.practice import build_practice
from opengp.fhir.validation import validate_resource
from opengp.services.appointments import codes, online, report, rota
from opengp.services.appointments.generation import _slot
from opengp.services.appointments.settings import PracticeSettings, _parse, _resource
from tests.functional.appointment_helpers import ROUTINE, TRIAGE
from tests.unit.test_demo_appointments import fake_summaries

NOW = datetime(2030, 1, 7, 8, 0, tzinfo=UTC)


def test_the_codes_are_the_synthetic_practices() -> None:
    assert codes.DELIVERY_CHANNEL_URL == demo.DELIVERY_CHANNEL_URL
    assert codes.CANCELLATION_SYSTEM == demo.CANCELLATION_SYSTEM
    assert codes.V2_0276 == demo.V2_0276
    config = DemoConfig(patients=40, seed=3, as_of=date(2025, 4, 9), appointment_weeks_past=1,
                        appointment_weeks_ahead=1)  # fmt: skip
    practice, _ = build_practice(config)
    book = list(demo.appointment_book(config, practice, 40, fake_summaries(config, 40)))
    for resource in book:
        if resource["resourceType"] in ("Slot", "Appointment"):
            assert codes.category_key(resource) is not None, resource["id"]
            assert codes.channel_key(resource) is not None, resource["id"]
            assert codes.slot_type_text(resource)


SEASONAL = replace(ROUTINE, valid_from=date(2030, 1, 1), valid_until=date(2030, 6, 30))


@pytest.mark.parametrize("session", [ROUTINE, TRIAGE, SEASONAL])
def test_a_session_round_trips_through_its_extension_and_validates(session: rota.Session) -> None:
    schedule = rota.with_sessions({"resourceType": "Schedule", "id": "s", "actor": [
        {"reference": "PractitionerRole/r"}]}, [session])  # fmt: skip
    validate_resource(schedule)
    assert rota.sessions_of(schedule) == [session]
    assert schedule["serviceType"] == [{"text": session.slot_type}]


def test_generated_slots_validate() -> None:
    for session in (ROUTINE, TRIAGE):
        start = datetime(2030, 7, 1, 9, 0, tzinfo=UTC)  # summer time: written +01:00
        slot = _slot("s", session, start, start + timedelta(minutes=session.slot_minutes))
        validate_resource(slot)
        assert slot["start"] == "2030-07-01T10:00:00+01:00"
        assert online.online_days(slot) == session.online_days_ahead


def test_session_rules() -> None:
    assert ROUTINE.problems() == []
    assert [t for t, _ in ROUTINE.slot_times()] == [time(9), time(9, 15), time(9, 30), time(9, 45)]
    bad = replace(ROUTINE, days=("monday",), slot_minutes=90, channel="slot_home_visit")
    assert len(bad.problems()) == 3
    assert ROUTINE.runs_on(date(2030, 1, 7)) and not ROUTINE.runs_on(date(2030, 1, 12))
    limited = replace(ROUTINE, valid_until=date(2030, 1, 7))
    assert limited.runs_on(date(2030, 1, 7)) and not limited.runs_on(date(2030, 1, 8))


def _free(
    start: datetime, opens: int | None = 14, slot_type: str = "Routine GP appointment"
) -> dict[str, Any]:
    slot: dict[str, Any] = {"id": "x", "status": "free", "start": start.isoformat(),
                            "serviceType": [{"text": slot_type}], "extension": []}  # fmt: skip
    if opens is not None:
        slot["extension"].append({"url": codes.ONLINE_BOOKING_URL, "valueUnsignedInt": opens})
    return slot


def test_what_a_patient_may_book_online() -> None:
    settings = PracticeSettings(
        online_horizon_days=7, online_slot_types=frozenset({"Routine GP appointment"})
    )
    tomorrow = NOW + timedelta(days=1)
    assert online.refusal(_free(tomorrow), settings, NOW) is None
    assert (
        online.refusal(_free(NOW - timedelta(minutes=1)), settings, NOW) == "it has already started"
    )
    assert "not offered" in str(online.refusal(_free(tomorrow, opens=None), settings, NOW))
    assert "does not offer" in str(
        online.refusal(_free(tomorrow, slot_type="Triage"), settings, NOW)
    )
    assert "not yet open" in str(online.refusal(_free(NOW + timedelta(days=8)), settings, NOW))
    assert "not yet open" in str(
        online.refusal(_free(NOW + timedelta(days=3), opens=2), settings, NOW)
    )
    assert online.refusal(_free(NOW + timedelta(hours=4), opens=0), settings, NOW) is None
    # The defaults offer nothing online until the practice chooses.
    assert "does not offer" in str(online.refusal(_free(tomorrow), PracticeSettings(), NOW))


def test_settings_round_trip_and_validate() -> None:
    settings = PracticeSettings(14, 48, frozenset({"Routine GP appointment", "Blood test"}))
    resource = _resource("id-1", "org-1", settings)
    validate_resource(resource)
    assert _parse(resource) == settings
    assert [f for f, _ in PracticeSettings(-1, 10_000, frozenset({""})).problems()] == [
        "online_horizon_days", "cancellation_cutoff_hours", "online_slot_types"]  # fmt: skip


@pytest.mark.parametrize(
    ("created", "start", "bucket"),
    [
        ("2030-01-07T00:30:00Z", "2030-01-07T23:00:00+00:00", "Same Day"),
        ("2030-01-06T23:30:00Z", "2030-01-07T09:00:00+00:00", "1 Day"),
        # BST: 23:30 UTC on 30 June is 00:30 on 1 July in England, the same day.
        ("2030-06-30T23:30:00Z", "2030-07-01T09:00:00+01:00", "Same Day"),
        ("2030-01-01T09:00:00Z", "2030-01-08T09:00:00+00:00", "2 to 7 Days"),
        ("2030-01-01T09:00:00Z", "2030-01-29T09:00:00+00:00", "22 to 28 Days"),
        ("2030-01-01T09:00:00Z", "2030-01-30T09:00:00+00:00", "More than 28 Days"),
        ("2030-01-09T09:00:00Z", "2030-01-08T09:00:00+00:00", report.UNKNOWN_LEAD),
        (None, "2030-01-08T09:00:00+00:00", report.UNKNOWN_LEAD),
    ],
)
def test_days_from_booking_to_appointment(created: str | None, start: str, bucket: str) -> None:
    assert report.lead_bucket({"created": created, "start": start}) == bucket
