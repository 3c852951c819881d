"""The implicit range of a date or a number, as FHIR search compares them.

http://hl7.org/fhir/R4/search.html#prefix: a value stands for the range its precision
implies. `2013-01` is all of January 2013; `100` is [99.5, 100.5); `1e2` is [50, 150).
Ranges are half-open, [low, high), in both the index and the query, so that `eq` is
"search range contains target range" and `gt` is "target high > search high", and so on.

Dates and times without a time zone are read as times in England (Europe/London), the
practices' own clock; instants with a zone are exact. Open ends are MIN_INSTANT/MAX_INSTANT.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from zoneinfo import ZoneInfo

LOCAL = ZoneInfo("Europe/London")
MIN_INSTANT = datetime(1, 1, 2, tzinfo=UTC)  # one day in, so zone conversion cannot underflow
MAX_INSTANT = datetime(9999, 12, 30, tzinfo=UTC)

_DATE = re.compile(
    r"(?P<year>[0-9]{4})(?:-(?P<month>[0-9]{2})(?:-(?P<day>[0-9]{2})"
    r"(?:T(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})(?::(?P<second>[0-9]{2})(?P<fraction>\.[0-9]+)?)?"
    r"(?P<zone>Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?"
)


class RangeError(ValueError):
    """The text is not a FHIR date, dateTime or instant (or not a decimal number)."""


@lru_cache(maxsize=256)  # a practice's data has a handful of offsets (+00:00, +01:00)
def _zone(text: str | None) -> tzinfo:
    if text is None:
        return LOCAL
    if text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    hours, minutes = int(text[1:3]), int(text[4:6])
    if hours > 14 or minutes > 59:
        raise RangeError(f"time zone {text!r} is out of range")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


_DAY, _MINUTE = timedelta(days=1), timedelta(minutes=1)
# The length of a time's precision by its number of fraction digits (kept: up to six).
_SECOND_STEPS = tuple(timedelta(microseconds=10 ** (6 - n)) for n in range(7))


# The commonest form, a time to the second with its zone, which datetime reads as it is.
_SECONDS = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-9]{2}:[0-9]{2}(?:Z|[+-][0-9]{2}:[0-9]{2})"
)


def date_range(text: str) -> tuple[datetime, datetime]:
    """[low, high) in UTC of a FHIR date, dateTime or instant (any precision)."""
    if _SECONDS.fullmatch(text):
        _zone(text[19:])  # an offset out of range is an error, as below
        try:
            low = datetime.fromisoformat(text)
        except ValueError:
            pass  # not a valid time (30 February): the reading below says why
        else:
            if 1 < low.year < 9999:  # far from MIN_/MAX_INSTANT: a second on, in UTC
                low = low.astimezone(UTC)
                return low, low + _SECOND_STEPS[0]
    match = _DATE.fullmatch(text)
    if match is None:
        raise RangeError(f"{text!r} is not a date or time (expected e.g. 2024-03-01)")
    year_text, month, day, hour, minute, second, fraction, zone_text = match.groups()
    year = int(year_text)
    zone = _zone(zone_text)
    try:
        if month is None:
            low = datetime(year, 1, 1, tzinfo=zone)
            high = datetime(year + 1, 1, 1, tzinfo=zone) if year < 9999 else None
        elif day is None:
            m = int(month)
            low = datetime(year, m, 1, tzinfo=zone)
            high = (
                datetime(year + m // 12, m % 12 + 1, 1, tzinfo=zone)
                if (year, m) < (9999, 12)
                else None
            )
        elif hour is None:
            low = datetime(year, int(month), int(day), tzinfo=zone)
            high = low + _DAY
        elif second is None:
            low = datetime(year, int(month), int(day), int(hour), int(minute), tzinfo=zone)
            high = low + _MINUTE
        else:
            digits = fraction[1:7] if fraction else ""
            low = datetime(
                year,
                int(month),
                int(day),
                int(hour),
                int(minute),
                int(second),
                int(digits.ljust(6, "0")) if digits else 0,
                tzinfo=zone,
            )
            high = low + _SECOND_STEPS[len(digits)]
    except (ValueError, OverflowError) as exc:
        raise RangeError(f"{text!r} is not a valid date or time: {exc}") from None
    return _utc(low, high)


def _utc(low: datetime, high: datetime | None) -> tuple[datetime, datetime]:
    """[low, high) in UTC, within MIN_/MAX_INSTANT (high None: open)."""
    low_utc = low.astimezone(UTC)
    high_utc = MAX_INSTANT if high is None else high.astimezone(UTC)
    return max(low_utc, MIN_INSTANT), min(high_utc, MAX_INSTANT)


def number_range(value: Decimal | int | float | str) -> tuple[Decimal, Decimal, Decimal]:
    """(value, low, high) of a number: half a unit of its last significant digit either side.

    `100` → [99.5, 100.5), `100.0` → [99.95, 100.05), `1e2` → [50, 150).
    """
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise RangeError(f"{value!r} is not a number") from None
    if not number.is_finite():
        raise RangeError(f"{value!r} is not a finite number")
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    half = Decimal(5).scaleb(exponent - 1)
    return number, number - half, number + half
