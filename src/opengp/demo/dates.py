"""Dates and times for the synthetic record: UK local times, weekdays, spans of days.

Consultations happen in surgery hours on weekdays, at UK local time: GMT in winter, BST
(+01:00) from the last Sunday of March to the last Sunday of October. Times are in surgery
hours, so a date's offset is the offset of its whole working day.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from functools import cache

DAY = timedelta(days=1)
YEAR_DAYS = 365.25


def years_before(day: date, years: int) -> date:
    """The same calendar day `years` earlier (28 February for a 29 February)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February into a common year
        return day.replace(year=day.year - years, day=28)


def add_years(day: date, years: float) -> date:
    """`day` plus a (fractional) number of years, to the day."""
    return day + timedelta(days=round(years * YEAR_DAYS))


def age_on(birth: date, day: date) -> int:
    """Completed years of age on `day`."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def _last_sunday(year: int, month: int) -> date:
    last = date(year, month, 31)
    return last - timedelta(days=(last.weekday() + 1) % 7)


@cache
def _summer_time(year: int) -> tuple[date, date]:
    return _last_sunday(year, 3), _last_sunday(year, 10)


def utc_offset(day: date) -> str:
    """UK local time's offset on `day` in surgery hours: +01:00 in BST, else +00:00."""
    start, end = _summer_time(day.year)
    return "+01:00" if start <= day < end else "+00:00"


def stamp(day: date, minute: int) -> str:
    """A FHIR dateTime (and instant) for `minute` minutes after midnight on `day`, UK time."""
    return f"{day.isoformat()}T{minute // 60:02d}:{minute % 60:02d}:00{utc_offset(day)}"


def random_day(rng: random.Random, first: date, last: date) -> date:
    """A day from first to last inclusive."""
    return first + timedelta(days=rng.randint(0, (last - first).days))


def weekday_within(day: date, first: date, last: date) -> date:
    """`day`, moved to the nearest weekday from first to last (back first, then on); the day
    itself when there is no weekday in the span."""
    weekday = day.weekday()
    if weekday < 5:
        return day
    back = day - timedelta(days=weekday - 4)  # Friday before
    if back >= first:
        return back
    on = day + timedelta(days=7 - weekday)  # Monday after
    return on if on <= last else day


def weekday_from(day: date) -> date:
    """`day`, or the Monday after it if it falls at a weekend."""
    weekday = day.weekday()
    return day if weekday < 5 else day + timedelta(days=7 - weekday)


def surgery_minute(rng: random.Random) -> int:
    """A consultation start in surgery hours, 08:00 to 18:20, on a ten-minute grid."""
    return 480 + 10 * rng.randrange(63)
