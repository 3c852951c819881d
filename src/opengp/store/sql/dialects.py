"""The few places SQLite and PostgreSQL differ: connection setup and serialising a step."""

from __future__ import annotations

import contextlib
import sqlite3
import zlib
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Insert, Table, create_engine, event, make_url, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL


def database_url(url: str) -> URL:
    """Parse a database URL, choosing psycopg 3 for PostgreSQL."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str, **kwargs: Any) -> Engine:
    parsed = database_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "postgresql":
        # No pre-ping: it costs a round trip per request. A connection broken by a database
        # restart is discarded by the pool when it fails (that one request answers 500).
        # Always a plan for the values at hand: psycopg prepares a statement run five times,
        # and PostgreSQL may then keep one generic plan for it, but how selective a search's
        # values are varies by orders of magnitude (one patient's observations or one code's
        # across the practice). A generic plan drove `Observation?patient=&code=&date=` from
        # the code at 1M resources: 147 ms per search, against 3.9 ms planned per search.
        options = f"-c plan_cache_mode=force_custom_plan {parsed.query.get('options', '')}"
        args = {"options": options.strip(), **kwargs.pop("connect_args", {})}
        return create_engine(
            parsed.difference_update_query(["options"]),
            pool_size=10,
            max_overflow=20,
            connect_args=args,
            **kwargs,
        )
    raise ValueError(
        f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql"
    )


def _sqlite_engine(url: URL, **kwargs: Any) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        # More connections than the 40 worker threads, so none waits for a connection.
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 40)
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is deferred only).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # "database is locked": a load into an empty database is running without the WAL
        # (`SqlStore.writing(bulk=True)`), and puts it back when it ends.
        with contextlib.suppress(sqlite3.OperationalError):
            cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit reaches the disk before it is acknowledged (a clinical record must
        # survive a crash of the process or of the machine).
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # Writers take the write lock up front (BEGIN IMMEDIATE): two writers can then never
        # deadlock upgrading read locks, and check-then-write steps are serialised.
        options = conn.get_execution_options()
        if options.get("opengp_autocommit"):
            return  # reads: no BEGIN, so each statement runs on its own (see AUTOCOMMIT)
        mode = "IMMEDIATE" if options.get("opengp_write") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


# Execution options that make a connection run each statement on its own. SQLite's must not
# use SQLAlchemy's AUTOCOMMIT level: resetting it would re-enable pysqlite's own BEGINs.
AUTOCOMMIT: dict[str, dict[str, Any]] = {
    "sqlite": {"opengp_autocommit": True},
    "postgresql": {"isolation_level": "AUTOCOMMIT"},
}


def insert_or_ignore(table: Table, dialect: str) -> Insert:
    """INSERT that returns the new row's key, and nothing when the primary key exists."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing().returning(*table.primary_key.columns)


def serialise(conn: Connection, key: str) -> None:
    """Hold a transaction-scoped lock on `key` (conditional create/update race-freedom)."""
    if conn.dialect.name == "postgresql":
        # zlib.crc32 is stable across processes, unlike hash().
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(key.encode())})
    # SQLite: the write transaction already holds the database's single write lock.
