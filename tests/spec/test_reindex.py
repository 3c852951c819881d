"""Re-indexing: rows rebuilt when the search definitions change; readiness says when stale."""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import delete, func, select, update

from opengp.search.query import conditional_query_string
from opengp.store.migrate import schema_status
from opengp.store.sql import SqlStore
from opengp.store.sql.reindex import DEFINITIONS_FINGERPRINT, ensure_current, is_current
from opengp.store.sql.search_tables import SEARCH_TABLES, search_state, search_token


def _patients(store: SqlStore, n: int) -> None:
    with store.writing() as tx:
        for i in range(n):
            body = {
                "resourceType": "Patient",
                "name": [{"family": f"Family{i}"}],
                "identifier": [{"system": "s", "value": str(i)}],
            }
            tx.save("Patient", f"p{i}", body, method="POST", previous=None)


def _found(store: SqlStore, query: str) -> list[str]:
    with store.reading() as tx:
        return tx.find(conditional_query_string("Patient", query), 10)


def test_changed_definitions_make_the_index_stale_until_rebuilt(store: SqlStore) -> None:
    _patients(store, 3)
    with store.engine.begin() as conn:
        for table in SEARCH_TABLES:
            conn.execute(delete(table))  # as if built by other definitions...
        conn.execute(update(search_state).values(value="older definitions"))
    assert _found(store, "family=family1") == []
    ready, why = schema_status(store.engine)
    assert not ready and "search index" in why
    with store.reading() as tx:
        assert not is_current(tx.conn)

    assert ensure_current(store) == 3
    assert _found(store, "family=family1") == ["p1"]
    assert _found(store, "identifier=s|2") == ["p2"]
    assert schema_status(store.engine)[0]
    with store.reading() as tx:
        marker = tx.conn.scalar(select(search_state.c.value))
        rows = tx.conn.scalar(select(func.count()).select_from(search_token))
    assert marker == DEFINITIONS_FINGERPRINT
    assert ensure_current(store) == 0  # nothing to do when current
    with store.reading() as tx:
        assert tx.conn.scalar(select(func.count()).select_from(search_token)) == rows


def test_reindex_command(store: SqlStore, database_url: str) -> None:
    _patients(store, 2)
    with store.engine.begin() as conn:
        conn.execute(delete(search_token))
    done = subprocess.run(
        [sys.executable, "-m", "opengp", "db", "reindex", "--database", database_url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "re-indexed 2 resources" in done.stdout
    assert _found(store, "identifier=s|1") == ["p1"]
