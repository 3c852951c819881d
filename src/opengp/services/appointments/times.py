"""Times in the appointment book: UK local time, written with its offset as GP Connect sends
them (2026-03-02T08:30:00+00:00), read back as aware datetimes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from opengp.fhir.errors import Unprocessable

LOCAL = ZoneInfo("Europe/London")
EARLIEST = datetime.min.replace(tzinfo=UTC)  # sorts what has no time first


def local(day: date, at: time) -> datetime:
    """The aware local time of `at` on `day` (slots never start in the 01:00 change hour)."""
    return datetime.combine(day, at, tzinfo=LOCAL)


def fhir_datetime(value: datetime) -> str:
    """A FHIR dateTime in UK local time with its offset, to the second."""
    return value.astimezone(LOCAL).isoformat(timespec="seconds")


def parse(value: Any, element: str) -> datetime:
    """An aware datetime from a FHIR dateTime with a time (a date alone is not enough here)."""
    if isinstance(value, str) and "T" in value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=LOCAL)
    raise Unprocessable(f"{element} must be a date and time, not {value!r}", expression=[element])


def maybe(value: Any) -> datetime | None:
    try:
        return parse(value, "")
    except Unprocessable:
        return None


def local_day(value: datetime) -> date:
    return value.astimezone(LOCAL).date()


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a local day, as UTC instants."""
    start = local(day, time(0))
    end = local(day + timedelta(days=1), time(0))
    return start.astimezone(UTC), end.astimezone(UTC)


def now_utc() -> datetime:
    return datetime.now(UTC)
