"""`SqlStore`: current resources, full version history and index rows, one transaction a write."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql.elements import ColumnElement

from opengp.fhir import jsonio
from opengp.fhir.datetimes import instant
from opengp.search.parse import RelationshipLink, SearchQuery
from opengp.store.base import (
    AuditRecord,
    HistoryEntry,
    HistoryPage,
    HistoryQuery,
    SearchPage,
    StoredResource,
    WriteConflict,
)
from opengp.store.sql import audit, dialects
from opengp.store.sql.search import Compiler, Searcher
from opengp.store.sql.search_tables import (
    SEARCH_TABLES,
    RowWriter,
    sqlite_time,
)
from opengp.store.sql.tables import identifier_index, resource, resource_version

Clock = Callable[[], datetime]
BULK_CACHE_KIB = 256 * 1024  # SQLite page cache of a bulk load's connection


def utc_now_ms() -> datetime:
    """Now, to the millisecond: the precision meta.lastUpdated is written with."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _stored(row: Any) -> StoredResource:
    return StoredResource(
        row.resource_type, row.id, row.version_id, row.last_updated, row.deleted, row.content
    )


# Statements are built once: building a SQLAlchemy statement per call costs more than
# running it (see docs/benchmarks.md, "Where the time goes").
_r, _v, _i = resource.c, resource_version.c, identifier_index.c
SELECT_CURRENT = select(resource).where(
    _r.resource_type == bindparam("rt"), _r.id == bindparam("rid")
)
SELECT_CURRENT_FOR_UPDATE = SELECT_CURRENT.with_for_update()
SELECT_VERSION = select(resource_version).where(
    _v.resource_type == bindparam("rt"),
    _v.id == bindparam("rid"),
    _v.version_id == bindparam("vid"),
)
UPDATE_CURRENT = update(resource).where(
    _r.resource_type == bindparam("rt"),
    _r.id == bindparam("rid"),
    _r.version_id == bindparam("prev"),
)
INSERT_VERSION = insert(resource_version)
DELETE_INDEX = delete(identifier_index).where(
    _i.resource_type == bindparam("rt"), _i.resource_id == bindparam("rid")
)
DELETE_SEARCH_ROWS = [
    delete(t).where(t.c.resource_type == bindparam("rt"), t.c.resource_id == bindparam("rid"))
    for t in SEARCH_TABLES
]


def _normalise(
    resource_type: str, id: str, body: dict[str, Any], version_id: int, now: datetime
) -> tuple[dict[str, Any], bytes]:
    """The resource as stored: resourceType, id and meta first, meta carrying the version.

    Normalised once; these bytes are served on every read.
    """
    meta = dict(body.get("meta") or {})
    meta["versionId"] = str(version_id)
    meta["lastUpdated"] = instant(now)
    normalised = {"resourceType": resource_type, "id": id, "meta": meta}
    normalised.update((k, v) for k, v in body.items() if k not in normalised)
    return normalised, jsonio.dumps(normalised)


class NewResource(NamedTuple):
    """A new resource made ready to insert: its stored content (version 1) and every row of
    its search indexes, by table. Pure data: the bulk import makes these in other processes
    (a tuple: the cheapest to send between them)."""

    resource_type: str
    id: str
    last_updated: datetime
    content: bytes
    rows: dict[str, bytes]


def prepare_new(body: dict[str, Any], now: datetime, dialect: str) -> NewResource:
    """`body` (with resourceType and id) as version 1 written at `now`, indexed."""
    resource_type, id = body["resourceType"], body["id"]
    normalised, content = _normalise(resource_type, id, body, 1, now)
    writer = RowWriter(dialect)
    writer.add_resource(normalised)
    return NewResource(resource_type, id, now, content, writer.encoded())


