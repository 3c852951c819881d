"""Searches as the FHIR API receives them: parsed against the registry.

The one entry point for type-level, system-level and conditional searches, so every path
(search, conditional create/update/patch/delete, conditional references in transactions)
understands the same parameters in the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qsl

from opengp.fhir.errors import BadRequest
from opengp.search import registry
from opengp.search.definitions.r4 import SEARCH_PARAMETERS
from opengp.search.model import SearchParam
from opengp.search.parse import SearchQuery, parse_search

DEFAULT_COUNT = 50
MAX_COUNT = 1000


def _lookup(resource_type: str, code: str) -> SearchParam | None:
    if resource_type == "Resource":  # a system-level search: the common parameters
        for base in ("Resource", "DomainResource"):
            for row in SEARCH_PARAMETERS[base]:
                if row[0] == code:
                    return registry.param("Patient", code)
        return None
    return registry.param(resource_type, code)


def _is_resource_type(name: str) -> bool:
    return name in registry.resource_types()


def parse_query(
    resource_type: str | None, pairs: Sequence[tuple[str, str]], *, strict: bool
) -> SearchQuery:
    """A search request; unknown or malformed parameters raise (strict) or are reported in
    `SearchQuery.problems` (lenient, http://hl7.org/fhir/R4/search.html#errors)."""
    return parse_search(
        resource_type,
        pairs,
        _lookup,
        _is_resource_type,
        strict=strict,
        default_count=DEFAULT_COUNT,
        max_count=MAX_COUNT,
    )


def conditional_query(resource_type: str, pairs: Sequence[tuple[str, str]]) -> SearchQuery:
    """The criteria of a conditional interaction: always strict (a parameter silently dropped
    would widen what a conditional update or delete touches), and never empty."""
    query = parse_query(resource_type, pairs, strict=True)
    if not (query.clauses or query.has):
        raise BadRequest("conditional interactions need search criteria")
    return query


def conditional_query_string(resource_type: str, text: str) -> SearchQuery:
    """Criteria given as a query string (If-None-Exist, a conditional reference)."""
    return conditional_query(resource_type, parse_qsl(text.lstrip("?"), keep_blank_values=True))
