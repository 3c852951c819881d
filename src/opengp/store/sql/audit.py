"""The audit trail on SQL: appending to its SHA-256 hash chain, verifying it, querying it.

Each entry's `hash` is SHA-256 over the previous entry's hash and the entry's canonical bytes
(`canonical_bytes`), so editing, deleting or reordering any entry breaks the chain from there
on (`verify`). There is no secret key: someone who can write the database can rebuild the whole
chain, which is why `verify` reports the head (seq, hash) for the operator to record outside
the database, and checks a recorded head when given one.

Appends are serialised so the chain is linear and `seq` is gap-free and equals chain order:
the appender holds the chain's lock while it inserts seq + 1 after the newest entry. On
PostgreSQL the lock is a transaction-scoped advisory lock, and the insert is conditional on
the newest entry being the one chained to (see `AuditChain`); on SQLite the write
transaction (BEGIN IMMEDIATE) already holds the database's only write lock. The primary key on
`seq` would stop two appenders that somehow skipped the lock from both writing the same seq.
The chain's lock is always the last lock a transaction takes (entries are appended just
before COMMIT), so it cannot take part in a deadlock.

The hashing is here, not in the access layer, because only the appender, under the lock,
knows `seq` and `prev_hash`; its functions are pure and tested without a database.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
import psycopg
from sqlalchemy import Connection, Engine, select
from sqlalchemy.sql.elements import ColumnElement

from opengp.store.base import AuditRecord
from opengp.store.sql.access_tables import audit_event

GENESIS = "0" * 64  # the prev_hash of the first entry

# The chain's advisory-lock key: above 2**32, so it never collides with the CRC-32 keys of
# `dialects.serialise`.
CHAIN_LOCK_KEY = 0x4F70656E47504175  # "OpenGPAu"

# What the caller says about an access; the rest (seq, recorded, prev_hash, hash) the chain adds.
ENTRY_COLUMNS = (
    "action",
    "outcome",
    "principal",
    "on_behalf_of",
    "client_id",
    "purpose",
    "patient_id",
    "resource_type",
    "resource_id",
    "detail",
)
_LIMITS: tuple[tuple[str, int], ...] = tuple(
    (name, length)
    for name in ENTRY_COLUMNS
    if (length := getattr(audit_event.c[name].type, "length", None)) is not None
)

Problem = Literal["edited", "deleted", "reordered"]


def entry_values(entry: AuditRecord) -> dict[str, Any]:
    """The columns an entry fills, `detail` as JSON text with sorted keys.

    Lengths are checked here so both databases reject the same entries (SQLite would store an
    over-long value that PostgreSQL refuses).
    """
    detail = entry.detail
    values: dict[str, Any] = {
        "action": entry.action,
        "outcome": entry.outcome,
        "principal": entry.principal,
        "on_behalf_of": entry.on_behalf_of,
        "client_id": entry.client_id,
        "purpose": entry.purpose,
        "patient_id": entry.patient_id,
        "resource_type": entry.resource_type,
        "resource_id": entry.resource_id,
        "detail": orjson.dumps(detail, option=orjson.OPT_SORT_KEYS).decode() if detail else None,
    }
    for name, limit in _LIMITS:
        value = values[name]
        if value is not None and len(value) > limit:
            raise ValueError(f"audit entry {name} is longer than {limit} characters")
    return values


def recorded_text(recorded: datetime) -> str:
    """`recorded` as hashed: 2026-11-21T08:15:00.123456+00:00 (UTC, to the microsecond: the
    precision both databases keep)."""
    if recorded.tzinfo is not UTC:
        recorded = recorded.astimezone(UTC)
    return recorded.isoformat(timespec="microseconds")


def canonical_bytes(row: Mapping[str, Any]) -> bytes:
    """The bytes hashed for an entry: every stored column except `hash`.

    A JSON object with sorted keys, no whitespace, UTF-8 (RFC 8785 canonical JSON for the
    strings, integers and nulls it holds). `detail` is hashed as the stored text, never
    re-serialised. Frozen: changing it would make every existing chain fail to verify.
    """
    fields = {name: row[name] for name in ENTRY_COLUMNS}
    fields["seq"] = row["seq"]
    fields["recorded"] = recorded_text(row["recorded"])
    fields["prev_hash"] = row["prev_hash"]
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


def chain_hash(row: Mapping[str, Any]) -> str:
    """hex(SHA-256(prev_hash || canonical_bytes(row)))."""
    return hashlib.sha256(row["prev_hash"].encode("ascii") + canonical_bytes(row)).hexdigest()


def chain(
    entries: Sequence[Mapping[str, Any]], head_seq: int, head_hash: str, recorded: datetime
) -> list[dict[str, Any]]:
    """Rows for `entries`, numbered and hashed after the head (seq, hash)."""
    rows = []
    seq, prev = head_seq, head_hash
    for values in entries:
        seq += 1
        row = {**values, "seq": seq, "recorded": recorded, "prev_hash": prev}
        prev = row["hash"] = chain_hash(row)
        rows.append(row)
    return rows


# Appending ------------------------------------------------------------------------------

Head = tuple[int, str]  # (seq, hash) of the newest entry; (0, GENESIS) when there is none
Clock = Callable[[], datetime]

COLUMNS = tuple(column.name for column in audit_event.columns)
_HEAD_SQL = "SELECT seq, hash FROM audit_event ORDER BY seq DESC LIMIT 1"
_SQLITE_INSERT = (
    f"INSERT INTO audit_event ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
)
_PG_ROW = f"({', '.join(['%s'] * len(COLUMNS))})"
_PG_LOCK = f"SELECT pg_advisory_xact_lock({CHAIN_LOCK_KEY}); "
_PG_BEGIN_AND_LOCK_ASYNC = (
    "BEGIN; SELECT set_config('synchronous_commit', 'off', true),"
    f" pg_advisory_xact_lock({CHAIN_LOCK_KEY}); "
)
# Inserts the rows only if the newest entry is still the one they were chained to; answers
# how many it inserted and the newest entry before it.
_PG_INSERT = (
    f"WITH head AS ({_HEAD_SQL}), added AS ("
    f"INSERT INTO audit_event ({', '.join(COLUMNS)}) SELECT * FROM (VALUES "
)
_PG_IF_HEAD = (
    ") AS entry WHERE (SELECT hash FROM head) IS NOT DISTINCT FROM %s RETURNING seq)"
    " SELECT (SELECT count(*) FROM added), (SELECT seq FROM head), (SELECT hash FROM head)"
)


class PendingAudit:
    """Entries collected by `SqlStore.auditing()` or a write transaction, appended at the end.

    Appending last keeps the chain's lock held only from the append to the commit.
    """

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def audit(self, *entries: AuditRecord) -> None:
        # Converted (and checked) now, so a bad entry fails where it was made.
        self.entries += [entry_values(entry) for entry in entries]


class AuditNotWritten(Exception):
    """The entries could not be committed (the batch they were in failed): do not answer."""


class _Batch:
    """Entries from concurrent callers, committed in one transaction (group commit)."""

    __slots__ = ("done", "entries", "error")

    def __init__(self) -> None:
        self.entries: list[Mapping[str, Any]] = []
        self.done = False
        self.error: BaseException | None = None


class AuditChain:
    """Appends to one database's chain, on the driver's connection (fewest round trips).

    Entries of reads (`append_committed`) are group-committed: while one batch is being
    written, entries from other threads gather in the next, which the first of them writes
    when the writer is free. One transaction then carries many reads' entries and takes the
    chain's lock once for all of them; and with one writer at a time, the head this store
    remembers is current unless another process appended.

    SQLite: inside BEGIN IMMEDIATE, read the head, insert the numbered, hashed rows.

    PostgreSQL, in one round trip: take the chain's advisory lock; insert the rows, chained
    to the head this store last saw, on condition that it is still the newest entry; read
    the newest entry. If another appender (another process) got there first, nothing was
    inserted and the head read is the new one: chain to that and try again. The lock and
    the INSERT are separate statements on purpose: under READ COMMITTED each statement sees
    what was committed when *it* started, so the INSERT sees the previous lock holder's
    entry. One appender's entries are therefore never lost or forked, only retried.
    """

    def __init__(
        self, engine: Engine, clock: Clock, write_queue: AbstractContextManager[Any]
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.write_queue = write_queue  # SQLite: this process's writers queue on it
        self._turn = threading.Condition()
        self._writing = False  # a batch is being written
        self._gathering: _Batch | None = None  # the next batch, open to more entries
        self.dialect = engine.dialect.name
        # Exactly what SQLAlchemy binds for `recorded` (SQLite stores it as text).
        process = audit_event.c.recorded.type.bind_processor(engine.dialect)
        self.bind_recorded: Callable[[Any], Any] = process or (lambda value: value)
        # PostgreSQL: the newest entry this store has seen committed; only ever a guess.
        self.head: Head | None = None

    def committed(self, head: Head | None) -> None:
        """Note the head a transaction that has now committed wrote."""
        if head is not None and (self.head is None or head[0] > self.head[0]):
            self.head = head

    def append_in(self, conn: Connection, entries: Sequence[Mapping[str, Any]]) -> Head | None:
        """Append inside `conn`'s open write transaction, which the caller commits."""
        if not entries:
            return None
        db = conn.connection.driver_connection
        if self.dialect == "sqlite":
            return self._sqlite(db, entries)
        return self._postgres(db, entries, own_transaction=False)

    def append_committed(self, entries: Sequence[Mapping[str, Any]]) -> None:
        """Append in a short transaction of its own, committed without waiting for the disk.

        SQLite: `synchronous=NORMAL` for this commit, in WAL mode: it survives a crash of
        the application; a power cut or OS crash can lose the newest entries.
        PostgreSQL: `synchronous_commit = off`: a crash of the database server or the
        machine can lose the entries of the last few hundred milliseconds
        (3 x wal_writer_delay at most).
        Either way, only the newest: the log is written in order and any later durable
        commit (every clinical write) flushes it up to itself, these entries included. So
        a loss shortens the chain; it never leaves a hole or reorders it.
        """
        if not entries:
            return
        with self._turn:
            batch = self._gathering
            writer = batch is None
            if batch is None:
                batch = self._gathering = _Batch()
            batch.entries += entries
            if not writer:  # the batch's first caller writes it
                while not batch.done:
                    self._turn.wait()
                if batch.error is not None:
                    raise AuditNotWritten("the audit entries were not committed") from batch.error
                return
            while self._writing:
                self._turn.wait()  # meanwhile, later callers add their entries to `batch`
            self._writing = True
            self._gathering = None
        try:
            self._commit(batch.entries)
        except BaseException as exc:
            batch.error = exc
            raise
        finally:
            with self._turn:
                self._writing = False
                batch.done = True
                self._turn.notify_all()

    def _commit(self, entries: Sequence[Mapping[str, Any]]) -> None:
        with self.write_queue:
            raw = self.engine.raw_connection()
            try:
                db: Any = raw.driver_connection
                if self.dialect == "sqlite":
                    db.execute("PRAGMA synchronous=NORMAL")
                    db.execute("BEGIN IMMEDIATE")
                    head = self._sqlite(db, entries)
                    db.execute("COMMIT")
                    db.execute("PRAGMA synchronous=FULL")
                else:
                    db.autocommit = True  # BEGIN and COMMIT are sent with the statements
                    head = self._postgres(db, entries, own_transaction=True)
                    db.autocommit = False
            except BaseException:
                # It may be mid-transaction, or still syncing NORMAL: never reuse it.
                raw.invalidate()
                raise
            finally:
                raw.close()
        self.committed(head)

    def _params(self, row: Mapping[str, Any]) -> list[Any]:
        return [self.bind_recorded(row[c]) if c == "recorded" else row[c] for c in COLUMNS]

    def _sqlite(self, db: Any, entries: Sequence[Mapping[str, Any]]) -> Head:
        # The write transaction holds SQLite's only write lock: the head cannot move.
        newest = db.execute(_HEAD_SQL).fetchone()
        head: Head = (newest[0], newest[1]) if newest is not None else (0, GENESIS)
        rows = chain(entries, *head, self.clock())
        db.executemany(_SQLITE_INSERT, [self._params(row) for row in rows])
        return rows[-1]["seq"], rows[-1]["hash"]

    def _postgres(
        self, db: Any, entries: Sequence[Mapping[str, Any]], *, own_transaction: bool
    ) -> Head:
        cursor = psycopg.ClientCursor(db)  # binds client-side: several statements, one trip
        head = self.head
        if head is None:
            cursor.execute(_HEAD_SQL)
            newest = cursor.fetchone()
            head = (newest[0], newest[1]) if newest is not None else (0, GENESIS)
        if own_transaction:
            # The usual case (this store appended last): one round trip, BEGIN to COMMIT.
            inserted, head = self._try(cursor, entries, head, begin=True, commit=True)
            if inserted:
                return head
        # Another appender got there first: chain to the head it left, this time keeping the
        # lock to the end of the transaction, so a second try cannot miss.
        inserted, head = self._try(cursor, entries, head, begin=own_transaction, commit=False)
        if not inserted:  # the lock is held now: the head read last cannot have moved
            inserted, head = self._try(cursor, entries, head, begin=False, commit=False)
            if not inserted:
                raise RuntimeError("audit chain head moved while its lock was held")
        if own_transaction:
            cursor.execute("COMMIT")
        return head

    def _try(
        self,
        cursor: psycopg.ClientCursor[Any],
        entries: Sequence[Mapping[str, Any]],
        head: Head,
        *,
        begin: bool,
        commit: bool,
    ) -> tuple[bool, Head]:
        """One round trip: append after `head` if it is still the newest; the newest after."""
        # Taken before the lock: `recorded` may run a few milliseconds out of seq order
        # between concurrent appenders. `seq` is the order.
        rows = chain(entries, *head, self.clock())
        # Values quoted by the driver, a row at a time: short templates it parses once.
        values = ", ".join([cursor.mogrify(_PG_ROW, self._params(row)) for row in rows])
        condition = cursor.mogrify(_PG_IF_HEAD, [None if head[0] == 0 else head[1]])
        sql = (
            (_PG_BEGIN_AND_LOCK_ASYNC if begin else _PG_LOCK)
            + _PG_INSERT
            + values
            + condition
            + ("; COMMIT" if commit else "")
        )
        cursor.execute(sql)  # no parameters: nothing in `sql` is read as a placeholder
        for _ in range(2 if begin else 1):  # past BEGIN and the lock
            cursor.nextset()
        answer = cursor.fetchone()
        assert answer is not None
        added, newest_seq, newest_hash = answer
        if added == len(rows):
            return True, (rows[-1]["seq"], rows[-1]["hash"])
        return False, (newest_seq or 0, newest_hash or GENESIS)


