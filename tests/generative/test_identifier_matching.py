"""Hypothesis: the store's identifier matching agrees with a plain-Python reading of the rules."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opengp.search.parse import TokenValue
from opengp.search.query import conditional_query_string
from opengp.store.sql import SqlStore

SYSTEMS = st.sampled_from(["", "s", "t"])
VALUES = st.sampled_from(["1", "2", "x"])
IDENTIFIERS = st.lists(st.tuples(SYSTEMS, VALUES), max_size=3)
TOKENS = st.tuples(
    st.sampled_from([None, "", "s", "t"]), st.sampled_from([None, "1", "2", "x"])
).filter(lambda t: (t != ("", None) and t[1] is not None) or t[0])


def _query(token: tuple[str | None, str | None]) -> str:
    system, code = token
    return f"identifier={code}" if system is None else f"identifier={system}|{code or ''}"


def _matches(identifiers: list[tuple[str, str]], token: TokenValue) -> bool:
    return any(
        (token.system is None or s == token.system) and (token.code is None or v == token.code)
        for s, v in identifiers
    )


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(patients=st.lists(IDENTIFIERS, min_size=1, max_size=6), token=TOKENS)
def test_store_matches_the_rules(
    store: SqlStore, patients: list[list[tuple[str, str]]], token: Any
) -> None:
    criteria = conditional_query_string("Patient", _query(token))
    value = criteria.clauses[0].values[0]
    assert isinstance(value, TokenValue)
    expected = sorted(f"g{n}" for n, ids in enumerate(patients) if _matches(ids, value))
    found: list[str] = []
    try:
        with store.writing() as tx:
            for n, identifiers in enumerate(patients):
                entries = [{"system": s, "value": v} if s else {"value": v} for s, v in identifiers]
                tx.save(
                    "Patient",
                    f"g{n}",
                    {"resourceType": "Patient", "identifier": entries},
                    method="POST",
                    previous=None,
                )
            found = tx.find(criteria, 100)
            raise _RollBack  # leave the database empty for the next example
    except _RollBack:
        pass
    assert found == expected


class _RollBack(Exception):
    pass
