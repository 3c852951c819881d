"""Search criteria for conditional interactions and simple type searches.

Supports `_id` and `identifier` (token) for now (http://hl7.org/fhir/R4/search.html#token):
`identifier=system|value`, `identifier=|value` (no system), `identifier=value` (any system),
`identifier=system|` (any value in the system). Commas are OR, repetition is AND.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl

from opengp.fhir.errors import BadRequest
from opengp.fhir.references import is_valid_id

# Result-shaping parameters that select nothing (http://hl7.org/fhir/R4/search.html#return).
RESULT_PARAMETERS = frozenset({"_count", "_format", "_pretty", "_summary", "_elements", "_total"})
SUPPORTED_PARAMETERS = ("_id", "identifier")


@dataclass(frozen=True, slots=True)
class TokenValue:
    system: str | None  # None: any system; "": no system
    code: str | None  # None: any code in the system


@dataclass(frozen=True, slots=True)
class Criteria:
    # Each inner tuple is one parameter occurrence (OR of its values); the outer is AND.
    ids: tuple[tuple[str, ...], ...] = ()
    identifiers: tuple[tuple[TokenValue, ...], ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.ids and not self.identifiers


def parse_token(raw: str) -> TokenValue:
    if "|" not in raw:
        return TokenValue(None, raw)
    system, code = raw.split("|", 1)
    if not system and not code:
        raise BadRequest("token '|' has neither system nor code", expression=["identifier"])
    return TokenValue(system, code or None)


def _split_or(raw: str) -> list[str]:
    # A backslash escapes a comma inside a value (http://hl7.org/fhir/R4/search.html#escaping).
    parts, current, escaped = [], "", False
    for char in raw:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def parse_criteria(pairs: Sequence[tuple[str, str]]) -> Criteria:
    ids: list[tuple[str, ...]] = []
    identifiers: list[tuple[TokenValue, ...]] = []
    for name, raw in pairs:
        if name in RESULT_PARAMETERS:
            continue
        if any(ord(c) < 32 for c in raw):
            raise BadRequest(
                f"search parameter {name!r} contains control characters", expression=[name]
            )
        values = [v for v in _split_or(raw) if v]
        if not values:
            raise BadRequest(f"search parameter {name!r} has no value", expression=[name])
        if name == "_id":
            bad = [v for v in values if not is_valid_id(v)]
            if bad:
                raise BadRequest(f"_id {bad[0]!r} is not a valid FHIR id", expression=["_id"])
            ids.append(tuple(values))
        elif name == "identifier":
            identifiers.append(tuple(parse_token(v) for v in values))
        else:
            raise BadRequest(
                f"search parameter {name!r} is not supported here; supported: "
                + ", ".join(SUPPORTED_PARAMETERS),
                expression=[name],
            )
    return Criteria(tuple(ids), tuple(identifiers))


def parse_query_string(query: str) -> Criteria:
    """Criteria from a URL query string such as an If-None-Exist header value."""
    pairs = parse_qsl(query.lstrip("?"), keep_blank_values=True)
    criteria = parse_criteria(pairs)
    if criteria.is_empty:
        raise BadRequest("conditional criteria are empty")
    return criteria