# Verification ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifyReport:
    entries: int  # entries found intact, in chain order from the first
    head_seq: int  # the last intact entry (0 and GENESIS: none)
    head_hash: str
    problem: Problem | None = None
    broken_seq: int | None = None
    reason: str = ""

    @property
    def intact(self) -> bool:
        return self.problem is None

    def summary(self) -> str:
        if self.intact:
            return (
                f"audit trail intact: {self.entries} entries, head {self.head_seq}:{self.head_hash}"
            )
        return f"audit trail broken at entry {self.broken_seq} ({self.problem}): {self.reason}"


def parse_head(text: str) -> tuple[int, str]:
    """`SEQ:HASH` as printed by `verify`, e.g. 200:3f5a…"""
    seq, sep, digest = text.partition(":")
    digest = digest.lower()
    if (
        not sep
        or not seq.isdigit()
        or len(digest) != 64
        or any(c not in "0123456789abcdef" for c in digest)
    ):
        raise ValueError(f"{text!r} is not SEQ:HASH (a number, a colon, 64 hex digits)")
    return int(seq), digest


_a = audit_event.c
SELECT_CHAIN = select(audit_event).order_by(_a.seq)


def verify(engine: Engine, expect_head: Head | None = None) -> VerifyReport:
    """Recompute the chain in seq order, streaming (memory stays flat), to the first break."""
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=2000).execute(SELECT_CHAIN)
        try:
            return check_chain((dict(row) for row in result.mappings()), expect_head)
        finally:
            result.close()  # stopping at a break leaves a server-side cursor open


