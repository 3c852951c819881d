"""The audit trail on SQLite and PostgreSQL: appends, the chain's verification, queries."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError

from opengp.access.audit import (
    AuditEntry,
    AuditRow,
    query_audit,
    to_audit_event,
    verify,
)
from opengp.fhir.validation import validate_resource
from opengp.store.sql import SqlStore
from opengp.store.sql.access_tables import audit_event
from opengp.store.sql.audit import ENTRY_COLUMNS
from tests.audit_guard import drop_guard

a = audit_event.c


def _entry(i: int = 0, **changes: Any) -> AuditEntry:
    values: dict[str, Any] = {
        "action": "read",
        "outcome": "success",
        "principal": f"staff/u{i % 3}",
        "patient_id": f"p{i % 5}",
        "resource_type": "Patient",
        "resource_id": f"p{i % 5}",
        "detail": {"n": i},
    }
    values.update(changes)
    return AuditEntry(**values)


def _rows(store: SqlStore) -> list[Any]:
    with store.engine.connect() as conn:
        return list(conn.execute(select(audit_event).order_by(a.seq)))


def _fill(store: SqlStore, n: int) -> None:
    """n entries: some in write transactions, some alone, some in batches."""
    i = 0
    while i < n:
        if i % 7 == 0:
            with store.writing() as tx:
                tx.audit(_entry(i, action="create"))
            i += 1
        elif i % 5 == 0 and i + 3 <= n:
            with store.auditing() as log:
                log.audit(_entry(i), _entry(i + 1), _entry(i + 2, action="search"))
            i += 3
        else:
            with store.auditing() as log:
                log.audit(_entry(i))
            i += 1


def _tamper(store: SqlStore, statement: Any) -> None:
    """Change the trail past its guard, then put the guard back (in one transaction: the
    PostgreSQL test database is shared by the whole session)."""
    with store.engine.begin() as conn:
        guard = drop_guard(conn)
        conn.execute(statement)
        for sql in guard:
            conn.exec_driver_sql(sql)


def test_the_trail_refuses_updates_deletes_and_truncation(store: SqlStore) -> None:
    _fill(store, 5)
    before = _rows(store)
    refused: list[Any] = [
        update(audit_event).where(a.seq == 3).values(principal="staff/someone-else"),
        update(audit_event).values(detail=None),
        delete(audit_event).where(a.seq == 5),
        delete(audit_event),
    ]
    if store.dialect == "postgresql":
        refused.append(text("TRUNCATE audit_event"))
        refused.append(text("TRUNCATE audit_event RESTART IDENTITY CASCADE"))
    for statement in refused:
        with (
            pytest.raises(DBAPIError, match="audit_event is append-only"),
            store.engine.begin() as conn,
        ):
            conn.execute(statement)
    # Through the store too: the write fails, and nothing it did is kept.
    with pytest.raises(DBAPIError, match="append-only"), store.writing() as tx:
        tx.save("Patient", "p1", {"resourceType": "Patient"}, method="POST", previous=None)
        tx.conn.execute(delete(audit_event).where(a.seq == 1))
    assert _rows(store) == before
    with store.reading() as tx:
        assert tx.conn.execute(text("SELECT count(*) FROM resource")).scalar_one() == 0
    assert verify(store.engine).entries == 5
    with store.auditing() as log:  # appending still works
        log.audit(_entry(6))
    assert verify(store.engine).entries == 6


def test_write_audits_commit_and_roll_back_with_the_write(store: SqlStore) -> None:
    with pytest.raises(RuntimeError), store.writing() as tx:
        tx.save("Patient", "p1", {"resourceType": "Patient"}, method="POST", previous=None)
        tx.audit(_entry(1, action="create"))
        raise RuntimeError("the write failed after it was audited")
    assert _rows(store) == []
    with store.writing() as tx:
        tx.save("Patient", "p1", {"resourceType": "Patient"}, method="POST", previous=None)
        tx.audit(_entry(1, action="create"))
    (row,) = _rows(store)
    assert (row.seq, row.action, row.resource_id, row.prev_hash) == (1, "create", "p1", "0" * 64)


def test_auditing_commits_its_entries_in_order_and_nothing_on_error(store: SqlStore) -> None:
    with store.auditing() as log:
        log.audit(_entry(1))
        log.audit(_entry(2), _entry(3, action="search", detail={"parameters": ["name"]}))
    assert [(r.seq, r.detail) for r in _rows(store)] == [
        (1, '{"n":1}'),
        (2, '{"n":2}'),
        (3, '{"parameters":["name"]}'),
    ]
    with pytest.raises(RuntimeError), store.auditing() as log:
        log.audit(_entry(4))
        raise RuntimeError("the response was never sent")
    with store.auditing():
        pass  # nothing to write: no transaction
    assert len(_rows(store)) == 3
    assert verify(store.engine).entries == 3


def test_a_bad_entry_fails_where_it_is_given(store: SqlStore) -> None:
    with pytest.raises(ValueError, match="principal is longer than 140"), store.auditing() as log:
        log.audit(_entry(1, principal="x" * 141))
    assert _rows(store) == []


def test_an_intact_trail_verifies_and_reports_its_head(store: SqlStore) -> None:
    _fill(store, 200)
    rows = _rows(store)
    assert [r.seq for r in rows] == list(range(1, 201))
    report = verify(store.engine)
    assert report.intact
    assert (report.entries, report.head_seq, report.head_hash) == (200, 200, rows[-1].hash)
    assert report.summary() == f"audit trail intact: 200 entries, head 200:{rows[-1].hash}"
    assert verify(store.engine, (200, rows[-1].hash)).intact
    assert verify(store.engine, (120, rows[119].hash)).intact


def test_an_empty_trail_verifies(store: SqlStore) -> None:
    report = verify(store.engine, (0, "0" * 64))
    assert report.intact
    assert (report.entries, report.head_seq) == (0, 0)


def test_an_edited_entry_is_found(store: SqlStore) -> None:
    _fill(store, 50)
    _tamper(store, update(audit_event).where(a.seq == 23).values(detail='{"n":0}'))
    report = verify(store.engine)
    assert (report.problem, report.broken_seq, report.entries) == ("edited", 23, 22)
    assert report.summary().startswith("audit trail broken at entry 23 (edited)")


def test_an_edited_and_rehashed_entry_is_found_at_the_next(store: SqlStore) -> None:
    from opengp.store.sql.audit import chain_hash

    _fill(store, 30)
    row = next(r for r in _rows(store) if r.seq == 12)
    forged = dict(row._mapping, principal="staff/someone-else")
    forged["hash"] = chain_hash(forged)
    _tamper(store, update(audit_event).where(a.seq == 12).values(forged))
    report = verify(store.engine)
    assert (report.problem, report.broken_seq) == ("deleted", 13)


def test_a_deleted_entry_is_found(store: SqlStore) -> None:
    _fill(store, 50)
    _tamper(store, delete(audit_event).where(a.seq == 30))
    report = verify(store.engine)
    assert (report.problem, report.broken_seq) == ("deleted", 30)
    assert "entry 30 missing" in report.reason


def test_a_deleted_entry_is_found_after_renumbering(store: SqlStore) -> None:
    _fill(store, 40)
    _tamper(store, delete(audit_event).where(a.seq == 30))
    for seq in range(31, 41):
        _tamper(store, update(audit_event).where(a.seq == seq).values(seq=seq - 1))
    report = verify(store.engine)
    assert (report.problem, report.broken_seq) == ("deleted", 30)


def test_reordered_entries_are_found(store: SqlStore) -> None:
    _fill(store, 50)
    first, second = (r for r in _rows(store) if r.seq in (17, 18))
    contents = [c.name for c in audit_event.columns if c.name != "seq"]
    for row, other in ((first, second), (second, first)):
        values = {name: getattr(other, name) for name in contents}
        _tamper(store, update(audit_event).where(a.seq == row.seq).values(values))
    report = verify(store.engine)
    assert (report.problem, report.broken_seq) == ("reordered", 17)


def test_deleting_the_newest_entries_needs_a_recorded_head(store: SqlStore) -> None:
    _fill(store, 20)
    recorded = verify(store.engine)
    _fill(store, 5)
    assert verify(store.engine, (recorded.head_seq, recorded.head_hash)).intact
    _tamper(store, delete(audit_event).where(a.seq >= 18))
    assert verify(store.engine).intact  # a shorter chain is still a valid chain
    report = verify(store.engine, (recorded.head_seq, recorded.head_hash))
    assert (report.problem, report.broken_seq) == ("deleted", 20)
    assert "newest entries were deleted" in report.reason


def test_a_rewritten_chain_does_not_match_the_recorded_head(store: SqlStore) -> None:
    from opengp.store.sql.audit import chain

    _fill(store, 10)
    recorded = verify(store.engine)
    # Someone with database access rewrites the whole trail consistently (no secret key).
    rows = _rows(store)
    entries = [{c: getattr(r, c) for c in ENTRY_COLUMNS} for r in rows]
    entries[3]["patient_id"] = "someone-else"
    forged = chain(entries, 0, "0" * 64, rows[0].recorded)
    _tamper(store, delete(audit_event))
    with store.engine.begin() as conn:
        conn.execute(audit_event.insert(), forged)
    assert verify(store.engine).intact
    report = verify(store.engine, (recorded.head_seq, recorded.head_hash))
    assert (report.problem, report.broken_seq) == ("edited", 10)


def test_concurrent_appenders_leave_one_gap_free_valid_chain(store: SqlStore) -> None:
    # Two stores on one database: two processes, as far as the chain can tell (on SQLite,
    # each with its own in-process write queue; on PostgreSQL, each with its own head).
    other = SqlStore.from_url(store.engine.url.render_as_string(hide_password=False))
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def appender(n: int) -> None:
        mine = store if n % 2 else other
        try:
            start.wait()
            for i in range(25):
                if i % 5 == 4:
                    with mine.writing() as tx:
                        tx.audit(_entry(n * 100 + i, action="update"))
                else:
                    with mine.auditing() as log:
                        log.audit(_entry(n * 100 + i))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=appender, args=(n,)) for n in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        other.dispose()
    assert errors == []
    rows = _rows(store)
    assert [r.seq for r in rows] == list(range(1, 201))
    assert sorted(orjson_n(r.detail) for r in rows) == sorted(
        n * 100 + i for n in range(8) for i in range(25)
    )
    report = verify(store.engine)
    assert (report.intact, report.entries) == (True, 200)


def orjson_n(detail: str) -> int:
    import orjson

    n: int = orjson.loads(detail)["n"]
    return n


def test_a_stale_head_is_caught_not_chained_to(store: SqlStore) -> None:
    _fill(store, 5)
    store.audit_chain.head = (3, "f" * 64)  # what this process last saw is out of date
    with store.auditing() as log:
        log.audit(_entry(6))
    with store.writing() as tx:
        tx.audit(_entry(7))
    assert verify(store.engine).entries == 7


@pytest.fixture
def trail(store: SqlStore) -> SqlStore:
    """Entries on three days: patient p<i % 5>, principal staff/u<i % 3>."""
    for day in range(3):
        today = datetime(2026, 11, 20 + day, 9, tzinfo=UTC)
        store.clock = lambda today=today: today  # type: ignore[misc]
        with store.auditing() as log:
            log.audit(*[_entry(day * 20 + i) for i in range(20)])
    return store


def test_query_by_patient_newest_first_with_paging(trail: SqlStore) -> None:
    with trail.engine.connect() as conn:
        first = query_audit(conn, patient_id="p2", count=5)
        second = query_audit(conn, patient_id="p2", count=5, before_seq=first[-1].seq)
        rest = query_audit(conn, patient_id="p2", count=50, before_seq=second[-1].seq)
    seqs = [r.seq for r in first + second + rest]
    assert seqs == sorted((i + 1 for i in range(60) if i % 5 == 2), reverse=True)
    assert all(isinstance(r, AuditRow) and r.patient_id == "p2" for r in first + second + rest)


def test_query_by_principal_and_date(trail: SqlStore) -> None:
    with trail.engine.connect() as conn:
        day2 = query_audit(
            conn,
            principal="staff/u1",
            since=datetime(2026, 11, 21, tzinfo=UTC),
            until=datetime(2026, 11, 22, tzinfo=UTC),
        )
        everyone = query_audit(conn, since=datetime(2026, 11, 22, tzinfo=UTC), count=100)
    assert [r.seq for r in day2] == [i + 1 for i in range(39, 19, -1) if i % 3 == 1]
    assert {r.recorded for r in day2} == {datetime(2026, 11, 21, 9, tzinfo=UTC)}
    assert [r.seq for r in everyone] == list(range(60, 40, -1))


def test_queries_by_patient_and_principal_use_their_indexes(store: SqlStore) -> None:
    with store.auditing() as log:
        log.audit(*[_entry(i, patient_id=f"p{i}", principal=f"staff/u{i}") for i in range(3000)])
    explain = "EXPLAIN QUERY PLAN" if store.dialect == "sqlite" else "EXPLAIN"
    with store.engine.connect() as conn:
        if store.dialect == "postgresql":
            conn.execute(text("ANALYZE audit_event"))
        for column, index in (
            ("patient_id", "ix_audit_patient"),
            ("principal", "ix_audit_principal"),
        ):
            plan = conn.execute(
                text(
                    f"{explain} SELECT * FROM audit_event WHERE {column} = :v AND seq < 2000"
                    " ORDER BY seq DESC LIMIT 50"
                ),
                {"v": "p7" if column == "patient_id" else "staff/u7"},
            ).all()
            detail = " ".join(str(row[-1]) for row in plan)
            assert index in detail, detail
            assert "TEMP B-TREE" not in detail and "Sort" not in detail, detail


def test_queried_entries_render_as_valid_audit_events(store: SqlStore) -> None:
    with store.writing() as tx:
        tx.audit(_entry(1, action="create", client_id="app", purpose="direct-care"))
    with store.auditing() as log:
        log.audit(
            _entry(2, action="search", resource_id=None, detail={"parameters": ["name"]}),
            _entry(3, action="break-glass", outcome="success", detail={"reason": "collapsed"}),
            _entry(4, action="denial", outcome="denied", on_behalf_of="Patient/p4"),
            AuditEntry("signin", "failed", "anonymous", detail={"reason": "bad password"}),
        )
    with store.engine.connect() as conn:
        rows = query_audit(conn)
    assert len(rows) == 5
    for row in rows:
        event = to_audit_event(row)
        validate_resource(event)
        assert event["id"] == str(row.seq)
        assert datetime.fromisoformat(event["recorded"]) - row.recorded < timedelta(milliseconds=1)


def _group_commit(store: SqlStore, fail_second: bool) -> tuple[list[Any], list[BaseException]]:
    """A writes alone and is held; meanwhile B and C gather in the next batch."""
    chain = store.audit_chain
    commit = chain._commit
    release = threading.Event()
    calls: list[Any] = []

    def held_commit(entries: Any) -> None:
        calls.append(list(entries))
        if len(calls) == 1:
            release.wait(timeout=30)
        elif fail_second:
            raise RuntimeError("database went away")
        commit(entries)

    chain._commit = held_commit  # type: ignore[method-assign]
    errors: list[BaseException] = []

    def append(i: int) -> None:
        try:
            with store.auditing() as log:
                log.audit(_entry(i))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(i,)) for i in range(3)]
    threads[0].start()
    while not calls:
        time.sleep(0.001)
    for thread in threads[1:]:
        thread.start()
        while not (chain._gathering and len(chain._gathering.entries) == threads.index(thread)):
            time.sleep(0.001)
    release.set()
    for thread in threads:
        thread.join()
    return calls, errors


def test_concurrent_reads_entries_are_committed_together(store: SqlStore) -> None:
    calls, errors = _group_commit(store, fail_second=False)
    assert errors == []
    assert [len(batch) for batch in calls] == [1, 2]
    assert [r.seq for r in _rows(store)] == [1, 2, 3]
    assert verify(store.engine).entries == 3


def test_a_failed_batch_fails_every_caller_in_it(store: SqlStore) -> None:
    calls, errors = _group_commit(store, fail_second=True)
    assert [len(batch) for batch in calls] == [1, 2]
    assert sorted(type(e).__name__ for e in errors) == ["AuditNotWritten", "RuntimeError"]
    assert [r.seq for r in _rows(store)] == [1]
