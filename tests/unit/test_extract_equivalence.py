"""The shortcuts indexing takes give what the plain readings give (extract.py, ranges.py,
fulltext.py, search_tables.RowWriter): a time to the second read by datetime, numbers and
references memoised, parameters on meta and composites skipped by the names present."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from opengp.search import fulltext
from opengp.search.extract import index_rows
from opengp.search.model import QuantityRow, ReferenceRow, TokenRow, UriRow
from opengp.search.ranges import _DATE, RangeError, date_range
from opengp.store.sql.search_tables import RowWriter, sqlite_time

# --- dates ----------------------------------------------------------------------------------


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "2023-05-30T17:20:00+01:00",
            (
                datetime(2023, 5, 30, 16, 20, tzinfo=UTC),
                datetime(2023, 5, 30, 16, 20, 1, tzinfo=UTC),
            ),
        ),
        (
            "2023-05-30T17:20:00Z",
            (
                datetime(2023, 5, 30, 17, 20, tzinfo=UTC),
                datetime(2023, 5, 30, 17, 20, 1, tzinfo=UTC),
            ),
        ),
        (
            "0002-01-01T00:00:00+14:00",
            (utc(1, 12, 31, 10), utc(1, 12, 31, 10, 0, 1)),
        ),
    ],
)
def test_a_time_to_the_second_is_its_second_in_utc(
    text: str, expected: tuple[datetime, datetime]
) -> None:
    assert date_range(text) == expected
    assert all(d.tzinfo is UTC for d in date_range(text))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2023-02-30T10:00:00Z", "day is out of range for month"),
        ("2023-05-30T24:00:00Z", "hour must be in 0..23"),
        ("2023-05-30T23:60:00Z", "minute must be in 0..59"),
        ("2023-05-30T23:00:60Z", "second must be in 0..59"),
        ("2023-05-30T10:00:00+15:00", "time zone '+15:00' is out of range"),
        ("2023-05-30T10:00:00+01:60", "time zone '+01:60' is out of range"),
        ("0000-01-01T00:00:00Z", "year 0 is out of range"),
    ],
)
def test_an_invalid_time_to_the_second_is_refused_as_any_other(text: str, reason: str) -> None:
    with pytest.raises(RangeError, match=re.escape(reason)):
        date_range(text)


def test_times_to_the_second_near_the_ends_are_clamped() -> None:
    low, high = date_range("0001-01-01T00:00:00Z")  # its second ends before MIN_INSTANT
    assert (low, high) == (utc(1, 1, 2), utc(1, 1, 1, 0, 0, 1))
    low, high = date_range("9999-12-31T12:00:00+01:00")
    assert high == datetime(9999, 12, 30, tzinfo=UTC)
    with pytest.raises(OverflowError):  # as ever: past the last instant UTC can hold
        date_range("9999-12-31T23:00:00-05:00")


def test_every_precision_and_zone_agrees_with_the_pattern() -> None:
    """Times to the second (the fast path) agree with the same instant written with a
    fraction of .000 (read by the pattern), but for their one-second precision."""
    days = ["1970-01-01", "2024-02-29", "2024-03-31", "2024-10-27", "9998-12-31"]
    times = ["00:00:00", "01:30:00", "23:59:59"]
    zones = ["Z", "+00:00", "-00:00", "+05:30", "-14:59", "+14:00"]
    for day, time, zone in itertools.product(days, times, zones):
        text = f"{day}T{time}{zone}"
        assert _DATE.fullmatch(text)
        low, high = date_range(text)
        fine_low, fine_high = date_range(f"{day}T{time}.000{zone}")
        assert (low, high - low) == (fine_low, (fine_high - fine_low) * 1000), text


# --- numbers, references, rows --------------------------------------------------------------


def _observation(value: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "o",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
        "valueQuantity": {"value": value, "system": "http://unitsofmeasure.org", "code": "cm"},
    }


def _quantities(resource: dict[str, Any]) -> list[QuantityRow]:
    return [r for r in index_rows(resource) if isinstance(r, QuantityRow)]


def test_equal_numbers_of_other_precision_keep_their_own_ranges() -> None:
    """Number ranges are memoised by text: 1.0 and 1.00 are equal, but not in range."""
    first = _quantities(_observation(Decimal("1.0")))
    second = _quantities(_observation(Decimal("1.00")))
    third = _quantities(_observation(1))
    assert {(r.low, r.high) for r in first} == {(Decimal("0.95"), Decimal("1.05"))}
    assert {(r.low, r.high) for r in second} == {(Decimal("0.995"), Decimal("1.005"))}
    assert {(r.low, r.high) for r in third} == {(Decimal("0.5"), Decimal("1.5"))}
    assert {str(r.value) for r in second} == {"1.00"}


def test_a_quantity_is_indexed_under_each_of_its_names_alike() -> None:
    rows = _quantities(_observation(170))
    assert {r.param for r in rows} == {
        "value-quantity",
        "combo-value-quantity",
        "code-value-quantity$http://loinc.org|8302-2",
        "code-value-quantity$*|8302-2",
        "combo-code-value-quantity$http://loinc.org|8302-2",
        "combo-code-value-quantity$*|8302-2",
    }
    assert len({r[1:] for r in rows}) == 1


def test_composites_of_components_take_their_rows_from_each_component() -> None:
    observation = _observation(120)
    observation["component"] = [
        {"code": {"coding": [{"code": "a"}]}, "valueQuantity": {"value": 1}},
        {"code": {"coding": [{"code": "b"}]}, "valueQuantity": {"value": 1}},
        {"code": {"coding": [{"code": "a"}]}, "valueQuantity": {"value": 1}},  # a repeat
    ]
    rows = [r.param for r in _quantities(observation)]
    assert rows.count("component-code-value-quantity$|a") == 1
    assert rows.count("component-code-value-quantity$*|b") == 1
    assert rows.count("combo-code-value-quantity$*|a") == 1
    assert "code-value-concept" not in {p.split("$")[0] for p in rows}


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        (None, set()),
        ({"versionId": "1"}, set()),
        ({"profile": ["http://x/p"]}, {UriRow("_profile", "http://x/p")}),
        ({"tag": [{"system": "urn:t", "code": "x"}]}, {TokenRow("_tag", "urn:t", "x", None)}),
        ({"source": "urn:s"}, {UriRow("_source", "urn:s")}),
        # Not an object (no valid resource's): read as it is, every parameter on meta tried.
        ([{"profile": ["http://x/p"]}], {UriRow("_profile", "http://x/p")}),
    ],
)
def test_the_parameters_on_meta_go_by_what_meta_holds(meta: Any, expected: set[Any]) -> None:
    patient: dict[str, Any] = {"resourceType": "Patient", "id": "p"}
    if meta is not None:
        patient["meta"] = meta
    on_meta = {"_profile", "_tag", "_security", "_source"}
    assert {r for r in index_rows(patient) if r.param in on_meta} == expected


def test_references_recurring_give_the_same_rows() -> None:
    for _ in range(2):
        rows = index_rows(_observation(1) | {"subject": {"reference": "Patient/1/_history/2"}})
        assert ReferenceRow("patient", "Patient", "1", None) in rows
        assert ReferenceRow("subject", "Patient", "1", None) in rows


# --- writing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1, 1, 2, tzinfo=UTC),
        datetime(999, 5, 6, 7, 8, 9, 10, tzinfo=UTC),
        datetime(1000, 1, 1, tzinfo=UTC),
        datetime(2024, 3, 1, 9, 30, 0, 5, tzinfo=UTC),
        datetime(9999, 12, 30, tzinfo=UTC),
    ],
)
def test_sqlite_times_are_as_strftime_writes_them(moment: datetime) -> None:
    assert sqlite_time(moment) == moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def _sqlite_rows(writer: RowWriter, table: str) -> list[list[Any]]:
    """A SQLite writer's rows of `table`, as the JSON it sends them in."""
    return orjson.loads(b"[" + writer.rows[table][:-1] + b"]")