def check_chain(rows: Iterable[dict[str, Any]], expect_head: Head | None = None) -> VerifyReport:
    """Check entries given in seq order; report the first break.

    - edited: an entry's hash does not match its contents;
    - deleted: a gap in seq, or an entry that links (prev_hash) to something other than the
      entry before it while its own hash is right (an entry before it was removed and the
      rest renumbered, or the one before was replaced and re-hashed);
    - reordered: an entry out of place: neither its link nor its own hash is right, or it
      is the entry after the one the next entry holds (two entries swapped).
    Deleting the newest entries leaves a valid, shorter chain: only `expect_head`, a head
    recorded earlier, reveals it.
    """
    seq, prev, count = 0, GENESIS, 0

    def broken(problem: Problem, at: int, reason: str) -> VerifyReport:
        return VerifyReport(count, seq, prev, problem, at, reason)

    ordered = iter(rows)
    for row in ordered:
        at = row["seq"]
        if at != seq + 1:
            missing = f"{seq + 1}" if at == seq + 2 else f"{seq + 1} to {at - 1}"
            return broken("deleted", seq + 1, f"entry {missing} missing (next is {at})")
        own_hash_right = chain_hash(row) == row["hash"]
        if row["prev_hash"] != prev:
            moved_up = chain_hash({**row, "seq": at + 1}) == row["hash"]
            following = next(ordered, None) if moved_up else None
            swapped = following is not None and following["hash"] == row["prev_hash"]
            if (own_hash_right or moved_up) and not swapped:
                return broken(
                    "deleted",
                    at,
                    f"entry {at} does not link to entry {seq}: an entry was removed and the"
                    " rest renumbered, or the one before was replaced",
                )
            return broken("reordered", at, f"entry {at} is out of place in the chain")
        if not own_hash_right:
            return broken("edited", at, f"entry {at} does not match its hash")
        seq, prev, count = at, row["hash"], count + 1
        if expect_head is not None and at == expect_head[0] and prev != expect_head[1]:
            return VerifyReport(
                count - 1,
                at - 1,
                row["prev_hash"],
                "edited",
                at,
                f"entry {at} is not the recorded head: the chain was rewritten up to there",
            )
    if expect_head is not None:
        expected_seq, expected_hash = expect_head
        if expected_seq > seq:
            return broken(
                "deleted",
                expected_seq,
                f"the recorded head, entry {expected_seq}, is missing: the trail ends at"
                f" entry {seq}, so its newest entries were deleted",
            )
        if expected_seq == 0 and expected_hash != GENESIS:
            return broken("edited", 0, "the recorded head 0 must have the hash 0…0")
    return VerifyReport(count, seq, prev)


