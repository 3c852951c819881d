"""A FHIR interaction's request and response, independent of any web framework."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opengp.store import StoredResource


@dataclass(frozen=True, slots=True)
class FhirRequest:
    method: str
    # Path below the FHIR base, no leading slash and no query: "Patient/1/_history/2".
    path: str
    params: tuple[tuple[str, str], ...] = ()
    body: Any = None  # parsed JSON; a JSON Patch document when `is_patch`
    is_patch: bool = False
    if_match: str | None = None
    if_none_match: str | None = None
    if_none_exist: str | None = None
    if_modified_since: datetime | None = None
    # Prefer: return=minimal | representation | OperationOutcome
    prefer_return: str | None = None
    # Prefer: handling=strict: unknown or malformed search parameters are errors.
    strict: bool = False
    # The id a create must use: set when a transaction has mapped the entry's fullUrl to it.
    new_id: str | None = None

    def param(self, name: str) -> str | None:
        values = [v for k, v in self.params if k == name]
        return values[-1] if values else None


@dataclass(slots=True)
class FhirResponse:
    status: int
    # The resource version the response is about: gives ETag and Last-Modified.
    resource: StoredResource | None = None
    # The body when it is not the resource itself (Bundle, CapabilityStatement, ...).
    body: bytes | None = None
    location: str | None = None
    outcome: dict[str, Any] | None = None
    # Whether the body defaults to the resource (reads) or follows Prefer: return (writes).
    is_write: bool = False
    headers: dict[str, str] = field(default_factory=dict)


def etag(version_id: int) -> str:
    return f'W/"{version_id}"'


def parse_etag(value: str) -> int | None:
    """`W/"3"` or `"3"` -> 3 (http://hl7.org/fhir/R4/http.html#versioning)."""
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    value = value.strip('"')
    return int(value) if value.isdigit() else None
