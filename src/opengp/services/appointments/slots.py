"""Finding free slots, and blocking and releasing them.

A blocked slot is `busy-unavailable` (R4: "unavailable for booking", e.g. leave or a meeting),
with the reason in `Slot.comment`; releasing makes it `free` again. A slot an appointment
holds cannot be blocked or released: cancel or move the appointment first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opengp.access.principal import Principal
from opengp.fhir import jsonio
from opengp.fhir.errors import Conflict, NotFound, Unprocessable
from opengp.services.appointments import online, recording, times
from opengp.services.appointments.codes import reference_id
from opengp.services.appointments.holding import holder
from opengp.services.appointments.reads import find, read_all
from opengp.services.appointments.settings import (
    PracticeSettings,
    practice_of_schedule,
    settings_of,
)
from opengp.services.appointments.views import SlotView, slot_view
from opengp.store import ReadTransaction, ResourceStore, WriteTransaction

MAX_DAYS = 92  # the widest window one search of free slots may ask for


@dataclass(frozen=True, slots=True)
class SlotChoice:
    slot: SlotView
    clinician: str | None  # the PractitionerRole's display on the Schedule
    location_id: str | None


def free_slots(
    store: ResourceStore,
    principal: Principal,
    *,
    start: datetime,
    end: datetime,
    schedule_ids: Sequence[str] = (),
    slot_type: str | None = None,
    category: str | None = None,
    channel: str | None = None,
    now: datetime | None = None,
    limit: int = 500,
) -> list[SlotChoice]:
    """Free slots starting in [start, end), soonest first. Patients and proxies see only those
    they may book online (opened by the session, of a type the practice offers online, within
    its horizon)."""
    moment = now or times.now_utc()
    if end <= start or (end - start).days > MAX_DAYS:
        raise Unprocessable(f"search at most {MAX_DAYS} days of slots at a time")
    pairs = [
        ("status", "free"),
        ("start", f"ge{start.isoformat()}"),
        ("start", f"lt{end.isoformat()}"),
    ]
    if schedule_ids:
        pairs.append(("schedule", ",".join(f"Schedule/{i}" for i in schedule_ids)))
    if slot_type:
        pairs.append(("service-type:text", slot_type))

    def work(tx: ReadTransaction) -> list[SlotChoice]:
        if online.acts_for_patient(principal):
            # Seeing free slots is the first step of booking for the patient they act for.
            recording.authorise(tx, principal, "create", "Appointment", principal.patient_id)
        else:
            recording.authorise(tx, principal, "search", "Slot")
        schedules: dict[str, tuple[dict[str, Any], PracticeSettings, str | None]] = {}
        registered = online.registered_practice(tx, principal.patient_id)
        found: list[SlotChoice] = []
        # Sorted here, not with _sort=start: the store's sort by a date parameter costs
        # seconds over a practice's slots on SQLite (measured), sorting ~2,000 here does not.
        bodies = sorted(
            find(tx, "Slot", pairs, limit=10_000),
            key=lambda b: (times.maybe(b.get("start")) or times.EARLIEST, b["id"]),
        )
        for body in bodies:
            view = slot_view(body)
            wanted = (
                (slot_type, view.slot_type),
                (category, view.category),
                (channel, view.channel),
            )
            if any(asked and asked != found for asked, found in wanted):
                continue
            if view.schedule_id is None:
                continue
            if view.schedule_id not in schedules:
                schedule = next(read_all(tx, "Schedule", [view.schedule_id]), {})
                practice = practice_of_schedule(tx, schedule)
                schedules[view.schedule_id] = (schedule, settings_of(tx, practice), practice)
            schedule, settings, practice = schedules[view.schedule_id]
            if online.acts_for_patient(principal) and (
                practice is None
                or practice != registered
                or online.refusal(body, settings, moment) is not None
            ):
                continue
            found.append(_choice(view, schedule))
            if len(found) >= limit:
                break
        return found

    return recording.reading(store, principal, "Slot", work, detail={"view": "free-slots"})


def block_slots(
    store: ResourceStore, principal: Principal, slot_ids: Sequence[str], *, reason: str
) -> list[SlotView]:
    """Make free slots unavailable for booking (leave, training, a meeting)."""
    if not reason.strip():
        raise Unprocessable("say why the slots are blocked", expression=["Slot.comment"])
    return _set_status(store, principal, slot_ids, "free", "busy-unavailable", reason.strip())


def release_slots(
    store: ResourceStore, principal: Principal, slot_ids: Sequence[str]
) -> list[SlotView]:
    """Make blocked slots free for booking again."""
    return _set_status(store, principal, slot_ids, "busy-unavailable", "free", None)


def _set_status(
    store: ResourceStore,
    principal: Principal,
    slot_ids: Sequence[str],
    from_status: str,
    to_status: str,
    comment: str | None,
) -> list[SlotView]:
    def work(tx: WriteTransaction) -> list[SlotView]:
        recording.authorise(tx, principal, "update", "Slot")
        changed = []
        for id in sorted(set(slot_ids)):
            tx.serialise(f"slot:{id}")
            stored = tx.current("Slot", id, for_update=True)
            if stored is None or stored.content is None:
                raise NotFound(f"Slot/{id} is not known")
            body = jsonio.loads(stored.content)
            booked_by = holder(tx, id)
            if booked_by is not None:
                raise Conflict(
                    f"Slot/{id} is booked (Appointment/{booked_by}): cancel or move it first"
                )
            if body.get("status") != from_status:
                raise Unprocessable(f"Slot/{id} is {body.get('status')}, not {from_status}")
            body = {k: v for k, v in body.items() if k != "comment"} | {"status": to_status}
            if comment:
                body["comment"] = comment
            saved = tx.save("Slot", id, body, method="PUT", previous=stored)
            recording.recorded(tx, principal, "update", saved, use_case=f"slot-{to_status}")
            changed.append(slot_view(body))
        return changed

    return recording.writing(store, principal, "Slot", work)


def _choice(view: SlotView, schedule: dict[str, Any]) -> SlotChoice:
    actors = schedule.get("actor") or []
    role: dict[str, Any] = next((a for a in actors if reference_id(a, "PractitionerRole")), {})
    location = next((i for a in actors if (i := reference_id(a, "Location"))), None)
    return SlotChoice(view, role.get("display"), location)
