"""The database floor: raw INSERT / SELECT by primary key on a table shaped like `resource`.

The same drivers and settings as the store: the sqlite3 module with the store's PRAGMAs and
BEGIN IMMEDIATE for writes, psycopg 3 for PostgreSQL; one commit per operation.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import MetaData
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateTable

from opengp.store.sql.tables import resource

TABLE = "bench_floor_resource"
COLUMNS = "resource_type, id, version_id, last_updated, deleted, content"
Row = tuple[str, str, int, Any, Any, bytes]


def create_table_sql(dialect: Dialect) -> str:
    """OpenGP's own `resource` table definition, renamed."""
    return str(CreateTable(resource.to_metadata(MetaData(), name=TABLE)).compile(dialect=dialect))


def row(id: str, content: bytes, *, sqlite_time: bool) -> Row:
    now = datetime.now(UTC)
    if sqlite_time:  # what SQLAlchemy's DateTime binds on SQLite: naive UTC text
        return ("Patient", id, 1, now.replace(tzinfo=None).isoformat(" "), 0, content)
    return ("Patient", id, 1, now, False, content)


class SqliteFloor:
    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in (
            "journal_mode=WAL",
            "synchronous=FULL",
            "foreign_keys=ON",
            "busy_timeout=30000",
        ):
            self.conn.execute(f"PRAGMA {pragma}")

    @staticmethod
    def setup(path: Path) -> None:
        floor = SqliteFloor(path)
        floor.conn.execute(create_table_sql(sqlite.dialect()))
        floor.close()

    def insert(self, rows: list[Row]) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.executemany(f"INSERT INTO {TABLE} ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", rows)
        self.conn.execute("COMMIT")

    def select(self, id: str) -> bytes:
        found = self.conn.execute(
            f"SELECT {COLUMNS} FROM {TABLE} WHERE resource_type = ? AND id = ?", ("Patient", id)
        ).fetchone()
        assert found is not None
        content: bytes = found[5]
        return content

    def close(self) -> None:
        self.conn.close()


class PostgresFloor:
    """Autocommit: a one-row INSERT is one round trip and one commit, the least possible."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)

    @staticmethod
    def setup(url: str) -> None:
        with psycopg.connect(url) as conn:
            conn.execute(create_table_sql(postgresql.dialect()))  # type: ignore[no-untyped-call]

    def insert(self, rows: list[Row]) -> None:
        sql = f"INSERT INTO {TABLE} ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)"
        if len(rows) == 1:
            self.conn.execute(sql, rows[0])
            return
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany(sql, rows)

    def select(self, id: str) -> bytes:
        found = self.conn.execute(
            f"SELECT {COLUMNS} FROM {TABLE} WHERE resource_type = %s AND id = %s", ("Patient", id)
        ).fetchone()
        assert found is not None
        content: bytes = found[5]
        return content

    def close(self) -> None:
        self.conn.close()
