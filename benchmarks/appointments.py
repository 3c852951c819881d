"""Appointment use cases on a loaded synthetic practice (`opengp demo --patients 10000`).

    python -m benchmarks.appointments --database URL [--as-of 2026-11-20] [--n 20]

Times, in the process (no HTTP): the weekly report of a past week, free slots over two
weeks, a clinician's day list, a patient's appointments, booking and cancelling one slot,
and generating four weeks of slots from a rota for a new book. Median and worst of `--n`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from opengp.access.principal import Principal
from opengp.search.query import parse_query
from opengp.services import appointments as appts
from opengp.store.sql import SqlStore


def _timed(label: str, n: int, work: Callable[[], Any]) -> Any:
    times, result = [], None
    for _ in range(n):
        began = time.perf_counter()
        result = work()
        times.append((time.perf_counter() - began) * 1000)
    print(f"{label:<44} median {statistics.median(times):8.1f} ms   worst {max(times):8.1f} ms")
    return result


def _first(store: SqlStore, resource_type: str, *pairs: tuple[str, str]) -> dict[str, Any]:
    with store.reading() as tx:
        ids = tx.find(parse_query(resource_type, list(pairs), strict=True), limit=1)
        stored = tx.current(resource_type, ids[0])
    assert stored is not None
    assert stored.content is not None
    body: dict[str, Any] = orjson.loads(stored.content)
    return body


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", required=True)
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2026, 11, 20))
    parser.add_argument("--n", type=int, default=20)
    args = parser.parse_args()
    store = SqlStore.from_url(args.database)
    organization = _first(store, "Organization", ("_count", "1"))
    manager = Principal(
        "staff",
        "bench",
        "bench",
        organization_id=organization["id"],
        roles=frozenset({"R8008"}),
        scopes=frozenset({"user/*.cruds"}),
    )
    schedule = _first(store, "Schedule", ("active", "true"))
    role_id = next(
        a["reference"].split("/")[1]
        for a in schedule["actor"]
        if a["reference"].startswith("PractitionerRole/")
    )
    patient = _first(store, "Patient", ("organization", f"Organization/{organization['id']}"))
    now = datetime.combine(args.as_of, datetime.min.time(), tzinfo=UTC) + timedelta(hours=7)
    week = args.as_of - timedelta(days=7)
    report = _timed(
        "weekly report (a past week)",
        args.n,
        lambda: appts.weekly_report(store, manager, organization["id"], week),
    )
    print(f"  {sum(report.by_status.values())} appointments, {len(report.rows)} rows")
    slots = _timed(
        "free slots, two weeks, whole practice",
        args.n,
        lambda: appts.free_slots(store, manager, start=now, end=now + timedelta(days=14), now=now),
    )
    print(f"  {len(slots)} free slots")
    _timed(
        "day list of one clinician",
        args.n,
        lambda: appts.day_list(store, manager, args.as_of, practitioner_role_id=role_id),
    )
    _timed(
        "a patient's appointments",
        args.n,
        lambda: appts.patient_appointments(store, manager, patient["id"], now=now),
    )
    _timed(
        "find patients by name (3 letters)",
        args.n,
        lambda: appts.find_patients(store, manager, name=patient["name"][0]["family"][:3]),
    )
    free = iter(slots)

    def book_and_cancel() -> None:
        choice = next(free)
        booked = appts.book_appointment(
            store, manager, patient_id=patient["id"], slot_ids=[choice.slot.id], now=now
        )
        appts.cancel_appointment(store, manager, booked.id, reason="oth-err", now=now)

    _timed("book then cancel one slot (two transactions)", args.n, book_and_cancel)
    sessions = tuple(
        appts.Session(
            days=("mon", "tue", "wed", "thu", "fri"),
            start=datetime.min.time().replace(hour=hour),
            end=datetime.min.time().replace(hour=hour + 3),
            slot_minutes=10,
            slot_type="Routine GP appointment",
            category="slot_general_consultation_routine",
            channel="channel_in_person",
        )
        for hour in (8, 14)
    )

    def new_book() -> None:
        book = appts.create_schedule(
            store,
            manager,
            practitioner_role_id=role_id,
            location_id=next(
                a["reference"].split("/")[1]
                for a in schedule["actor"]
                if a["reference"].startswith("Location/")
            ),
            sessions=sessions,
        )
        made = appts.generate_slots(store, manager, book.id, weeks=4, now=now)
        assert made.created == 4 * 5 * 36, made

    _timed("new book + 4 weeks of slots (720)", max(1, args.n // 5), new_book)
    store.dispose()


if __name__ == "__main__":
    main()
