"""Appointments through `/fhir`, on both databases, following the GP Connect Appointment
Management interaction model in R4: search free slots, book (POST Appointment with its
slots), read, amend (PUT), cancel (PUT status cancelled) and the patient's appointments."""

from __future__ import annotations

from typing import Any

import pytest

from opengp.store.sql import SqlStore
from tests.functional.appointment_helpers import MONDAY, seed, slots_on
from tests.functional.conftest import Fhir


@pytest.fixture
def free(fhir: Fhir, store: SqlStore) -> list[dict[str, Any]]:
    """The free slots of Monday, as the FHIR API serves them."""
    seed(store)
    return [fhir.get(f"Slot/{s.id}").json() for s in slots_on(store, MONDAY)]


def appointment(slot: dict[str, Any], patient: str = "pat-1", /, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "slot": [{"reference": f"Slot/{slot['id']}"}],
        "start": slot["start"],
        "end": slot["end"],
        "description": "Review of knee pain",
        "participant": [{"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"}],
        **extra,
    }


def status_of(fhir: Fhir, slot: dict[str, Any]) -> str:
    return str(fhir.get(f"Slot/{slot['id']}").json()["status"])


def test_free_slot_search_includes_the_schedules(fhir: Fhir, free: list[dict[str, Any]]) -> None:
    found = fhir.get(
        "Slot?status=free&start=ge2030-01-07T00:00:00Z&start=le2030-01-07T23:59:59Z"
        "&_include=Slot:schedule&_count=100"
    ).json()
    modes = [e["search"]["mode"] for e in found["entry"]]
    assert modes.count("match") == len(free) == 7
    assert [
        e["resource"]["resourceType"] for e in found["entry"] if e["search"]["mode"] == "include"
    ] == ["Schedule"]


def test_book_read_amend_and_cancel(fhir: Fhir, free: list[dict[str, Any]]) -> None:
    slot = free[0]
    booked = fhir.post("Appointment", appointment(slot))
    assert booked.status_code == 201, booked.text
    body = booked.json()
    assert body["created"] and status_of(fhir, slot) == "busy"
    assert fhir.get(f"Appointment/{body['id']}").json()["status"] == "booked"
    listed = fhir.get("Patient/pat-1/Appointment").json()
    assert [e["resource"]["id"] for e in listed["entry"]] == [body["id"]]

    # A second booking of the slot is refused whoever asks: 409 with an OperationOutcome.
    again = fhir.post("Appointment", appointment(slot, "pat-2"))
    assert again.status_code == 409
    assert again.json()["issue"][0]["code"] == "conflict"
    assert again.json()["issue"][0]["expression"] == ["Appointment.slot"]

    # Amend: description and comment.
    amended = fhir.put(
        f"Appointment/{body['id']}", {**body, "comment": "Wheelchair user"}, If_Match='W/"1"'
    )
    assert amended.status_code == 200 and status_of(fhir, slot) == "busy"

    # Cancel: the slot is free again and another patient may have it.
    reason = {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason",
                "code": "pat",
            }
        ]
    }
    cancelled = fhir.put(
        f"Appointment/{body['id']}",
        {**amended.json(), "status": "cancelled", "cancelationReason": reason},
    )
    assert cancelled.status_code == 200 and status_of(fhir, slot) == "free"
    assert fhir.post("Appointment", appointment(slot, "pat-2")).status_code == 201
    # Un-cancelling the first would double-book: refused.
    reinstated = fhir.put(f"Appointment/{body['id']}", {**cancelled.json(), "status": "booked"})
    assert reinstated.status_code == 409


def test_bookings_that_break_the_rules_are_refused(fhir: Fhir, free: list[dict[str, Any]]) -> None:
    first, second, third = free[:3]
    wrong_end = appointment(first, end=second["end"])
    assert fhir.post("Appointment", wrong_end).status_code == 422
    assert fhir.post("Appointment", appointment(first, "nobody")).status_code == 422
    unknown = appointment(first, slot=[{"reference": "Slot/no-such-slot"}])
    assert fhir.post("Appointment", unknown).status_code == 422
    absolute = appointment(
        first, slot=[{"reference": f"https://elsewhere.example/fhir/Slot/{first['id']}"}]
    )
    refused = fhir.post("Appointment", absolute)
    assert refused.status_code == 422
    assert refused.json()["issue"][0]["expression"] == ["Appointment.slot[0]"]
    apart = appointment(first, slot=[{"reference": f"Slot/{s['id']}"} for s in (first, third)])
    apart.pop("end")
    assert fhir.post("Appointment", apart).status_code == 422
    assert {status_of(fhir, s) for s in (first, second, third)} == {"free"}
    # Start and end are filled in from the slots when the client leaves them out.
    bare = appointment(first, slot=[{"reference": f"Slot/{s['id']}"} for s in (first, second)])
    del bare["start"], bare["end"]
    made = fhir.post("Appointment", bare)
    assert made.status_code == 201, made.text
    assert (made.json()["start"], made.json()["end"]) == (first["start"], second["end"])


def test_a_booked_slot_is_freed_only_through_its_appointment(
    fhir: Fhir, free: list[dict[str, Any]]
) -> None:
    slot = free[0]
    booked = fhir.post("Appointment", appointment(slot)).json()
    freed = fhir.put(
        f"Slot/{slot['id']}", {**fhir.get(f"Slot/{slot['id']}").json(), "status": "free"}
    )
    assert freed.status_code == 409
    assert fhir.delete(f"Slot/{slot['id']}").status_code == 409
    later = {**fhir.get(f"Slot/{slot['id']}").json(), "start": free[1]["start"]}
    assert fhir.put(f"Slot/{slot['id']}", later).status_code == 409
    patched = fhir.request(
        "PATCH",
        f"Appointment/{booked['id']}",
        [{"op": "replace", "path": "/status", "value": "entered-in-error"}],
        Content_Type="application/json-patch+json",
    )
    assert patched.status_code == 200 and status_of(fhir, slot) == "free"
    rebooked = fhir.post("Appointment", appointment(slot, "pat-2")).json()
    assert fhir.delete(f"Appointment/{rebooked['id']}").status_code == 204
    assert status_of(fhir, slot) == "free"


def test_a_transaction_booking_one_slot_twice_writes_nothing(
    fhir: Fhir, free: list[dict[str, Any]]
) -> None:
    slot = free[0]
    entries = [
        {"resource": appointment(slot, who), "request": {"method": "POST", "url": "Appointment"}}
        for who in ("pat-1", "pat-2")
    ]
    response = fhir.post("", {"resourceType": "Bundle", "type": "transaction", "entry": entries})
    assert response.status_code == 409
    assert status_of(fhir, slot) == "free"
    assert fhir.get("Appointment").json()["total"] == 0
