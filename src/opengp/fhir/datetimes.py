"""FHIR date/time formatting (http://hl7.org/fhir/R4/datatypes.html#instant)."""

from __future__ import annotations

from datetime import UTC, datetime


def instant(value: datetime) -> str:
    """An aware datetime as a FHIR instant in UTC, to the millisecond: 2026-11-21T08:15:00.123Z."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
