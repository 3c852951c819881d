"""SQL of bulk data: job rows, and reading resources in keyset batches from one snapshot.

Exports read the stored content bytes as they are (they are already the NDJSON lines) from
a consistent snapshot: a REPEATABLE READ read-only transaction on PostgreSQL, a read
transaction on SQLite (WAL readers see the database as it was when they began and do not
block writers).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    cast,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Select

from opengp.search.parse import SearchQuery
from opengp.store.sql.bulk_tables import bulk_job
from opengp.store.sql.search import Compiler
from opengp.store.sql.search_tables import SEARCH_TABLES
from opengp.store.sql.tables import resource

_r, _j = resource.c, bulk_job.c


# ---- jobs -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobRow:
    id: str
    kind: str  # export | import
    owner: str
    request: dict[str, Any]
    status: str  # queued | running | completed | failed | cancelled | expired
    progress: str | None
    created: datetime
    transaction_time: datetime | None
    finished: datetime | None
    expires: datetime | None
    error: str | None
    manifest: dict[str, Any] | None


def _job(row: Any) -> JobRow:
    return JobRow(
        row.id,
        row.kind,
        row.owner,
        orjson.loads(row.request),
        row.status,
        row.progress,
        row.created,
        row.transaction_time,
        row.finished,
        row.expires,
        row.error,
        orjson.loads(row.manifest) if row.manifest else None,
    )


def add_job(
    conn: Connection, id: str, kind: str, owner: str, request: dict[str, Any], now: datetime
) -> None:
    values = {"id": id, "kind": kind, "owner": owner, "status": "queued", "created": now}
    conn.execute(insert(bulk_job), {**values, "request": orjson.dumps(request).decode()})


def get_job(conn: Connection, id: str) -> JobRow | None:
    row = conn.execute(select(bulk_job).where(_j.id == id)).first()
    return None if row is None else _job(row)


def job_ids(conn: Connection, status: str) -> list[str]:
    """Jobs in `status`, oldest first."""
    query = select(_j.id).where(_j.status == status).order_by(_j.created, _j.id)
    return list(conn.scalars(query))


def move_job(
    conn: Connection, id: str, before: str | tuple[str, ...], after: str, **values: Any
) -> bool:
    """Change a job's status from `before` (one of) to `after`, and other columns; False
    when it was not in `before` (another process moved it first: how jobs are claimed)."""
    if "manifest" in values and values["manifest"] is not None:
        values["manifest"] = orjson.dumps(values["manifest"]).decode()
    statuses = (before,) if isinstance(before, str) else before
    query = update(bulk_job).where(_j.id == id, _j.status.in_(statuses))
    return conn.execute(query.values(status=after, **values)).rowcount == 1


def set_progress(conn: Connection, id: str, progress: str) -> None:
    conn.execute(update(bulk_job).where(_j.id == id).values(progress=progress[:255]))


def expired_job_ids(conn: Connection, now: datetime) -> list[str]:
    """Finished jobs whose files should be gone by now."""
    statuses = ("completed", "failed")
    query = select(_j.id).where(_j.status.in_(statuses), _j.expires <= now)
    return list(conn.scalars(query))


# ---- reading resources for export and checks -------------------------------------------


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction seeing one consistent state of the database throughout."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        with conn.begin():  # SQLite: BEGIN DEFERRED; the snapshot starts at the first read
            conn.execute(select(_r.id).limit(1)).first()  # so take it now
            yield conn


def member_ids(dialect: str, ids: Sequence[str]) -> Select[Any]:
    """`ids` as a sub-select, bound as one JSON parameter however many there are (a
    practice register holds thousands of patients: too many for one bind parameter each)."""
    values: Any = bindparam("member_ids", orjson.dumps(list(ids)).decode())
    if dialect == "postgresql":
        column = func.jsonb_array_elements_text(cast(values, JSONB)).column_valued("value")
        return select(column)
    table = func.json_each(values).table_valued("value")
    return select(table.c.value)


def live_patient_ids() -> Select[Any]:
    return select(_r.id).where(_r.resource_type == "Patient", ~_r.deleted)


def export_where(
    compiler: Compiler,
    resource_type: str,
    *,
    since: datetime | None = None,
    filters: Sequence[SearchQuery] = (),
    patients: Select[Any] | None = None,
) -> list[ColumnElement[bool]]:
    """Conditions on `resource` for one type of an export: changed after `since`, matching
    any of `filters` (`_typeFilter`), in the Patient compartment of `patients`."""
    where: list[ColumnElement[bool]] = []
    if since is not None:
        where.append(_r.last_updated > since)
    if filters:
        where.append(
            or_(
                *(
                    and_(true(), *compiler.conditions(resource_type, q.clauses, q.has))
                    for q in filters
                )
            )
        )
    if patients is not None:
        where.append(compiler.in_compartment(resource_type, "Patient", patients))
    return where


def contents(
    conn: Connection,
    resource_type: str,
    where: Sequence[ColumnElement[bool]] = (),
    batch: int = 5000,
) -> Iterator[list[tuple[str, bytes]]]:
    """(id, stored content) of live resources of a type, in id order, `batch` at a time.

    Keyset paging on the primary key (resource_type, id): each batch is an index range
    scan, whatever the size of the table.
    """
    after = ""
    while True:
        query = (
            select(_r.id, _r.content)
            .where(_r.resource_type == resource_type, ~_r.deleted, _r.id > after, *where)
            .order_by(_r.id)
            .limit(batch)
        )
        rows = [(row.id, row.content) for row in conn.execute(query)]
        if rows:
            yield rows
        if len(rows) < batch:
            return
        after = rows[-1][0]


def count_live(
    conn: Connection, resource_type: str, where: Sequence[ColumnElement[bool]] = ()
) -> int:
    query = select(func.count()).where(_r.resource_type == resource_type, ~_r.deleted, *where)
    return conn.scalar(query) or 0


def ids_after(conn: Connection, resource_type: str, after: str, batch: int) -> list[str]:
    """The next `batch` ids of live resources of a type after `after`, in order."""
    query = (
        select(_r.id)
        .where(_r.resource_type == resource_type, ~_r.deleted, _r.id > after)
        .order_by(_r.id)
        .limit(batch)
    )
    return list(conn.scalars(query))


def live_ids(conn: Connection, resource_type: str, ids: Sequence[str]) -> set[str]:
    """Which of `ids` are live resources of `resource_type`."""
    if not ids:
        return set()
    query = select(_r.id).where(_r.resource_type == resource_type, ~_r.deleted, _r.id.in_(ids))
    return set(conn.scalars(query))


def holds_any(conn: Connection, resource_type: str) -> bool:
    """Whether the database has any resource of `resource_type`, deleted ones included."""
    query = select(_r.id).where(_r.resource_type == resource_type).limit(1)
    return conn.scalar(query) is not None


# ---- loading into an empty database ---------------------------------------------------

# SQLite's full-text index is kept in step with search_text by this trigger (migration 0004);
# 'rebuild' fills it from search_text in one go.
_FTS_TRIGGER = "search_text_added"
_FTS_REBUILD = "INSERT INTO search_text_fts(search_text_fts) VALUES ('rebuild')"
# PostgreSQL's B-tree indexes: its full-text (GIN) indexes cost as much to build as to
# keep up to date row by row, and a build after the load would only add to its length.
_PG_INDEXES = """
SELECT c.relname, pg_get_indexdef(c.oid)
FROM pg_index x
JOIN pg_class c ON c.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_am a ON a.oid = c.relam
WHERE t.relname = ANY(%(tables)s) AND t.relnamespace = to_regnamespace(current_schema())
  AND NOT x.indisunique AND NOT x.indisprimary AND a.amname = 'btree'
