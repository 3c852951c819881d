"""Making slots from a rota, weeks ahead.

Idempotent: a slot's id is derived from its Schedule and start, and a candidate that
overlaps any slot already in the book (of an earlier rota, blocked or booked) is left out,
so running it again (or after a rota change) never makes a second slot for the same time.
Runs for one Schedule are serialised, so two at once cannot both create.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from opengp.access.principal import Principal
from opengp.fhir import jsonio
from opengp.fhir.errors import NotFound, Unprocessable
from opengp.fhir.validation import validate_resource
from opengp.services.appointments import recording, times
from opengp.services.appointments.codes import (
    ONLINE_BOOKING_URL,
    OPENGP,
    category_concept,
    channel_extension,
)
from opengp.services.appointments.reads import find, present
from opengp.services.appointments.rota import Session, sessions_of
from opengp.store import ResourceStore, WriteTransaction

MAX_WEEKS = 52
SLOT_PROFILE = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Slot"


@dataclass(frozen=True, slots=True)
class Generated:
    created: int
    skipped: int  # already there, or overlapping a slot already there
    first_day: date
    last_day: date


def slot_id(schedule_id: str, start: datetime) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{OPENGP}/Slot/{schedule_id}/{start.timestamp()}"))


def generate_slots(
    store: ResourceStore,
    principal: Principal,
    schedule_id: str,
    *,
    weeks: int,
    first_day: date | None = None,
    now: datetime | None = None,
) -> Generated:
    """Slots for `weeks` weeks from `first_day` (today), none in the past."""
    if not 1 <= weeks <= MAX_WEEKS:
        raise Unprocessable(f"weeks must be 1 to {MAX_WEEKS}", expression=["weeks"])
    moment = now or times.now_utc()
    first = first_day or times.local_day(moment)
    last = first + timedelta(days=weeks * 7 - 1)

    def work(tx: WriteTransaction) -> Generated:
        recording.authorise(tx, principal, "create", "Slot")
        tx.serialise(f"generate-slots:{schedule_id}")
        stored = tx.current("Schedule", schedule_id)
        if stored is None or stored.content is None:
            raise NotFound(f"Schedule/{schedule_id} is not known")
        sessions = sessions_of(jsonio.loads(stored.content))
        taken = _existing(tx, schedule_id, first, last)
        new: list[dict[str, Any]] = []
        skipped = 0
        for day in (first + timedelta(days=i) for i in range((last - first).days + 1)):
            for session in (s for s in sessions if s.runs_on(day)):
                for start_at, end_at in session.slot_times():
                    start, end = times.local(day, start_at), times.local(day, end_at)
                    if start < moment:
                        continue
                    if any(start < t_end and t_start < end for t_start, t_end in taken):
                        skipped += 1
                        continue
                    new.append(_slot(schedule_id, session, start, end))
                    taken.append((start, end))
        # A slot deleted through the FHIR API keeps its id (and its history): not made again.
        there = present(tx, "Slot", [s["id"] for s in new])
        skipped += len(there)
        new = [s for s in new if s["id"] not in there]
        if new:
            validate_resource(new[0])  # made by code the unit tests validate in full
            tx.create_many(new)
            ids = [s["id"] for s in new]
            recording.recorded_many(
                tx, principal, "Slot", ids, when=moment, use_case="generate-slots"
            )
        return Generated(len(new), skipped, first, last)

    return recording.writing(store, principal, "Slot", work, action="create")


def _existing(
    tx: WriteTransaction, schedule_id: str, first: date, last: date
) -> list[tuple[datetime, datetime]]:
    """(start, end) of the book's slots starting within the window, whatever their status."""
    low, _ = times.day_bounds(first)
    _, high = times.day_bounds(last)
    pairs = [
        ("schedule", f"Schedule/{schedule_id}"),
        ("start", f"ge{low.isoformat()}"),
        ("start", f"lt{high.isoformat()}"),
    ]
    return [
        (times.parse(body["start"], "Slot.start"), times.parse(body["end"], "Slot.end"))
        for body in find(tx, "Slot", pairs)
    ]


def _slot(schedule_id: str, session: Session, start: datetime, end: datetime) -> dict[str, Any]:
    extensions = [channel_extension(session.channel)]
    if session.online_days_ahead is not None:
        extensions.append(
            {"url": ONLINE_BOOKING_URL, "valueUnsignedInt": session.online_days_ahead}
        )
    return {
        "resourceType": "Slot",
        "id": slot_id(schedule_id, start),
        "meta": {"profile": [SLOT_PROFILE]},
        "extension": extensions,
        "serviceCategory": [category_concept(session.category)],
        "serviceType": [{"text": session.slot_type}],
        "schedule": {"reference": f"Schedule/{schedule_id}"},
        "status": "free",
        "start": times.fhir_datetime(start),
        "end": times.fhir_datetime(end),
    }
