"""Hypothesis: the reference meaning of search prefixes (opengp.search.prefixes) keeps
the relations http://hl7.org/fhir/R4/search.html#prefix states between them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opengp.search.prefixes import PREFIXES, Prefix, approximate, matches_range
from opengp.search.ranges import date_range, number_range

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)

# Numbers as a search would write them: a few significant figures, any scale.
NUMBERS = st.builds(
    lambda digits, exponent: Decimal(digits).scaleb(exponent),
    st.integers(-10_000, 10_000),
    st.integers(-4, 3),
)
NUMBER_RANGES = NUMBERS.map(lambda x: number_range(x)[1:])

# Dates at every precision, as a search or a resource would write them.
INSTANTS = st.datetimes(datetime(1900, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC))
PRECISIONS = st.sampled_from(
    [
        "%Y",
        "%Y-%m",
        "%Y-%m-%d",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%SZ",
        "%Y-%m-%dT%H:%M:%S.%f+01:00",
    ]
)
DATE_RANGES = st.builds(
    lambda moment, form: date_range(moment.strftime(form)), INSTANTS, PRECISIONS
)
# A stored Period may be open at either end, or any span.
PERIODS = st.builds(
    lambda start, span: (start, start + span),
    INSTANTS,
    st.timedeltas(timedelta(microseconds=1), timedelta(days=4000)),
)

RANGE_PAIRS = st.one_of(
    st.tuples(NUMBER_RANGES, NUMBER_RANGES),
    st.tuples(DATE_RANGES, st.one_of(DATE_RANGES, PERIODS)),
)


def _all(search: tuple[Any, Any], target: tuple[Any, Any]) -> dict[Prefix, bool]:
    return {prefix: matches_range(prefix, *search, *target, now=NOW) for prefix in PREFIXES}


@given(RANGE_PAIRS)
def test_prefixes_are_related_as_r4_says(pair: tuple[tuple[Any, Any], ...]) -> None:
    search, target = pair
    m = _all(search, target)
    assert m["ge"] == (m["gt"] or m["eq"])
    assert m["le"] == (m["lt"] or m["eq"])
    assert m["ne"] == (not m["eq"])
    assert not m["sa"] or m["gt"]
    assert not m["eb"] or m["lt"]
    assert not (m["sa"] and m["eb"])
    assert not (m["eq"] and (m["sa"] or m["eb"]))
    assert not m["eq"] or m["ap"]  # widening only ever adds matches
    # every target is below, above, inside or overlapping the edges of the search range
    assert m["eq"] or m["gt"] or m["lt"]


@given(st.one_of(NUMBER_RANGES, DATE_RANGES))
def test_a_value_matches_itself(bounds: tuple[Any, Any]) -> None:
    m = _all(bounds, bounds)
    assert {prefix for prefix, hit in m.items() if hit} == {"eq", "ge", "le", "ap"}


@given(NUMBERS, NUMBERS)
def test_numbers_compare_by_value_when_far_apart(a: Decimal, b: Decimal) -> None:
    search, target = number_range(a)[1:], number_range(b)[1:]
    m = _all(search, target)
    if target[0] >= search[1]:
        assert m["gt"] and m["sa"] and not m["lt"]
    if target[1] <= search[0]:
        assert m["lt"] and m["eb"] and not m["gt"]


@given(NUMBERS)
def test_number_ap_widens_by_a_tenth_of_the_value(x: Decimal) -> None:
    _, low, high = number_range(x)
    wide_low, wide_high = approximate(low, high)
    assert low - wide_low == wide_high - high == abs(x) / 10


@given(DATE_RANGES, INSTANTS)
def test_date_ap_widens_by_a_tenth_of_the_gap_to_now(
    bounds: tuple[datetime, datetime], now: datetime
) -> None:
    low, high = bounds
    wide_low, wide_high = approximate(low, high, now)
    assert wide_low <= low < high <= wide_high
    if low <= now < high:
        assert (wide_low, wide_high) == (low, high)
    gap = max(low - now, now - high, timedelta(0))
    assert low - wide_low <= gap / 10 + timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("prefix", "search", "target", "expected"),
    [
        # http://hl7.org/fhir/R4/search.html#prefix examples, read with half-open ranges
        ("eq", "100", "100", True),
        ("eq", "100", "100.2", True),  # [100.15, 100.25) lies in [99.5, 100.5)
        ("eq", "100", "100.5", False),
        ("gt", "100", "100.5", True),
        ("lt", "100", "99.4", True),
        ("ap", "100", "109", True),  # within 10%
        ("ap", "100", "111", False),
        ("sa", "100", "100.5", False),  # [100.45, 100.55) starts inside [99.5, 100.5)
        ("sa", "100", "101", True),
        ("eb", "100", "99.49", True),
        ("eq", "1e2", "140", True),  # 1e2 is [50, 150)
        ("ne", "1e2", "160", True),
    ],
)
def test_number_examples(prefix: Prefix, search: str, target: str, expected: bool) -> None:
    s, t = number_range(search)[1:], number_range(target)[1:]
    assert matches_range(prefix, *s, *t) is expected


@pytest.mark.parametrize(
    ("prefix", "search", "target", "expected"),
    [
        ("eq", "2013-01", "2013-01-14", True),
        ("eq", "2013-01-14", "2013-01", False),  # the target is wider than the search
        ("ge", "2013-01-14", "2013-01", True),  # it overlaps the range above
        ("gt", "2013", "2014-01-01T00:00:00Z", True),
        ("lt", "2013", "2012-12-31T23:59:59Z", True),
        ("sa", "2013", "2013-12-31", False),
        ("eb", "2013", "2012-12-31", True),
        ("ap", "2025-05", "2025-06-01", True),  # 13 hours from now: 1.3 hours wider
        ("ap", "2015", "2016-06-01", True),  # 9.4 years from now: 11 months wider
        ("ap", "2024", "2023-12-01", False),  # 5 months from now: 2 weeks wider
        ("ap", "2024", "2023-12-20", True),
    ],
)
def test_date_examples(prefix: Prefix, search: str, target: str, expected: bool) -> None:
    s, t = date_range(search), date_range(target)
    assert matches_range(prefix, *s, *t, now=NOW) is expected


def test_ap_on_dates_needs_now() -> None:
    with pytest.raises(ValueError, match="current time"):
        matches_range("ap", *date_range("2020"), *date_range("2020"))