class SqlReadTransaction:
    def __init__(
        self, conn: Connection, writing: Callable[[], AbstractContextManager[Any]] | None = None
    ) -> None:
        self.conn = conn
        # A write transaction of its own, for searches that keep their results to page.
        self._writing = writing or nullcontext

    def current(
        self, resource_type: str, id: str, *, for_update: bool = False
    ) -> StoredResource | None:
        query = SELECT_CURRENT_FOR_UPDATE if for_update else SELECT_CURRENT
        row = self.conn.execute(query, {"rt": resource_type, "rid": id}).first()
        return None if row is None else _stored(row)

    def version(self, resource_type: str, id: str, version_id: int) -> StoredResource | None:
        params = {"rt": resource_type, "rid": id, "vid": version_id}
        row = self.conn.execute(SELECT_VERSION, params).first()
        return None if row is None else _stored(row)

    def read_many(self, resource_type: str, ids: Sequence[str]) -> list[StoredResource]:
        if not ids:
            return []
        rows = self.conn.execute(
            select(resource).where(
                resource.c.resource_type == resource_type, resource.c.id.in_(ids)
            )
        )
        by_id = {row.id: _stored(row) for row in rows}
        return [by_id[i] for i in ids if i in by_id]

    def find(self, query: SearchQuery, limit: int) -> list[str]:
        return [id for _, id in self._searcher().find(query, limit)]

    def search(self, query: SearchQuery, owner: str) -> SearchPage:
        return self._searcher().page(query, owner)

    def audit_trail(
        self,
        *,
        patient_id: str | None = None,
        principal: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        count: int = 50,
        before_seq: int | None = None,
    ) -> list[audit.AuditRow]:
        return audit.query_audit(
            self.conn,
            patient_id=patient_id,
            principal=principal,
            since=since,
            until=until,
            count=count,
            before_seq=before_seq,
        )

    def is_related(
        self,
        patient_id: str,
        links: Sequence[RelationshipLink],
        targets: Sequence[tuple[str, str]],
    ) -> bool:
        compiler = Compiler(utc_now_ms(), self.conn.dialect.name)
        related = compiler.related_patients(links, targets, patient_id)
        return self.conn.execute(related.limit(1)).first() is not None

    def _searcher(self) -> Searcher:
        return Searcher(self.conn, self._writing, datetime.now(UTC))

    def history(self, query: HistoryQuery) -> HistoryPage:
        v = resource_version.c
        conditions: list[ColumnElement[bool]] = []
        if query.resource_type is not None:
            conditions.append(v.resource_type == query.resource_type)
        if query.id is not None:
            conditions.append(v.id == query.id)
        if query.since is not None:
            conditions.append(v.last_updated >= query.since)
        total = self.conn.scalar(
            select(func.count()).select_from(resource_version).where(*conditions)
        )
        if query.before_seq is not None:
            conditions.append(v.seq < query.before_seq)
        rows = list(
            self.conn.execute(
                select(resource_version)
                .where(*conditions)
                .order_by(v.seq.desc())
                .limit(query.count + 1)
            )
        )
        more = len(rows) > query.count
        rows = rows[: query.count]
        entries = [HistoryEntry(row.seq, row.method, _stored(row)) for row in rows]
        return HistoryPage(entries, total or 0, rows[-1].seq if more and rows else None)


