"""The appointment book's rules for writes through the FHIR API (`services/fhir/write_rules`):
the same `hold_slots` the screens' bookings go through, so no path can double-book a slot or
leave a cancelled appointment holding one (GP Connect Appointment Management: book = POST
Appointment with its slots; amend = PUT; cancel = PUT with status cancelled)."""

from __future__ import annotations

from typing import Any

from opengp.access.principal import Principal
from opengp.fhir import jsonio
from opengp.fhir.errors import Conflict
from opengp.services.appointments import times
from opengp.services.appointments.holding import hold_slots, holder
from opengp.store import StoredResource, WriteTransaction


def _body(stored: StoredResource | None) -> dict[str, Any] | None:
    if stored is None or stored.content is None:
        return None
    body: dict[str, Any] = jsonio.loads(stored.content)
    return body


def appointment(
    tx: WriteTransaction,
    principal: Principal | None,
    previous: StoredResource | None,
    resource: dict[str, Any] | None,
) -> dict[str, Any] | None:
    return hold_slots(tx, principal, _body(previous), resource, now=times.now_utc())


def slot(
    tx: WriteTransaction,
    principal: Principal | None,
    previous: StoredResource | None,
    resource: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """A Slot an appointment holds stays busy, at its time, in its book: it is freed by
    cancelling or moving the appointment, never by changing or deleting the Slot under it."""
    before = _body(previous)
    if previous is None or before is None:
        return resource
    after = resource or {}
    kept = ("start", "end", "schedule")
    if after.get("status") == "busy" and all(after.get(k) == before.get(k) for k in kept):
        return resource
    tx.serialise(f"slot:{previous.id}")
    found = holder(tx, previous.id)
    if found is not None:
        raise Conflict(
            f"Slot/{previous.id} is booked by Appointment/{found}: cancel or move that "
            "appointment to free or change it",
            expression=["Slot.status"],
        )
    return resource
