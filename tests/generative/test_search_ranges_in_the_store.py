"""Hypothesis: date and quantity prefixes in the database agree with the reference predicate
(opengp.search.prefixes.matches_range) on both databases, at every precision."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opengp.search.parse import DateValue, QuantityValue
from opengp.search.prefixes import PREFIXES, matches_range
from opengp.search.query import parse_query
from opengp.search.ranges import date_range, number_range
from opengp.store.sql import SqlStore

EXAMPLES = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# Dates of every precision around one day, so that ranges nest, touch and overlap.
DATES = st.sampled_from(
    [
        "2024",
        "2024-03",
        "2024-03-31",
        "2024-04",
        "2024-03-31T10:00:00Z",
        "2024-03-31T23:30:00+01:00",
        "2024-03-31T22:59:59.5Z",
        "2024-04-01T00:00:00Z",
        "2023-12-31",
    ]
)
NUMBERS = st.sampled_from(["100", "100.0", "99.5", "100.5", "1e2", "99.96", "101", "0.5", "150"])


class _RollBack(Exception):
    pass


def _found(store: SqlStore, bodies: list[dict[str, Any]], query_text: str) -> list[str]:
    query = parse_query("Observation", [tuple(query_text.split("=", 1))], strict=True)  # type: ignore[list-item]
    found: list[str] = []
    try:
        with store.writing() as tx:
            for n, body in enumerate(bodies):
                tx.save("Observation", f"o{n}", body, method="POST", previous=None)
            found = sorted(tx.find(query, 100))
            raise _RollBack  # leave the database empty for the next example
    except _RollBack:
        pass
    return found


def _observation(**value: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "test"},
        **value,
    }


@EXAMPLES
@given(stored=st.lists(DATES, min_size=1, max_size=5), prefix=st.sampled_from(PREFIXES), at=DATES)
def test_date_prefixes_match_the_reference(
    store: SqlStore, stored: list[str], prefix: str, at: str
) -> None:
    bodies = [_observation(effectiveDateTime=d) for d in stored]
    search = parse_query("Observation", [("date", f"{prefix}{at}")], strict=True)
    value = search.clauses[0].values[0]
    assert isinstance(value, DateValue)
    now = datetime.now(UTC)
    expected = sorted(
        f"o{n}"
        for n, d in enumerate(stored)
        if matches_range(value.prefix, value.low, value.high, *date_range(d), now=now)
    )
    assert _found(store, bodies, f"date={prefix}{at}") == expected


@EXAMPLES
@given(
    stored=st.lists(NUMBERS, min_size=1, max_size=5),
    prefix=st.sampled_from(PREFIXES),
    at=NUMBERS,
)
def test_quantity_prefixes_match_the_reference(
    store: SqlStore, stored: list[str], prefix: str, at: str
) -> None:
    bodies = [
        _observation(valueQuantity={"value": Decimal(v), "unit": "mg", "code": "mg"})
        for v in stored
    ]
    search = parse_query("Observation", [("value-quantity", f"{prefix}{at}")], strict=True)
    value = search.clauses[0].values[0]
    assert isinstance(value, QuantityValue)
    expected = sorted(
        f"o{n}"
        for n, v in enumerate(stored)
        if matches_range(value.prefix, value.low, value.high, *number_range(Decimal(v))[1:])
    )
    assert _found(store, bodies, f"value-quantity={prefix}{at}") == expected