class SqlWriteTransaction(SqlReadTransaction):
    def __init__(self, conn: Connection, clock: Clock) -> None:
        super().__init__(conn)
        self.clock = clock
        self.insert_current = dialects.insert_or_ignore(resource, conn.dialect.name)
        self.pending_audit = audit.PendingAudit()

    def audit(self, *entries: AuditRecord) -> None:
        # Appended just before COMMIT (see `SqlStore.writing`), so the chain's lock is held
        # for the shortest time.
        self.pending_audit.audit(*entries)

    def serialise(self, key: str) -> None:
        dialects.serialise(self.conn, key)

    def save(
        self,
        resource_type: str,
        id: str,
        body: dict[str, Any],
        *,
        method: str,
        previous: StoredResource | None,
    ) -> StoredResource:
        version_id = 1 if previous is None else previous.version_id + 1
        now = self.clock()
        normalised, content = _normalise(resource_type, id, body, version_id, now)
        values = {
            "version_id": version_id,
            "last_updated": now,
            "deleted": False,
            "content": content,
        }
        self._write_current(resource_type, id, values, previous)
        self._append_version(resource_type, id, values, method)
        self._reindex(resource_type, id, normalised, fresh=previous is None)
        return StoredResource(resource_type, id, version_id, now, False, content)

    def create_many(self, resources: Sequence[dict[str, Any]]) -> None:
        """Create many new resources (each with resourceType and id) in a few statements.

        The bulk path for trusted, already-validated data (the synthetic practice, imports
        that validated their input): version 1 of each, indexed like `save`. An id that
        already exists fails the whole transaction.
        """
        now, dialect = self.clock(), self.conn.dialect.name
        self.insert_new([prepare_new(body, now, dialect) for body in resources])

    def insert_new(self, resources: Sequence[NewResource]) -> None:
        """Insert resources `prepare_new` made ready (in this process or another)."""
        if not resources:
            return
        sqlite = self.conn.dialect.name == "sqlite"
        writer = RowWriter(self.conn.dialect.name)
        # The resources first (a writer writes tables in the order they were first used):
        # their primary key refuses an id that exists before any index row is written.
        for new in resources:
            at = sqlite_time(new.last_updated) if sqlite else new.last_updated
            writer.append(resource.name, (new.resource_type, new.id, 1, at, False, new.content))
            values = (new.resource_type, new.id, 1, at, "POST", False, new.content)
            writer.append(resource_version.name, values)
            writer.extend(new.rows)
        writer.write(self.conn)

    def delete(self, previous: StoredResource) -> StoredResource:
        now = self.clock()
        version_id = previous.version_id + 1
        values = {"version_id": version_id, "last_updated": now, "deleted": True, "content": None}
        rt, id = previous.resource_type, previous.id
        self._write_current(rt, id, values, previous)
        self._append_version(rt, id, values, "DELETE")
        self._reindex(rt, id, None)
        return StoredResource(rt, id, version_id, now, True, None)

    def _write_current(
        self, resource_type: str, id: str, values: dict[str, Any], previous: StoredResource | None
    ) -> None:
        if previous is None:
            # A concurrent create of the same id makes this insert a no-op, not an error that
            # would abort the transaction.
            params = {"resource_type": resource_type, "id": id, **values}
            if self.conn.execute(self.insert_current, params).first() is None:
                raise WriteConflict(f"{resource_type}/{id} was created concurrently")
            return
        # Optimistic lock: only the transaction that read `previous` may write the next version.
        params = {"rt": resource_type, "rid": id, "prev": previous.version_id, **values}
        if self.conn.execute(UPDATE_CURRENT, params).rowcount != 1:
            raise WriteConflict(f"{resource_type}/{id} was changed concurrently")

    def _append_version(
        self, resource_type: str, id: str, values: dict[str, Any], method: str
    ) -> None:
        params = {"resource_type": resource_type, "id": id, "method": method, **values}
        self.conn.execute(INSERT_VERSION, params)

    def _reindex(
        self, resource_type: str, id: str, body: dict[str, Any] | None, *, fresh: bool = False
    ) -> None:
        """Search indexing runs here, inside the resource's own transaction."""
        key = {"rt": resource_type, "rid": id}
        if not fresh:  # a brand-new resource has no rows to replace
            self.conn.execute(DELETE_INDEX, key)
            for statement in DELETE_SEARCH_ROWS:
                self.conn.execute(statement, key)
        if body is not None:
            self.insert_index_rows([body])

    def insert_index_rows(self, bodies: Sequence[dict[str, Any]]) -> None:
        """Index resources that have no index rows yet (new ones, or being re-indexed)."""
        writer = RowWriter(self.conn.dialect.name)
        for body in bodies:
            writer.add_resource(body)
        writer.write(self.conn)