# Queries (Privacy Officers, patients) ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditRow:
    seq: int
    recorded: datetime
    action: str
    outcome: str
    principal: str
    on_behalf_of: str | None
    client_id: str | None
    purpose: str | None
    patient_id: str | None
    resource_type: str | None
    resource_id: str | None
    detail: str | None  # JSON text
    prev_hash: str
    hash: str


def query_audit(
    conn: Connection,
    *,
    patient_id: str | None = None,
    principal: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    count: int = 50,
    before_seq: int | None = None,
) -> list[AuditRow]:
    """Entries newest first, at most `count`; the next page: before_seq=<last row's seq>.

    By patient or principal, the (patient_id, seq) and (principal, seq) indexes give the
    page in index order; `since` (inclusive) and `until` (exclusive) bound `recorded`.
    """
    conditions: list[ColumnElement[bool]] = []
    if patient_id is not None:
        conditions.append(_a.patient_id == patient_id)
    if principal is not None:
        conditions.append(_a.principal == principal)
    if since is not None:
        conditions.append(_a.recorded >= since)
    if until is not None:
        conditions.append(_a.recorded < until)
    if before_seq is not None:
        conditions.append(_a.seq < before_seq)
    query = select(audit_event).where(*conditions).order_by(_a.seq.desc()).limit(count)
    return [AuditRow(**row) for row in conn.execute(query).mappings()]
