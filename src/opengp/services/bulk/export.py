"""FHIR Bulk Data export (https://hl7.org/fhir/uv/bulkdata/export.html): what to export,
and writing it as one NDJSON file per resource type.

The stored content bytes are the NDJSON lines: they are copied from the database to the
file in keyset batches, never parsed or re-serialised, and never more than one batch is in
memory. Every type is read from one snapshot, so references between the files resolve.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl

import orjson

from opengp.fhir.datetimes import instant
from opengp.fhir.definitions.r4 import RESOURCE_TYPES
from opengp.fhir.errors import BadRequest, NotFound
from opengp.fhir.references import parse_relative
from opengp.search.definitions.r4 import COMPARTMENTS
from opengp.search.parse import SearchQuery
from opengp.search.query import parse_query
from opengp.services.bulk.ndjson import Writer
from opengp.store.sql import SqlStore
from opengp.store.sql import bulk as sql
from opengp.store.sql.search import Compiler
from opengp.store.sql.store import SqlReadTransaction

Level = Literal["system", "patient", "group"]
# Types that can be in a patient's record (the R4 Patient CompartmentDefinition) and Patient.
PATIENT_TYPES = frozenset(COMPARTMENTS["Patient"]) | {"Patient"}
NDJSON = "application/fhir+ndjson"
OUTPUT_FORMATS = frozenset({NDJSON, "application/ndjson", "ndjson"})
# Search result parameters: they shape a page of results and mean nothing in a filter.
RESULT_PARAMETERS = frozenset(
    {"_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total"}
    | {"_contained", "_containedType", "_cursor"}
)
# Where one `_typeFilter` value holds several queries: a comma followed by `Type?`.
_NEXT_QUERY = re.compile(r",(?=[A-Z][A-Za-z]+\?)")
BATCH = 5000

# Called with (resource type being written, types done, types in all, resources written).
Progress = Callable[[str, int, int, int], None]


class Cancelled(Exception):
    """The job was cancelled while it ran."""


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """What to export: a kick-off's parameters, checked."""

    level: Level
    group_id: str | None = None
    types: tuple[str, ...] = ()  # `_type`; empty: every type the client may read
    since: datetime | None = None  # `_since`: changed after this instant
    type_filters: tuple[str, ...] = ()  # `_typeFilter`: "Type?query" each

    def candidate_types(self) -> list[str]:
        every = RESOURCE_TYPES if self.level == "system" else PATIENT_TYPES
        return sorted(self.types or every)

    def filters(self) -> dict[str, list[SearchQuery]]:
        """The `_typeFilter` queries by type (several for one type: any may match)."""
        parsed: dict[str, list[SearchQuery]] = {}
        for text in self.type_filters:
            resource_type, _, query = text.partition("?")
            pairs = parse_qsl(query, keep_blank_values=True)
            parsed.setdefault(resource_type, []).append(
                parse_query(resource_type, pairs, strict=True)
            )
        return parsed

    def to_json(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "group": self.group_id,
            "types": list(self.types),
            "since": instant(self.since) if self.since else None,
            "typeFilters": list(self.type_filters),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExportRequest:
        since = data.get("since")
        return cls(
            data["level"],
            data.get("group"),
            tuple(data.get("types") or ()),
            datetime.fromisoformat(since.replace("Z", "+00:00")) if since else None,
            tuple(data.get("typeFilters") or ()),
        )


def _split(values: list[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _types(values: list[str], level: Level) -> tuple[str, ...]:
    types = tuple(dict.fromkeys(_split(values)))
    for name in types:
        if name not in RESOURCE_TYPES:
            raise BadRequest(f"_type: {name!r} is not a resource type this server holds")
        if level != "system" and name not in PATIENT_TYPES:
            raise BadRequest(f"_type: {name} is not in a patient's record (Patient compartment)")
    return types


def _since(values: list[str]) -> datetime | None:
    if not values:
        return None
    raw = values[-1]
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        value = None
    if value is None or value.tzinfo is None or "T" not in raw:
        raise BadRequest(f"_since must be an instant such as 2026-01-31T09:00:00Z, not {raw!r}")
    return value


def _type_filters(values: list[str], types: tuple[str, ...], level: Level) -> tuple[str, ...]:
    filters = [q.strip() for value in values for q in _NEXT_QUERY.split(value) if q.strip()]
    for text in filters:
        resource_type, mark, query = text.partition("?")
        if not mark or resource_type not in RESOURCE_TYPES:
            raise BadRequest(f"_typeFilter {text!r} is not a search like Observation?code=...")
        if types and resource_type not in types:
            raise BadRequest(f"_typeFilter {text!r} is for a type that _type leaves out")
        if level != "system" and resource_type not in PATIENT_TYPES:
            raise BadRequest(f"_typeFilter {text!r}: {resource_type} is not in a patient's record")
        pairs = parse_qsl(query, keep_blank_values=True)
        result = sorted({name for name, _ in pairs} & RESULT_PARAMETERS)
        if result:
            raise BadRequest(f"_typeFilter {text!r}: {result[0]} is not a filter")
        parse_query(resource_type, pairs, strict=True)  # unknown parameters are errors
    return tuple(filters)


def export_request(
    level: Level,
    params: Sequence[tuple[str, str]],
    *,
    group_id: str | None = None,
    lenient: bool = False,
) -> ExportRequest:
    """The kick-off's parameters, checked; an unsupported one is an error unless the client
    asked for lenient handling (Bulk Data "Query Parameters")."""
    given: dict[str, list[str]] = {}
    for name, value in params:
        given.setdefault(name, []).append(value)
    formats = given.pop("_outputFormat", [])
    if any(f not in OUTPUT_FORMATS for f in formats):
        raise BadRequest(f"_outputFormat must be {NDJSON}, not {formats[-1]!r}")
    types = _types(given.pop("_type", []), level)
    since = _since(given.pop("_since", []))
    filters = _type_filters(given.pop("_typeFilter", []), types, level)
    if given and not lenient:
        name = sorted(given)[0]
        raise BadRequest(
            f"the export parameter {name!r} is not supported"
            " (send Prefer: handling=lenient to have unsupported parameters ignored)"
        )
    return ExportRequest(level, group_id, types, since, filters)


def group_members(tx: SqlReadTransaction | Any, group_id: str) -> list[str]:
    """Ids of the patients a Group holds (Group.member.entity), leaving out inactive ones."""
    stored = tx.current("Group", group_id)
    if stored is None or stored.deleted or stored.content is None:
        raise NotFound(f"Group/{group_id} is not known")
    body = orjson.loads(stored.content)
    members = []
    for member in body.get("member") or ():
        literal = parse_relative(str((member.get("entity") or {}).get("reference", "")))
        if literal and literal.resource_type == "Patient" and member.get("inactive") is not True:
            members.append(literal.id)
    return members


@dataclass(frozen=True, slots=True)
class Output:
    type: str
    file: str  # name within the export directory
    count: int
    sha256: str


@dataclass(slots=True)
class ExportResult:
    transaction_time: datetime
    outputs: list[Output] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(o.count for o in self.outputs)


def run_export(
    store: SqlStore,
    request: ExportRequest,
    directory: Path,
    types: Sequence[str],
    *,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] = lambda: False,
    batch: int = BATCH,
) -> ExportResult:
    """Write `<Type>.ndjson` in `directory` for each of `types` that has matching resources."""
    directory.mkdir(parents=True, exist_ok=True)
    filters = request.filters()
    with sql.snapshot(store.engine) as conn:
        result = ExportResult(store.clock())
        compiler = Compiler(result.transaction_time, conn.dialect.name)
        patients = None
        if request.level == "patient":
            patients = sql.live_patient_ids()
        elif request.level == "group":
            assert request.group_id is not None
            members = group_members(SqlReadTransaction(conn), request.group_id)
            patients = sql.member_ids(conn.dialect.name, members)
        written = 0
        for done, resource_type in enumerate(types):
            if progress:
                progress(resource_type, done, len(types), written)
            where = sql.export_where(
                compiler,
                resource_type,
                since=request.since,
                filters=filters.get(resource_type, ()),
                patients=patients,
            )
            writer: Writer | None = None
            try:
                for rows in sql.contents(conn, resource_type, where, batch):
                    if writer is None:
                        writer = Writer(directory / f"{resource_type}.ndjson")
                    writer.write([content for _, content in rows])
                    written += len(rows)
                    if cancelled():
                        raise Cancelled()
                    if progress:
                        progress(resource_type, done, len(types), written)
            except BaseException:
                if writer is not None:
                    writer.discard()
                raise
            if writer is not None:
                file = writer.path.name
                result.outputs.append(Output(resource_type, file, writer.count, writer.close()))
        if progress:
            progress("", len(types), len(types), written)
    return result