ORDER BY c.relname
"""


def _holds_no_resources(conn: Connection) -> bool:
    return conn.scalar(select(_r.id).limit(1)) is None


@contextmanager
def indexes_built_after(conn: Connection) -> Iterator[None]:
    """Within `conn`'s transaction, a load: into a database that holds no resources, the
    search tables' secondary B-tree indexes (and SQLite's full-text index) are dropped first
    and built again from all the rows once the load is done. Building an index over every row at
    once costs far less than inserting millions of rows into it one at a time (measured in
    docs/benchmarks.md, "Bulk import"). The definitions are read from the database itself, so
    what its migrations made is what is built again. If the load fails, its rollback brings
    the indexes back as they were. Meanwhile the tables are locked to other writers and, on
    PostgreSQL, to readers: only for a database that holds nothing yet."""
    tables = [t.name for t in SEARCH_TABLES]
    driver = conn.exec_driver_sql
    if conn.dialect.name == "postgresql" and _holds_no_resources(conn):
        # Another load into this empty database may be under way (SQLite's writers are
        # serialised already): wait for it, then look again.
        driver(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE")
    if not _holds_no_resources(conn):
        yield
        return
    if conn.dialect.name == "sqlite":
        marks = ", ".join("?" for _ in tables)
        indexes = driver(
            f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            f" AND tbl_name IN ({marks}) ORDER BY name",
            tuple(tables),
        ).all()
        trigger = driver(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", (_FTS_TRIGGER,)
        ).scalar()
    else:
        indexes = driver(_PG_INDEXES, {"tables": tables}).all()
        trigger = None
    for name, _ in indexes:
        driver(f'DROP INDEX "{name}"')
    if trigger is not None:
        driver(f"DROP TRIGGER {_FTS_TRIGGER}")
    yield
    if conn.dialect.name == "postgresql":
        driver("SET LOCAL maintenance_work_mem = '256MB'")  # sorts in memory
    for _, definition in indexes:
        driver(definition)
    if trigger is not None:
        driver(_FTS_REBUILD)
        driver(trigger)
