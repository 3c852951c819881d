"""The appointment services the screens call, on both databases: rotas and slot generation,
booking rules, cancellation, amendment, blocking, the day list, patients' own bookings."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import orjson
import pytest

from opengp.fhir.errors import Conflict, Forbidden, Unprocessable
from opengp.search.query import parse_query
from opengp.services import appointments as appts
from opengp.store.sql import SqlStore
from tests.functional.appointment_helpers import (
    ADMIN,
    GP,
    MONDAY,
    NOW,
    ORG,
    OTHER_ORG,
    PARENT,
    PATIENT,
    RECEPTION,
    ROUTINE,
    TRIAGE,
    seed,
    slots_on,
)

ONLINE = appts.PracticeSettings(
    online_horizon_days=7,
    cancellation_cutoff_hours=24,
    online_slot_types=frozenset({"Routine GP appointment"}),
)
WEEK_OF_SLOTS = 5 * 4 + 2 * 3  # Mon-Fri 4 routine slots a day; Mon and Wed 3 triage slots


def count(store: SqlStore, resource_type: str, *pairs: tuple[str, str]) -> int:
    with store.reading() as tx:
        return len(tx.find(parse_query(resource_type, list(pairs), strict=True), limit=10_000))


def slot_status(store: SqlStore, slot_id: str) -> str:
    with store.reading() as tx:
        stored = tx.current("Slot", slot_id)
    assert stored is not None and stored.content is not None
    return str(orjson.loads(stored.content)["status"])


def test_generation_is_idempotent_and_follows_the_rota(store: SqlStore) -> None:
    book = seed(store, weeks=2)
    in_book = ("schedule", f"Schedule/{book.schedule_id}")
    assert count(store, "Slot", in_book) == 2 * WEEK_OF_SLOTS
    again = appts.generate_slots(store, ADMIN, book.schedule_id, weeks=2, first_day=MONDAY, now=NOW)
    assert (again.created, again.skipped) == (0, 2 * WEEK_OF_SLOTS)
    assert count(store, "Slot", in_book) == 2 * WEEK_OF_SLOTS

    # 20-minute routine slots from now on: none is made over the 15-minute ones already
    # there; the third week is made from the new rota alone.
    appts.set_rota(store, ADMIN, book.schedule_id, (replace(ROUTINE, slot_minutes=20), TRIAGE))
    third = appts.generate_slots(store, ADMIN, book.schedule_id, weeks=3, first_day=MONDAY, now=NOW)
    assert third.created == 5 * 3 + 2 * 3
    assert count(store, "Slot", in_book) == 2 * WEEK_OF_SLOTS + third.created
    # No slot is made in the past.
    later = NOW + timedelta(days=21, hours=3)  # Monday of week 4, 11:00
    fourth = appts.generate_slots(store, ADMIN, book.schedule_id, weeks=1, now=later)
    assert fourth.created == 5 * 3 + 2 * 3 - 3  # not Monday morning's, already past


def test_a_rota_with_overlapping_or_wrong_sessions_is_refused(store: SqlStore) -> None:
    seed(store, weeks=1)
    with pytest.raises(Unprocessable, match="sessions 1 and 2 overlap"):
        appts.create_schedule(
            store,
            ADMIN,
            practitioner_role_id="role-gp",
            location_id="site-1",
            sessions=(ROUTINE, ROUTINE),
        )
    with pytest.raises(Unprocessable, match="not a slot-category"):
        appts.create_schedule(
            store,
            ADMIN,
            practitioner_role_id="role-gp",
            location_id="site-1",
            sessions=(replace(ROUTINE, category="channel_video"),),
        )


def test_booking_takes_a_free_slot_and_never_a_busy_one(store: SqlStore) -> None:
    seed(store)
    slot = slots_on(store, MONDAY)[0]
    booked = appts.book_appointment(
        store, RECEPTION, patient_id="pat-1", slot_ids=[slot.id], comment="Knee pain", now=NOW
    )
    assert booked.status == "booked"
    assert (booked.start, booked.end, booked.created) == (slot.start, slot.end, NOW)
    assert (booked.patient_id, booked.practitioner_role_id, booked.location_id) == (
        "pat-1",
        "role-gp",
        "site-1",
    )
    assert (booked.category, booked.channel, booked.slot_type) == (
        "slot_general_consultation_routine",
        "channel_in_person",
        "Routine GP appointment",
    )
    assert slot_status(store, slot.id) == "busy"
    with pytest.raises(Conflict, match="not free"):
        appts.book_appointment(store, RECEPTION, patient_id="pat-2", slot_ids=[slot.id], now=NOW)
    assert count(store, "Appointment", ("slot", f"Slot/{slot.id}")) == 1


def test_slots_booked_together_are_adjacent_and_of_one_book(store: SqlStore) -> None:
    seed(store)
    first, second, third = slots_on(store, MONDAY)[:3]
    with pytest.raises(Unprocessable, match="adjacent"):
        appts.book_appointment(
            store, RECEPTION, patient_id="pat-1", slot_ids=[first.id, third.id], now=NOW
        )
    double = appts.book_appointment(
        store, RECEPTION, patient_id="pat-1", slot_ids=[first.id, second.id], now=NOW
    )
    assert (double.start, double.end) == (first.start, second.end)
    assert {slot_status(store, s.id) for s in (first, second)} == {"busy"}
    assert slot_status(store, third.id) == "free"


def test_cancelling_frees_the_slot_for_someone_else(store: SqlStore) -> None:
    seed(store)
    slot = slots_on(store, MONDAY)[0]
    booked = appts.book_appointment(
        store, RECEPTION, patient_id="pat-1", slot_ids=[slot.id], now=NOW
    )
    with pytest.raises(Unprocessable, match="reason"):
        appts.cancel_appointment(store, RECEPTION, booked.id, now=NOW)
    cancelled = appts.cancel_appointment(
        store, RECEPTION, booked.id, reason="pat", reason_text="Rang to cancel", now=NOW
    )
    assert (cancelled.status, cancelled.cancellation_reason) == ("cancelled", "Rang to cancel")
    assert slot_status(store, slot.id) == "free"
    with pytest.raises(Unprocessable, match="cannot be cancelled"):
        appts.cancel_appointment(store, RECEPTION, booked.id, reason="pat", now=NOW)
    again = appts.book_appointment(
        store, RECEPTION, patient_id="pat-2", slot_ids=[slot.id], now=NOW
    )
    assert slot_status(store, slot.id) == "busy"
    assert appts.patient_appointments(store, RECEPTION, "pat-2", now=NOW).upcoming[0].id == again.id


def test_amend_changes_the_comment_or_moves_atomically(store: SqlStore) -> None:
    seed(store)
    first, second, third = slots_on(store, MONDAY)[:3]
    booked = appts.book_appointment(
        store, RECEPTION, patient_id="pat-1", slot_ids=[first.id], now=NOW
    )
    other = appts.book_appointment(
        store, RECEPTION, patient_id="pat-2", slot_ids=[third.id], now=NOW
    )
    amended = appts.amend_appointment(store, RECEPTION, booked.id, comment="Bring letters", now=NOW)
    assert (amended.comment, amended.slot_ids, amended.version) == ("Bring letters", (first.id,), 2)

    moved = appts.amend_appointment(store, RECEPTION, booked.id, move_to=[second.id], now=NOW)
    assert (moved.slot_ids, moved.start) == ((second.id,), second.start)
    assert (slot_status(store, first.id), slot_status(store, second.id)) == ("free", "busy")
    # Moving onto a booked slot changes nothing: the old slot stays held.
    with pytest.raises(Conflict):
        appts.amend_appointment(store, RECEPTION, booked.id, move_to=[third.id], now=NOW)
    assert slot_status(store, second.id) == "busy"
    assert appts.patient_appointments(store, RECEPTION, "pat-2", now=NOW).upcoming[0].id == other.id

    cancelled, rebooked = appts.rebook_appointment(
        store, RECEPTION, booked.id, slot_ids=[first.id], reason="prov-pers", now=NOW
    )
    assert (cancelled.status, rebooked.status, rebooked.patient_id) == (
        "cancelled",
        "booked",
        "pat-1",
    )
    assert (slot_status(store, first.id), slot_status(store, second.id)) == ("busy", "free")


def test_blocked_slots_cannot_be_booked_and_booked_ones_cannot_be_blocked(store: SqlStore) -> None:
    seed(store)
    free, taken = slots_on(store, MONDAY)[:2]
    appts.book_appointment(store, RECEPTION, patient_id="pat-1", slot_ids=[taken.id], now=NOW)
    with pytest.raises(Unprocessable, match="say why"):
        appts.block_slots(store, ADMIN, [free.id], reason=" ")
    [blocked] = appts.block_slots(store, ADMIN, [free.id], reason="Training")
    assert (blocked.status, blocked.comment) == ("busy-unavailable", "Training")
    with pytest.raises(Conflict):
        appts.book_appointment(store, RECEPTION, patient_id="pat-2", slot_ids=[free.id], now=NOW)
    with pytest.raises(Conflict, match="booked"):
        appts.block_slots(store, ADMIN, [taken.id], reason="Training")
    [released] = appts.release_slots(store, ADMIN, [free.id])
    assert (released.status, released.comment) == ("free", None)


def test_the_day_list_from_arrival_to_the_end_of_the_appointment(store: SqlStore) -> None:
    seed(store)
    first, second = slots_on(store, MONDAY)[:2]
    one = appts.book_appointment(store, RECEPTION, patient_id="pat-1", slot_ids=[first.id], now=NOW)
    two = appts.book_appointment(
        store, RECEPTION, patient_id="pat-2", slot_ids=[second.id], now=NOW
    )
    with pytest.raises(Unprocessable, match="not yet begun"):
        appts.mark_did_not_attend(store, RECEPTION, two.id, now=NOW)
    assert appts.mark_arrived(store, RECEPTION, one.id, now=NOW).status == "arrived"
    assert appts.call_in(store, GP, one.id, now=NOW).status == "checked-in"
    appts.start_appointment(store, GP, one.id, now=NOW)
    day = appts.day_list(store, RECEPTION, MONDAY, practitioner_role_id="role-gp")
    rows = {row.slot.id: row for row in day.rows}
    assert rows[first.id].in_consultation and rows[first.id].patient is not None
    assert rows[first.id].patient.name == "Jo Smith"
    assert rows[second.id].appointment is not None and not rows[second.id].in_consultation
    assert appts.end_appointment(store, GP, one.id, now=NOW).status == "fulfilled"
    with pytest.raises(Unprocessable, match="cannot be marked"):
        appts.mark_arrived(store, RECEPTION, one.id, now=NOW)
    later = NOW + timedelta(hours=2)
    assert appts.mark_did_not_attend(store, RECEPTION, two.id, now=later).status == "noshow"
    with store.reading() as tx:
        [encounter_id] = tx.find(
            parse_query("Encounter", [("appointment", f"Appointment/{one.id}")], strict=True), 5
        )
        encounter = orjson.loads(tx.current("Encounter", encounter_id).content or b"")  # type: ignore[union-attr]
    assert encounter["status"] == "finished" and encounter["class"]["code"] == "AMB"
    # Reception may not start a consultation: it writes the clinical record.
    three = appts.book_appointment(
        store, RECEPTION, patient_id="pat-2", slot_ids=[slots_on(store, MONDAY)[0].id], now=NOW
    )
    with pytest.raises(Forbidden):
        appts.start_appointment(store, RECEPTION, three.id, now=NOW)


def test_patients_book_only_what_the_practice_offers_online(store: SqlStore) -> None:
    seed(store)
    routine = [
        s for s in slots_on(store, MONDAY) if s.category == "slot_general_consultation_routine"
    ]
    triage = [s for s in slots_on(store, MONDAY) if s.category == "slot_clinical_triage"]
    # Nothing is offered online until the practice says which slot types are.
    with pytest.raises(Unprocessable, match="does not offer"):
        appts.book_appointment(
            store, PATIENT, patient_id="pat-1", slot_ids=[routine[0].id], now=NOW
        )
    appts.save_practice_settings(store, ADMIN, ORG, ONLINE)
    assert appts.practice_settings(store, PATIENT, ORG) == ONLINE
    start, end = NOW, NOW + timedelta(days=14)
    offered = appts.free_slots(store, PATIENT, start=start, end=end, now=NOW)
    assert offered and {c.slot.slot_type for c in offered} == {"Routine GP appointment"}
    # Within the practice's 7-day horizon (narrower than the session's 14 days).
    assert max(c.slot.start for c in offered) < NOW + timedelta(days=8)
    assert (
        len(appts.free_slots(store, RECEPTION, start=start, end=end, now=NOW)) == 2 * WEEK_OF_SLOTS
    )
    triage_type = "Duty doctor telephone triage"
    only = appts.free_slots(store, RECEPTION, start=start, end=end, now=NOW, slot_type=triage_type)
    assert len(only) == 2 * 2 * 3 and {c.clinician for c in only} == {"Dr A Able"}
    with pytest.raises(Unprocessable, match="not offered for online booking"):
        appts.book_appointment(store, PATIENT, patient_id="pat-1", slot_ids=[triage[0].id], now=NOW)
    far = max(
        appts.free_slots(store, RECEPTION, start=start, end=end, now=NOW),
        key=lambda c: c.slot.start,
    )
    with pytest.raises(Unprocessable):
        appts.book_appointment(store, PATIENT, patient_id="pat-1", slot_ids=[far.slot.id], now=NOW)
    # Not for someone else; a proxy books for the child they act for.
    with pytest.raises(Forbidden):
        appts.book_appointment(
            store, PATIENT, patient_id="pat-2", slot_ids=[routine[0].id], now=NOW
        )
    mine = appts.book_appointment(
        store, PATIENT, patient_id="pat-1", slot_ids=[routine[0].id], now=NOW
    )
    child = appts.book_appointment(
        store, PARENT, patient_id="child-1", slot_ids=[routine[1].id], now=NOW
    )
    assert (mine.patient_id, child.patient_id) == ("pat-1", "child-1")


def test_patients_cancel_only_before_the_cut_off(store: SqlStore) -> None:
    seed(store)
    appts.save_practice_settings(store, ADMIN, ORG, ONLINE)
    tuesday = [
        s
        for s in slots_on(store, MONDAY + timedelta(days=1))
        if s.slot_type == "Routine GP appointment"
    ]
    booked = appts.book_appointment(
        store, PATIENT, patient_id="pat-1", slot_ids=[tuesday[0].id], now=NOW
    )
    [listed] = appts.patient_appointments(store, PATIENT, "pat-1", now=NOW).upcoming
    assert listed.cancel_online_until == tuesday[0].start - timedelta(hours=24)
    late = tuesday[0].start - timedelta(hours=2)
    with pytest.raises(Unprocessable, match="cut-off"):
        appts.cancel_appointment(store, PATIENT, booked.id, now=late)
    with pytest.raises(Unprocessable, match="cut-off"):
        appts.amend_appointment(store, PATIENT, booked.id, move_to=[tuesday[1].id], now=late)
    assert slot_status(store, tuesday[0].id) == "busy"
    # Before it, the patient's own cancellation frees the slot; staff may cancel at any time.
    cancelled = appts.cancel_appointment(store, PATIENT, booked.id, now=NOW)
    assert cancelled.cancellation_reason == "Patient: Canceled via Patient Portal"
    assert slot_status(store, tuesday[0].id) == "free"
    again = appts.book_appointment(
        store, PATIENT, patient_id="pat-1", slot_ids=[tuesday[0].id], now=NOW
    )
    assert (
        appts.cancel_appointment(store, RECEPTION, again.id, reason="pat", now=late).status
        == "cancelled"
    )


def test_one_view_of_past_and_future_appointments(store: SqlStore) -> None:
    seed(store)
    monday, tuesday = slots_on(store, MONDAY)[0], slots_on(store, MONDAY + timedelta(days=1))[0]
    past = appts.book_appointment(
        store, RECEPTION, patient_id="pat-1", slot_ids=[monday.id], now=NOW
    )
    future = appts.book_appointment(
        store, RECEPTION, patient_id="pat-1", slot_ids=[tuesday.id], now=NOW
    )
    seen = appts.patient_appointments(store, RECEPTION, "pat-1", now=NOW + timedelta(hours=12))
    assert ([a.id for a in seen.upcoming], [a.id for a in seen.past]) == ([future.id], [past.id])
    assert seen.upcoming[0].cancel_online_until is None  # staff are not bound by it
    with pytest.raises(Forbidden):
        appts.patient_appointments(store, PARENT, "pat-1", now=NOW)


def test_reception_finds_the_patient_and_sees_booking_alerts_only(store: SqlStore) -> None:
    seed(store)
    found = appts.find_patients(store, RECEPTION, name="smi", birth_date=None)
    assert {p.name for p in found} == {"Jo Smith", "Kit Smith"}
    assert [p.id for p in appts.find_patients(store, RECEPTION, nhs_number="943 476 5919")] == [
        "pat-1"
    ]
    assert len(appts.find_patients(store, RECEPTION, postcode="ZX1")) == 3
    with pytest.raises(Unprocessable):
        appts.find_patients(store, RECEPTION, nhs_number="1234567890")
    flag = {
        "resourceType": "Flag",
        "status": "active",
        "subject": {"reference": "Patient/pat-1"},
        "code": {"text": "Uses a wheelchair: book ground floor rooms"},
    }
    with store.writing() as tx:
        tx.create_many(
            [
                {**flag, "id": "flag-admin", "category": [_flag_category("admin")]},
                {
                    **flag,
                    "id": "flag-clinical",
                    "category": [_flag_category("clinical")],
                    "code": {"text": "Clinical alert"},
                },
            ]
        )
    assert [a.id for a in appts.patient_alerts(store, RECEPTION, "pat-1")] == ["flag-admin"]
    assert {a.id for a in appts.patient_alerts(store, GP, "pat-1")} == {
        "flag-admin",
        "flag-clinical",
    }
    with pytest.raises(Forbidden):
        appts.patient_alerts(store, PATIENT, "pat-1")


def _flag_category(code: str) -> dict[str, object]:
    return {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/flag-category", "code": code}]
    }


def test_every_booking_is_audited_with_provenance_and_refusals_too(store: SqlStore) -> None:
    seed(store)
    slot = slots_on(store, MONDAY)[0]
    booked = appts.book_appointment(
        store, RECEPTION, patient_id="pat-1", slot_ids=[slot.id], now=NOW
    )
    with pytest.raises(Conflict):
        appts.book_appointment(store, RECEPTION, patient_id="pat-2", slot_ids=[slot.id], now=NOW)
    with store.reading() as tx:
        trail = tx.audit_trail(principal="staff/reception-1", count=50)
        provenance = tx.find(
            parse_query("Provenance", [("target", f"Appointment/{booked.id}")], strict=True), 5
        )
    actions = [(row.action, row.outcome, row.resource_type) for row in trail]
    assert ("create", "success", "Appointment") in actions
    assert ("create", "failed", "Appointment") in actions
    assert len(provenance) == 1


def test_patients_book_online_only_at_their_own_practice(store: SqlStore) -> None:
    seed(store)
    elsewhere = appts.create_schedule(
        store, ADMIN, practitioner_role_id="role-other", location_id="site-2", sessions=(ROUTINE,)
    )
    appts.generate_slots(store, ADMIN, elsewhere.id, weeks=1, now=NOW)
    for practice in (ORG, OTHER_ORG):
        appts.save_practice_settings(store, ADMIN, practice, ONLINE)
    start, end = NOW, NOW + timedelta(days=7)
    offered = appts.free_slots(store, PATIENT, start=start, end=end, now=NOW)
    assert offered and elsewhere.id not in {c.slot.schedule_id for c in offered}
    theirs = appts.free_slots(store, RECEPTION, start=start, end=end, schedule_ids=[elsewhere.id])
    with pytest.raises(Unprocessable, match="registered with"):
        appts.book_appointment(
            store, PATIENT, patient_id="pat-1", slot_ids=[theirs[0].slot.id], now=NOW
        )
