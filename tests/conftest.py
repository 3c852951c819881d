"""Shared fixtures: every store test runs on SQLite and on PostgreSQL.

PostgreSQL: one fresh database per test session on $OPENGP_TEST_POSTGRES_URL, dropped at the
end; each test starts from empty tables. Without a reachable server those tests skip loudly,
unless OPENGP_REQUIRE_POSTGRES=1, when they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, make_url, text

from opengp.store.migrate import upgrade
from opengp.store.sql import SqlStore
from opengp.store.sql.dialects import make_engine
from opengp.store.sql.tables import metadata

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


def _server_url() -> str:
    return os.environ.get("OPENGP_TEST_POSTGRES_URL", DEFAULT_POSTGRES)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a fresh, migrated PostgreSQL database for this test session."""
    server = _server_url()
    name = f"opengp_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = make_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        message = f"PostgreSQL at {server} is not reachable ({type(exc).__name__}: {exc})"
        if os.environ.get("OPENGP_REQUIRE_POSTGRES") == "1":
            pytest.fail(message + " and OPENGP_REQUIRE_POSTGRES=1")
        pytest.skip(message + ": SKIPPING PostgreSQL tests")
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _empty(engine: Engine) -> None:
    # search_state says which definitions built the (now empty) index: still true.
    tables = ", ".join(t.name for t in metadata.sorted_tables if t.name != "search_state")
    with engine.begin() as conn:
        # The audit trail refuses TRUNCATE (an append-only trigger): switch its triggers off
        # for this transaction only. ALTER TABLE is transactional, so no other connection
        # ever sees the trail unguarded, and it needs only ownership of the table, where
        # session_replication_role = replica would need a superuser (or a grant on PG 15+)
        # and would silence every trigger, not just these.
        conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY"))
        conn.execute(text("ALTER TABLE audit_event ENABLE TRIGGER USER"))


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database of each kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'opengp.db'}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        return url
    url: str = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    _empty(engine)
    engine.dispose()
    return url


@pytest.fixture
def store(database_url: str) -> Iterator[SqlStore]:
    the_store = SqlStore.from_url(database_url)
    yield the_store
    the_store.dispose()
