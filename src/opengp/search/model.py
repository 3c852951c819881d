"""The shapes search is built from: a parameter's definition and the index rows of a resource.

One row type per parameter kind, matching one index table each (store/sql/search_tables.py).
Rows are named tuples, their fields in their table's column order: a resource has tens of
rows, made, de-duplicated (hashed) and written on every write, which tuples make cheap.
Ranges are half-open [low, high) (see ranges.py). Text kept for matching is normalised by
`normalise` (case, accents and spacing ignored), as R4 string search requires.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal, NamedTuple

ParamType = Literal[
    "number", "date", "string", "token", "reference", "composite", "quantity", "uri", "special"
]


@dataclass(frozen=True, slots=True)
class Component:
    """One part of a composite parameter: the parameter it reuses and the FHIRPath
    expression, relative to each item the composite's own expression selects."""

    code: str
    type: ParamType
    expression: str


@dataclass(frozen=True, slots=True)
class SearchParam:
    resource_type: str  # the type searched, e.g. Observation ("Resource" for _id and the like)
    code: str  # the name in a query, e.g. "patient"
    type: ParamType
    expression: str | None  # FHIRPath restricted to resource_type; None: not indexed
    targets: tuple[str, ...] = ()  # reference parameters: the resource types referred to
    components: tuple[Component, ...] = ()  # composite parameters
    url: str = ""  # the canonical URL of the definition
    modifiers: tuple[str, ...] = field(default=())  # declared modifiers (informative)


class StringRow(NamedTuple):
    param: str
    value: str  # normalised (see normalise): what plain, :contains and :text match
    exact: str  # as written: what :exact matches


class TokenRow(NamedTuple):
    param: str
    system: str | None  # None: the value has no system
    code: str | None  # None: a concept with text only
    text: str | None  # normalised display / CodeableConcept.text / Identifier.type.text


class DateRow(NamedTuple):
    param: str
    low: datetime  # UTC, inclusive
    high: datetime  # UTC, exclusive


class NumberRow(NamedTuple):
    param: str
    value: Decimal
    low: Decimal
    high: Decimal


class QuantityRow(NamedTuple):
    param: str
    value: Decimal
    low: Decimal
    high: Decimal
    system: str | None
    code: str | None
    unit: str | None  # Quantity.unit, normalised


class ReferenceRow(NamedTuple):
    param: str
    target_type: str | None  # a local (relative) reference: its type and id
    target_id: str | None
    url: str | None  # an absolute or canonical reference, without |version
    version: str | None = None  # a canonical's |version


class UriRow(NamedTuple):
    param: str
    uri: str


IndexRow = StringRow | TokenRow | DateRow | NumberRow | QuantityRow | ReferenceRow | UriRow


def normalise(text: str) -> str:
    """Case-, accent- and space-insensitive form of text (R4 string search)."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())