class SqlStore:
    """A `ResourceStore` on one SQLAlchemy engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, clock: Clock = utc_now_ms) -> None:
        self.engine = engine
        self.clock = clock
        self.dialect = engine.dialect.name
        self.write_queue: AbstractContextManager[Any] = (
            threading.Lock() if self.dialect == "sqlite" else nullcontext()
        )
        # The store's clock, looked up at each append (tests move it).
        self.audit_chain = audit.AuditChain(engine, lambda: self.clock(), self.write_queue)

    @classmethod
    def from_url(cls, url: str, clock: Clock = utc_now_ms) -> SqlStore:
        return cls(dialects.make_engine(url), clock)

    @contextmanager
    def reading(self) -> Iterator[SqlReadTransaction]:
        # Reads run without BEGIN/COMMIT: each statement sees committed data, and a
        # primary-key read costs one round trip instead of three.
        with self.engine.connect() as conn:
            options = dialects.AUTOCOMMIT[self.dialect]
            yield SqlReadTransaction(conn.execution_options(**options), self.writing)

    @contextmanager
    def writing(self, *, bulk: bool = False) -> Iterator[SqlWriteTransaction]:
        """A write transaction; `bulk` for one that writes many thousands of resources (on
        SQLite its connection then keeps more of the tables' pages in memory)."""
        # SQLite has one writer at a time; queueing this process's writers on a lock keeps
        # them out of SQLite's sleep-and-retry busy loop (which gave p99s of ~0.5 s).
        with self.write_queue, self.engine.connect() as conn, self._bulk(conn, bulk):
            conn = conn.execution_options(opengp_write=True)
            try:
                with conn.begin():
                    tx = SqlWriteTransaction(conn, self.clock)
                    yield tx
                    head = self.audit_chain.append_in(conn, tx.pending_audit.entries)
                self.audit_chain.committed(head)
            except OperationalError as exc:
                # PostgreSQL serialisation failures and deadlocks are safe to retry.
                if getattr(exc.orig, "sqlstate", None) in ("40001", "40P01"):
                    raise WriteConflict(str(exc.orig)) from exc
                raise

    @contextmanager
    def _bulk(self, conn: Connection, bulk: bool) -> Iterator[None]:
        """SQLite's settings of `conn` while a bulk load writes.

        A larger page cache: inserting index rows in key order other than the tables'
        touches pages all over each index (measured: an import 6% faster with 256 MB than
        with the default 2 MB, at 60,000 resources).

        Into a database holding no resources, and when no other connection has it open (an
        `opengp import` or `opengp demo` into a new database, not a serving one), the load
        runs with a rollback journal instead of the WAL. The WAL writes every page twice
        (into the log, then into the database at the checkpoint that follows the commit),
        and a large WAL slows every read of the load's own pages while the indexes are
        built; a rollback journal holds only the few pages that existed before, and the new
        pages are written once (measured, 10,000 patients: the commit 20 s → 0.7 s, the
        import's system CPU 49 → 21 s). As durable: the journal is synced before the
        database is written, and a crash part-way is undone from it when the database is
        next opened. Other connections may open the database and read meanwhile, but wait
        (up to the busy timeout) while the load writes its pages, and a read transaction
        held open across the load's commit delays it (the load is rolled back whole if that
        lasts longer than the busy timeout). The WAL is back when the load ends, committed
        or not (or, if a reader has the database open at that moment, when the next
        connection opens).
        """
        if not bulk or self.dialect != "sqlite":
            yield
            return
        # On the driver's connection: a statement through SQLAlchemy would begin a transaction.
        driver = conn.connection.driver_connection
        assert driver is not None
        driver.execute(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")
        journal = False
        if driver.execute("SELECT 1 FROM resource LIMIT 1").fetchone() is None:
            self.engine.dispose()  # this process's idle connections (this one is in use)
            with contextlib.suppress(sqlite3.OperationalError):  # another connection has it open
                journal = driver.execute("PRAGMA journal_mode=DELETE").fetchone()[0] == "delete"
        try:
            yield
        finally:
            if journal:  # unless another connection reads now: then the next to open does
                with contextlib.suppress(sqlite3.OperationalError):
                    driver.execute("PRAGMA journal_mode=WAL")
            driver.execute("PRAGMA cache_size=-2000")  # SQLite's default, 2 MB

    @contextmanager
    def auditing(self) -> Iterator[audit.PendingAudit]:
        """Collect audit entries (of reads) and commit them in one short transaction.

        Cheap, because the caller waits for it before answering: the commit returns before
        the log is flushed to disk (PostgreSQL `synchronous_commit = off`, SQLite
        `synchronous=NORMAL` in WAL mode). A crash of the database server (PostgreSQL) or
        of the machine (both) can lose the newest such entries, never reorder them or leave
        a hole: any later durable commit flushes the log up to itself, earlier entries
        included. A crash of OpenGP itself loses nothing that was committed.

        Never inside `writing()` (on SQLite it would wait for that transaction's own lock):
        a write transaction records its accesses with its own `audit()`.
        """
        pending = audit.PendingAudit()
        yield pending
        # Concurrent callers' entries are committed together (see `audit.AuditChain`).
        self.audit_chain.append_committed(pending.entries)

    def is_ready(self) -> tuple[bool, str]:
        from opengp.store.migrate import schema_status

        try:
            return schema_status(self.engine)
        except Exception as exc:  # any failure to reach the database means "not ready"
            return False, f"database unreachable: {type(exc).__name__}"

    def dispose(self) -> None:
        self.engine.dispose()
