"""Calling the appointment services from a screen: on a worker thread, with what they refuse
(`FhirError`: not allowed, not found, no longer free, past the cut-off) shown as the area's
problem page rather than a 500; and the words the pages use for dates and times."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from opengp.api.web.areas import Area
from opengp.api.web.guard import refused
from opengp.api.web.session import SignedIn
from opengp.fhir.errors import FhirError
from opengp.services.appointments import times
from opengp.store import WriteConflict

T = TypeVar("T")


async def call(area: Area, signed: SignedIn, work: Callable[[], T]) -> T | Response:
    """`work()`'s answer, or the problem page saying why the service refused."""
    try:
        return await run_in_threadpool(work)
    except WriteConflict:
        message = "Someone else changed this at the same time. Go back and try again."
        return refused(area, message, 409, signed)
    except FhirError as exc:
        status = exc.status if 400 <= exc.status < 500 else 400
        return refused(area, _sentence(str(exc)), status, signed)


def _sentence(text: str) -> str:
    text = text.strip() or "This could not be done"
    return text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")


def day_text(day: date) -> str:
    """Monday 7 January 2030"""
    return f"{day:%A} {day.day} {day:%B %Y}"


def time_text(value: datetime | None) -> str:
    """9:15am (UK time)"""
    if value is None:
        return "no time set"
    local = value.astimezone(times.LOCAL)
    hour = local.hour % 12 or 12
    return f"{hour}:{local.minute:02d}{'am' if local.hour < 12 else 'pm'}"


def when_text(value: datetime | None) -> str:
    """Monday 7 January 2030 at 9:15am"""
    if value is None:
        return "no time set"
    return f"{day_text(times.local_day(value))} at {time_text(value)}"


def parse_day(value: str | None, default: date) -> date | None:
    """A YYYY-MM-DD query value; None when it is not one."""
    if not value:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None
