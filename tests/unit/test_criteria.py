"""Conditional search criteria parsing (http://hl7.org/fhir/R4/search.html#token)."""

from __future__ import annotations

import pytest

from opengp.fhir.errors import BadRequest
from opengp.search.criteria import Criteria, TokenValue, parse_criteria, parse_query_string


def test_token_forms() -> None:
    criteria = parse_query_string("identifier=sys|123&identifier=|456,789&identifier=sys|")
    assert criteria.identifiers == (
        (TokenValue("sys", "123"),),
        (TokenValue("", "456"), TokenValue(None, "789")),
        (TokenValue("sys", None),),
    )


def test_ids_or_and_escaped_commas() -> None:
    assert parse_criteria([("_id", "a,b"), ("_count", "5")]) == Criteria(ids=(("a", "b"),))
    assert parse_query_string(r"identifier=x|a\,b").identifiers == ((TokenValue("x", "a,b"),),)


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("name=Smith", "name"),
        ("_id=bad id!", "_id"),
        ("identifier=", "identifier"),
        ("identifier=|", "identifier"),
    ],
)
def test_bad_criteria_name_the_parameter(query: str, named: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_query_string(query)
    assert caught.value.issues[0].expression == (named,)


def test_empty_criteria_are_rejected() -> None:
    with pytest.raises(BadRequest):
        parse_query_string("_count=1")
