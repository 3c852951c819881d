"""Checking one NDJSON line of an import: is it a valid resource, and what does it refer to.

Pure (no store), so the lines of a large import can be checked in parallel processes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import IO, Any, NamedTuple

from opengp.fhir import jsonio
from opengp.fhir.definitions import RESOURCE_TYPES
from opengp.fhir.errors import InvalidResource
from opengp.fhir.references import is_valid_id, parse_relative, reference_strings
from opengp.fhir.validation import validate_resource
from opengp.services.bulk.ndjson import MAX_LINE_BYTES, lines

CHUNK_LINES = 500
MAX_ISSUES_SHOWN = 3


class Checked(NamedTuple):
    """What checking a line found: the resource's type and id when it has them, the
    resources it refers to, and the problem (None: a valid resource). A tuple: the cheapest
    to send back from the checking processes."""

    line: int
    digest: str  # of the line's bytes, to notice a file that changes before it is loaded
    resource_type: str | None = None
    id: str | None = None
    targets: tuple[tuple[str, str], ...] = ()
    problem: str | None = None
    code: str = "invalid"
    expression: tuple[str, ...] = ()


def reference_targets(body: dict[str, object]) -> tuple[tuple[str, str], ...]:
    """(type, id) of every relative literal reference (`Type/id[/_history/v]`): the ones that
    must resolve on this server. Contained (#), absolute and logical (urn:) ones need not."""
    found: dict[tuple[str, str], None] = {}
    for reference in reference_strings(body):
        literal = parse_relative(reference)
        if literal is not None:
            found[(literal.resource_type, literal.id)] = None
    return tuple(found)


def line_digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=12).hexdigest()


def check_line(number: int, data: bytes | None) -> tuple[Checked, dict[str, Any] | None] | None:
    """Check one line (`data` None: longer than a line may be): what was found, and the
    resource when it is valid; None for a blank line."""
    if data is None:
        return Checked(number, "", problem=f"the line is longer than {MAX_LINE_BYTES} bytes"), None
    if not data.strip():
        return None
    digest = line_digest(data)
    try:
        body = jsonio.loads(data)
    except jsonio.JsonError as exc:
        message = f"not valid JSON (a corrupt or truncated line): {exc}"
        return Checked(number, digest, problem=message), None
    if not isinstance(body, dict):
        message = "not a JSON object: each line must hold one resource"
        return Checked(number, digest, problem=message), None
    resource_type, id = body.get("resourceType"), body.get("id")
    if not isinstance(resource_type, str):
        return Checked(number, digest, problem="no resourceType: not a FHIR resource"), None
    if resource_type not in RESOURCE_TYPES:
        message = f"{resource_type!r} is not a resource type OpenGP holds"
        return Checked(number, digest, problem=message), None
    if not isinstance(id, str):
        message = f"the {resource_type} has no id: an import keeps ids, so each needs one"
        where = (resource_type,)
        return Checked(number, digest, resource_type, problem=message, expression=where), None
    if not is_valid_id(id):
        message = f"{id[:70]!r} is not a valid FHIR id"
        where = (f"{resource_type}.id",)
        return Checked(number, digest, resource_type, problem=message, expression=where), None
    try:
        validate_resource(body)
    except InvalidResource as invalid:
        issues = invalid.issues
        shown = "; ".join(i.diagnostics for i in issues[:MAX_ISSUES_SHOWN])
        more = len(issues) - MAX_ISSUES_SHOWN
        shown += f" (and {more} more)" if more > 0 else ""
        at = tuple(e for i in issues for e in i.expression)
        message = f"invalid {resource_type}/{id}: {shown}"
        return Checked(number, digest, resource_type, id, problem=message, expression=at), None
    return Checked(number, digest, resource_type, id, reference_targets(body)), body


def chunks(stream: IO[bytes]) -> Iterator[list[tuple[int, bytes | None]]]:
    """The numbered lines of an NDJSON stream (data None: too long), `CHUNK_LINES` at a
    time: what one checking process is given at once."""
    chunk: list[tuple[int, bytes | None]] = []
    for line in lines(stream):
        chunk.append((line.number, None if line.too_long else line.data))
        if len(chunk) >= CHUNK_LINES:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
