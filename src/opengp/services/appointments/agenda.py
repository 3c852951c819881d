"""A clinician's day: every slot of their books that day, who is booked in it and how far
they have got, and the appointments cancelled that day."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from opengp.access.principal import Principal
from opengp.fhir.errors import Unprocessable
from opengp.services.appointments import recording, times
from opengp.services.appointments.holding import slot_ids as slot_ids_of
from opengp.services.appointments.reads import find, read_all
from opengp.services.appointments.schedules import ScheduleSummary, summary
from opengp.services.appointments.views import (
    AppointmentView,
    PatientSummary,
    SlotView,
    appointment_view,
    patient_summary,
    slot_view,
)
from opengp.store import ReadTransaction, ResourceStore

OR_CHUNK = 100  # references in one comma-separated (OR) search value
_NEVER = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class DayListRow:
    slot: SlotView
    appointment: AppointmentView | None  # the one holding the slot
    patient: PatientSummary | None
    in_consultation: bool  # its Encounter has started and not ended


@dataclass(frozen=True, slots=True)
class DayList:
    day: date
    schedules: tuple[ScheduleSummary, ...]
    rows: tuple[DayListRow, ...]  # in time order
    cancelled: tuple[tuple[AppointmentView, PatientSummary | None], ...]


def day_list(
    store: ResourceStore,
    principal: Principal,
    day: date,
    *,
    practitioner_role_id: str | None = None,
    schedule_ids: Sequence[str] = (),
) -> DayList:
    """The day of one clinician (all their books) or of the books named."""
    if practitioner_role_id is None and not schedule_ids:
        raise Unprocessable("choose a clinician or an appointment book")

    def work(tx: ReadTransaction) -> DayList:
        recording.authorise(tx, principal, "search", "Appointment")
        if schedule_ids:
            schedules = list(read_all(tx, "Schedule", list(schedule_ids)))
        else:
            pairs = [("actor", f"PractitionerRole/{practitioner_role_id}")]
            schedules = find(tx, "Schedule", pairs, limit=100)
        low, high = times.day_bounds(day)
        slots: list[SlotView] = []
        for ids in _chunks([s["id"] for s in schedules]):
            pairs = [
                ("schedule", ",".join(f"Schedule/{i}" for i in ids)),
                ("start", f"ge{low.isoformat()}"),
                ("start", f"lt{high.isoformat()}"),
            ]
            slots += [slot_view(s) for s in find(tx, "Slot", pairs)]
        slots.sort(key=lambda s: (s.start, s.id))
        appointments = _appointments(tx, day, [s.id for s in slots])
        patients = {
            p["id"]: patient_summary(p)
            for p in read_all(
                tx, "Patient", sorted({a.patient_id for a in appointments if a.patient_id})
            )
        }
        started = _in_consultation(tx, [a.id for a in appointments if a.status == "checked-in"])
        holding = {
            s: a
            for a in appointments
            if a.status not in ("cancelled", "entered-in-error")
            for s in a.slot_ids
        }
        rows = tuple(
            DayListRow(
                s,
                holding.get(s.id),
                patients.get(holding[s.id].patient_id or "") if s.id in holding else None,
                s.id in holding and holding[s.id].id in started,
            )
            for s in slots
        )
        cancelled = tuple(
            (a, patients.get(a.patient_id or "")) for a in appointments if a.status == "cancelled"
        )
        return DayList(day, tuple(summary(s) for s in schedules), rows, cancelled)

    return recording.reading(store, principal, "Appointment", work, detail={"view": "day-list"})


def _appointments(tx: ReadTransaction, day: date, slot_ids: list[str]) -> list[AppointmentView]:
    """The appointments in the day's slots: the day's appointments (one date-range search)
    picked by slot, which costs far less than `slot=` with a hundred references (measured)."""
    low, high = times.day_bounds(day)
    pairs = [("date", f"ge{low.isoformat()}"), ("date", f"lt{high.isoformat()}")]
    wanted = set(slot_ids)
    found = [
        appointment_view(body)
        for body in find(tx, "Appointment", pairs)
        if wanted.intersection(slot_ids_of(body))
    ]
    return sorted(found, key=lambda a: (a.start or _NEVER, a.id))


def _in_consultation(tx: ReadTransaction, appointment_ids: list[str]) -> set[str]:
    started: set[str] = set()
    for ids in _chunks(appointment_ids):
        pairs = [
            ("appointment", ",".join(f"Appointment/{i}" for i in ids)),
            ("status", "in-progress"),
        ]
        for encounter in find(tx, "Encounter", pairs):
            for ref in encounter.get("appointment") or ():
                started.add(str(ref.get("reference", "")).removeprefix("Appointment/"))
    return started


def _chunks(ids: list[str]) -> list[list[str]]:
    return [ids[i : i + OR_CHUNK] for i in range(0, len(ids), OR_CHUNK)]