def test_row_values_are_cut_and_converted_by_type() -> None:
    long = "x" * 300
    observation = _observation(Decimal("7.10")) | {"status": long}
    writer = RowWriter("sqlite")
    writer.add("Observation", "o", index_rows(observation))
    tokens = {row[2]: row for row in _sqlite_rows(writer, "search_token")}
    assert tokens["status"][4] == "x" * 255
    (value,) = {tuple(row[3:6]) for row in _sqlite_rows(writer, "search_quantity")}
    assert value == (7.1, 7.095, 7.105)
    # PostgreSQL's rows are the same values, encoded for binary COPY as they are gathered.
    pg = RowWriter("postgresql")
    pg.add("Observation", "o", index_rows(observation))
    for table in ("search_token", "search_quantity"):
        expected = RowWriter("postgresql")
        for row in _sqlite_rows(writer, table):
            expected.append(table, row)
        assert pg.rows[table] == expected.rows[table]


# --- full text -------------------------------------------------------------------------------


def test_content_is_every_string_in_order_but_identifiers_and_the_resources_meta() -> None:
    resource = {
        "resourceType": "Patient",
        "id": "p",
        "meta": {"source": "skipped"},
        "text": {"status": "generated", "div": "<div>Hello  <b>there</b></div>"},
        "name": [{"family": "Smith", "given": ["Ann", " Jo  "]}],
        "contained": [{"resourceType": "Basic", "id": "b", "meta": {"source": "kept"}}],
        "managingOrganization": {"reference": "Organization/1", "display": "The Surgery"},
        "active": True,
        "multipleBirthInteger": 2,
    }
    assert fulltext.content(resource) == "Hello there generated Smith Ann Jo kept The Surgery"
