"""Bulk import of NDJSON: over HTTP ($import) and on the command line (`opengp import`).

Order-independent, ids kept, idempotent; bad lines reported by file and line; all-or-nothing
or the valid rest; never a half-written resource; a re-run after fixing the input completes.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from opengp.cli import main
from opengp.demo.load import write_ndjson
from opengp.search.extract import index_rows
from opengp.search.query import parse_query
from opengp.services.bulk import importing
from opengp.services.bulk.importing import Source, run_import
from opengp.store.migrate import upgrade
from opengp.store.sql import SqlStore, search_tables
from opengp.store.sql.dialects import make_engine
from opengp.store.sql.reindex import reindex
from opengp.store.sql.search_tables import SEARCH_TABLES, TABLE_OF, WIDTH
from opengp.store.sql.store import SqlWriteTransaction, prepare_new
from opengp.store.sql.tables import identifier_index, resource, resource_version
from tests.functional.bulk_helpers import ASYNC, PRACTICE, BulkClient, bulk_app, token

MIGRATION = "system/*.cruds"


@pytest.fixture(scope="module")
def practice(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """The synthetic practice as NDJSON lines, in generation order by type."""
    directory = tmp_path_factory.mktemp("practice")
    write_ndjson(PRACTICE, directory)
    return [
        line
        for path in sorted(directory.glob("*.ndjson"))
        for line in path.read_bytes().splitlines()
    ]


@pytest.fixture
def http(
    database_url: str, key_file: Path, tmp_path: Path, store: SqlStore
) -> Iterator[TestClient]:
    with bulk_app(database_url, key_file, tmp_path / "bulk", store) as client:
        yield client


@pytest.fixture
def importer(http: TestClient, store: SqlStore) -> BulkClient:
    return BulkClient(http, token(http, store, MIGRATION, purpose="migration"))


def _stored(store: SqlStore) -> dict[tuple[str, str], tuple[int, bytes]]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(
                resource.c.resource_type, resource.c.id, resource.c.version_id, resource.c.content
            )
        )
        return {(r.resource_type, r.id): (r.version_id, r.content) for r in rows}


def _keys(lines: list[bytes]) -> set[tuple[str, str]]:
    keys = set()
    for line in lines:
        body = orjson.loads(line)
        keys.add((body["resourceType"], body["id"]))
    return keys


def _upload(bulk: BulkClient, lines: list[bytes], mode: str | None = None) -> dict[str, Any]:
    query = f"?mode={mode}" if mode else ""
    started = bulk.http.post(
        f"/fhir/$import{query}",
        content=b"\n".join(lines) + b"\n",
        headers=bulk.headers(**{**ASYNC, "Content-Type": "application/fhir+ndjson"}),
    )
    assert started.status_code == 202, started.text
    done = bulk.wait(started.headers["content-location"])
    assert done.status_code == 200, done.text
    manifest: dict[str, Any] = done.json()
    return manifest


def _problems(bulk: BulkClient, manifest: dict[str, Any]) -> list[str]:
    [error] = manifest["error"]
    return [o["issue"][0]["diagnostics"] for o in bulk.download(error["url"])]


def _broken(practice: list[bytes]) -> tuple[list[bytes], dict[int, str]]:
    """The practice with bad lines added at the end: (lines, line number -> expected words)."""
    observation = next(orjson.loads(x) for x in practice if b'"Observation"' in x[:40])
    invalid = dict(observation, id="bad-status", status="finished-ish")
    dangling = dict(observation, id="dangling", subject={"reference": "Patient/nobody"})
    follower = dict(observation, id="follower", hasMember=[{"reference": "Observation/dangling"}])
    bad = [
        (practice[0][: len(practice[0]) // 2], "not valid JSON"),  # truncated
        (b"[1, 2, 3]", "not a JSON object"),
        (orjson.dumps({"resourceType": "Patient", "gender": "male"}), "has no id"),
        (orjson.dumps(invalid), "invalid Observation/bad-status"),
        (orjson.dumps(dangling), "Patient/nobody, which is neither in the input nor"),
        (orjson.dumps(follower), "Observation/dangling, which is not imported"),
        (practice[1], "is also at upload.ndjson line 2"),  # a duplicate id
    ]
    lines = practice + [line for line, _ in bad]
    return lines, {len(practice) + 1 + i: words for i, (_, words) in enumerate(bad)}


def test_upload_in_any_order_keeps_ids_and_a_rerun_changes_nothing(
    importer: BulkClient, store: SqlStore, practice: list[bytes]
) -> None:
    backwards = list(reversed(practice))  # references come before what they refer to
    manifest = _upload(importer, backwards)
    summary = manifest["import"]
    assert summary["loaded"] is True
    assert summary["problems"] == 0
    assert manifest["error"] == []
    counts = Counter(orjson.loads(x)["resourceType"] for x in practice)
    assert summary["created"] == dict(sorted(counts.items()))
    stored = _stored(store)
    assert set(stored) == _keys(practice)
    patient = next(orjson.loads(x) for x in practice if b'"Patient"' in x[:30])
    read = importer.http.get(f"/fhir/Patient/{patient['id']}", headers=importer.headers())
    assert read.status_code == 200
    found = importer.http.get(
        f"/fhir/Observation?subject=Patient/{patient['id']}&_summary=count",
        headers=importer.headers(),
    )
    expected = sum(
        1
        for x in practice
        if f"Patient/{patient['id']}".encode() in x and b'"Observation"' in x[:40]
    )
    assert found.json()["total"] == expected  # indexed for search, as any write is

    again = _upload(importer, practice)["import"]
    assert again["created"] == {} and again["updated"] == {}
    assert sum(again["unchanged"].values()) == len(practice)
    assert _stored(store) == stored  # not even a new version

    changed = dict(patient, gender="other" if patient.get("gender") != "other" else "female")
    edited = [
        orjson.dumps(changed) if orjson.loads(x)["id"] == patient["id"] else x for x in practice
    ]
    third = _upload(importer, edited)["import"]
    assert third["updated"] == {"Patient": 1}
    version, content = _stored(store)[("Patient", patient["id"])]
    assert version == 2
    assert orjson.loads(content)["gender"] == changed["gender"]


def test_bad_lines_are_reported_by_line_and_all_or_nothing_imports_nothing(
    importer: BulkClient, store: SqlStore, practice: list[bytes]
) -> None:
    lines, expected = _broken(practice)
    manifest = _upload(importer, lines)
    assert manifest["import"]["loaded"] is False
    assert _stored(store) == {}
    problems = _problems(importer, manifest)
    for number, words in expected.items():
        assert any(
            p.startswith(f"upload.ndjson line {number}: ") and words in p for p in problems
        ), (
            number,
            words,
        )
    # The first copy of the duplicate is reported too.
    assert any(p.startswith("upload.ndjson line 2: ") for p in problems)


def test_valid_rest_imports_the_rest_and_a_rerun_after_fixing_completes(
    importer: BulkClient, store: SqlStore, practice: list[bytes]
) -> None:
    lines, expected = _broken(practice)
    manifest = _upload(importer, lines, mode="valid-rest")
    summary = manifest["import"]
    assert summary["loaded"] is True
    rejected = {int(p.split()[2].rstrip(":")) for p in _problems(importer, manifest)}
    assert set(expected) <= rejected
    stored = _stored(store)
    assert ("Observation", "bad-status") not in stored
    assert ("Observation", "dangling") not in stored and ("Observation", "follower") not in stored
    duplicate = orjson.loads(practice[1])
    assert (duplicate["resourceType"], duplicate["id"]) not in stored  # which copy is unknown
    assert len(stored) == sum(summary["created"].values())
    # Whatever was imported refers only to what is there.
    for content in (c for _, c in stored.values()):
        for key in _references(orjson.loads(content)):
            assert key in stored

    fixed = _upload(importer, practice)
    assert fixed["import"]["problems"] == 0
    assert set(_stored(store)) == _keys(practice)


def _references(body: Any) -> Iterator[tuple[str, str]]:
    from opengp.services.bulk.checking import reference_targets

    yield from reference_targets(body)


def test_only_migration_clients_with_write_scopes_may_import(
    http: TestClient, store: SqlStore, practice: list[bytes]
) -> None:
    direct = BulkClient(http, token(http, store, MIGRATION))  # purpose direct-care
    refused = http.post(
        "/fhir/$import",
        content=practice[0],
        headers=direct.headers(**{**ASYNC, "Content-Type": "application/fhir+ndjson"}),
    )
    assert refused.status_code == 403
    assert "migration" in refused.json()["issue"][0]["diagnostics"]
    narrow = BulkClient(http, token(http, store, "system/*.rs system/Patient.cu", "migration"))
    manifest = _upload(narrow, practice, mode="valid-rest")
    # Patients refer to the practice's Organization and Practitioners, refused to this client.
    assert manifest["import"]["created"] == {}
    assert any("do not allow creating and updating" in p for p in _problems(narrow, manifest))


def test_operators_import_files_from_the_inbox_and_nowhere_else(
    importer: BulkClient, store: SqlStore, practice: list[bytes], tmp_path: Path
) -> None:
    inbox = tmp_path / "bulk" / "inbox" / "practice"
    inbox.mkdir(parents=True)
    (inbox / "all.ndjson").write_bytes(b"\n".join(practice) + b"\n")
    (tmp_path / "secret.ndjson").write_bytes(practice[0])

    def parameters(url: str) -> Any:
        body = {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "mode", "valueCode": "all-or-nothing"},
                {"name": "input", "part": [{"name": "url", "valueUrl": url}]},
            ],
        }
        return importer.http.post(
            "/fhir/$import",
            content=orjson.dumps(body),
            headers=importer.headers(**{**ASYNC, "Content-Type": "application/fhir+json"}),
        )

    escaping = parameters("../../secret.ndjson")
    assert escaping.status_code == 400
    started = parameters("practice/all.ndjson")
    assert started.status_code == 202, started.text
    done = importer.wait(started.headers["content-location"]).json()
    assert done["import"]["loaded"] is True
    assert set(_stored(store)) == _keys(practice)
    assert (inbox / "all.ndjson").exists()  # the operator's file is left alone


def test_import_requests_are_checked_before_anything_is_read(importer: BulkClient) -> None:
    headers = importer.headers(**{**ASYNC, "Content-Type": "text/csv"})
    assert importer.http.post("/fhir/$import", content=b"a,b", headers=headers).status_code == 415
    headers["Content-Type"] = "application/fhir+ndjson"
    bad_mode = importer.http.post("/fhir/$import?mode=some", content=b"{}", headers=headers)
    assert bad_mode.status_code == 400
    empty = importer.http.post("/fhir/$import", content=b"", headers=headers)
    assert empty.status_code == 400
    plain = importer.headers(**{"Content-Type": "application/fhir+ndjson"})
    assert importer.http.post("/fhir/$import", content=b"{}", headers=plain).status_code == 400


def test_a_failure_while_loading_leaves_nothing_half_written(
    store: SqlStore, practice: list[bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "all.ndjson"
    path.write_bytes(b"\n".join(practice) + b"\n")
    calls = Counter[str]()
    insert_new = SqlWriteTransaction.insert_new

    def failing(tx: SqlWriteTransaction, ready: Any) -> None:
        calls["created"] += len(ready)
        if calls["created"] > 300:  # some batches in
            raise RuntimeError("the disk is full")
        insert_new(tx, ready)

    monkeypatch.setattr(SqlWriteTransaction, "insert_new", failing)
    monkeypatch.setattr(importing, "LOAD_BATCH", 100)
    for mode in importing.MODES:  # a clean input is loaded in one transaction: rolled back whole
        calls.clear()
        with pytest.raises(RuntimeError):
            run_import(store, [Source("all.ndjson", path)], mode, tmp_path / "work")
        assert _stored(store) == {}
    # With a line that has a problem, valid-rest loads the rest in batches after checking.
    path.write_bytes(b"\n".join([b"{not json", *practice]) + b"\n")
    calls.clear()
    with pytest.raises(RuntimeError):
        run_import(store, [Source("all.ndjson", path)], "valid-rest", tmp_path / "work")
    partial = _stored(store)
    assert partial  # the batches before the failure
    for key, (_, content) in partial.items():
        assert orjson.loads(content)["id"] == key[1]  # whole resources only
    monkeypatch.setattr(SqlWriteTransaction, "insert_new", insert_new)
    result = run_import(store, [Source("all.ndjson", path)], "valid-rest", tmp_path / "work")
    assert sum(result.unchanged.values()) == len(partial)
    assert set(_stored(store)) == _keys(practice)


def test_the_import_command_reports_lines_and_honours_the_mode(
    database_url: str,
    store: SqlStore,
    practice: list[bytes],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    directory = tmp_path / "input"
    directory.mkdir()
    lines, expected = _broken(practice)
    (directory / "Practice.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    assert main(["import", str(directory), "--database", database_url, "--workers", "1"]) == 1
    err = capsys.readouterr().err
    first = min(expected)
    assert f"Practice.ndjson line {first}: not valid JSON" in err
    assert "nothing was imported" in err
    assert _stored(store) == {}
    report = directory / "import-report.ndjson"
    assert len(report.read_bytes().splitlines()) >= len(expected)

    args = ["import", str(directory), "--database", database_url, "--mode", "valid-rest"]
    assert main(args) == 1
    assert "lines were not imported" in capsys.readouterr().err
    assert _stored(store)
    (directory / "Practice.ndjson").write_bytes(b"\n".join(practice) + b"\n")
    assert main(args) == 0
    assert "unchanged" in capsys.readouterr().out
    assert set(_stored(store)) == _keys(practice)
    assert not report.exists()


def test_two_imports_of_the_same_practice_at_once_write_each_resource_once(
    store: SqlStore, practice: list[bytes], tmp_path: Path
) -> None:
    path = tmp_path / "all.ndjson"
    path.write_bytes(b"\n".join(practice) + b"\n")
    results: list[importing.ImportResult] = []

    def run(name: str) -> None:
        source = [Source("all.ndjson", path)]
        results.append(run_import(store, source, "all-or-nothing", tmp_path / name))

    threads = [threading.Thread(target=run, args=(f"work{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(results) == 2
    created = sum(sum(r.created.values()) for r in results)
    unchanged = sum(sum(r.unchanged.values()) for r in results)
    assert (created, unchanged) == (len(practice), len(practice))
    assert {version for version, _ in _stored(store).values()} == {1}


def _index_rows(store: SqlStore) -> dict[str, list[tuple[Any, ...]]]:
    with store.engine.connect() as conn:
        return {
            table.name: sorted(map(tuple, conn.execute(select(table))), key=repr)
            for table in (*SEARCH_TABLES, identifier_index)
        }


@pytest.mark.parametrize("mode", importing.MODES)
def test_worker_processes_prepare_exactly_what_this_process_would(
    store: SqlStore,
    practice: list[bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    """`opengp import` parses, normalises and indexes the next batches in other processes
    while it writes: the same resources, versions and index rows as indexing them here."""
    path = tmp_path / "all.ndjson"
    path.write_bytes(b"\n".join(practice) + b"\n")
    monkeypatch.setattr(importing, "PARALLEL_FROM_BYTES", 0)
    monkeypatch.setattr(importing, "LOAD_BATCH", 150)
    result = run_import(store, [Source("all.ndjson", path)], mode, tmp_path / "w", workers=2)  # type: ignore[arg-type]
    assert result.loaded and result.counts()["created"] == len(practice)
    assert set(_stored(store)) == _keys(practice)
    with store.engine.connect() as conn:
        versions = conn.execute(select(resource_version.c.version_id, resource_version.c.method))
        assert set(versions) == {(1, "POST")}
    prepared = _index_rows(store)
    assert reindex(store) == len(practice)  # the index rows made again, here, one by one
    assert _index_rows(store) == prepared


@pytest.mark.parametrize("in_one_statement", [True, False])
def test_rows_reach_the_database_exactly_as_made(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch, in_one_statement: bool
) -> None:
    """Rows travel to the database encoded (JSON on SQLite, binary COPY on PostgreSQL): every
    value comes back as it was made, the content byte for byte. SQLite inserts a batch's rows
    in one statement, a few rows one at a time: both ways."""
    monkeypatch.setattr(search_tables, "JSON_EACH_FROM", 0 if in_one_statement else 10**9)
    odd = 'O\'Brien "Jr" \\ back\nslash \u00e9\u0301 \U0001f600 \t'
    patient = {
        "resourceType": "Patient",
        "id": "p-1",
        "name": [{"family": odd, "given": ["x" * 300]}],
        "birthDate": "1970-01-31",
    }
    observation = {
        "resourceType": "Observation",
        "id": "o-1",
        "status": "final",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "27113001"}]},
        "subject": {"reference": "Patient/p-1"},
        "effectiveDateTime": "2026-03-04T05:06:07.891+01:00",
        "valueQuantity": {"value": Decimal("123456789.123456789"), "unit": "kg"},
    }
    now = datetime(2026, 11, 21, 12, 0, 0, 123000, tzinfo=UTC)
    ready = [prepare_new(body, now, store.dialect) for body in (patient, observation)]
    with store.writing(bulk=True) as tx:
        tx.insert_new(ready)
    contents = {(r.resource_type, r.id): r.content for r in ready}
    assert {key: content for key, (_, content) in _stored(store).items()} == contents
    with store.engine.connect() as conn:
        versions = conn.execute(select(resource_version.c.id, resource_version.c.content))
        by_id = {id: content for (_, id), content in contents.items()}
        assert {row.id: row.content for row in versions} == by_id
    expected: dict[str, set[tuple[Any, ...]]] = {}
    for body in (patient, observation):
        for row in index_rows(body):
            values = [float(v) if isinstance(v, Decimal) else v for v in row]
            values = [v[:WIDTH] if isinstance(v, str) else v for v in values]
            table = TABLE_OF[type(row)].name
            expected.setdefault(table, set()).add((body["resourceType"], body["id"], *values))
    stored = {name: set(rows) for name, rows in _index_rows(store).items() if rows}
    assert {name: stored[name] for name in expected} == expected
    assert any(odd in row for row in stored["search_string"])  # not only in the expectation


def _journal(path: Path) -> str:
    with closing(sqlite3.connect(path)) as conn:
        mode: str = conn.execute("PRAGMA journal_mode").fetchone()[0]
        return mode


def test_a_load_into_a_new_sqlite_database_runs_without_the_wal_and_puts_it_back(
    practice: list[bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Into an empty SQLite database that nothing else has open, a load runs with a
    rollback journal (each page written once); other connections may still open it and
    read; afterwards, committed or rolled back, the database is in WAL mode again. With
    another connection open, the load keeps the WAL."""

    def new_database(name: str) -> tuple[Path, SqlStore]:
        database = tmp_path / name
        engine = make_engine(f"sqlite:///{database}")
        upgrade(engine)
        engine.dispose()
        return database, SqlStore.from_url(f"sqlite:///{database}")

    database, store = new_database("new.db")
    path = tmp_path / "all.ndjson"
    path.write_bytes(b"\n".join(practice) + b"\n")
    modes: list[str] = []
    insert_new = SqlWriteTransaction.insert_new

    def watched(tx: SqlWriteTransaction, ready: Any, fail: bool = False) -> None:
        modes.append(str(tx.conn.exec_driver_sql("PRAGMA journal_mode").scalar()))
        other = SqlStore.from_url(f"sqlite:///{database}")  # opens while the load runs
        with other.reading() as reading:
            assert reading.read_many("Patient", ["nobody"]) == []
        other.dispose()
        if fail:
            raise RuntimeError("the disk is full")
        insert_new(tx, ready)

    def failing(tx: SqlWriteTransaction, ready: Any) -> None:
        watched(tx, ready, fail=True)

    def load() -> None:
        run_import(store, [Source("all.ndjson", path)], "all-or-nothing", tmp_path / "w")

    with monkeypatch.context() as patched:
        patched.setattr(SqlWriteTransaction, "insert_new", failing)
        with pytest.raises(RuntimeError):
            load()
    assert modes == ["delete"] and _journal(database) == "wal" and _stored(store) == {}
    modes.clear()
    with closing(sqlite3.connect(database)) as other:  # another connection has it open
        other.execute("SELECT count(*) FROM resource").fetchone()
        monkeypatch.setattr(SqlWriteTransaction, "insert_new", watched)
        load()
    assert set(modes) == {"wal"} and _journal(database) == "wal"
    assert set(_stored(store)) == _keys(practice)
    store.dispose()
    database, store = new_database("newer.db")
    modes.clear()
    # Opens and reads during the load, and is still open at its end.
    lingering = sqlite3.connect(database, check_same_thread=False, isolation_level=None)

    def read_meanwhile(tx: SqlWriteTransaction, ready: Any) -> None:
        assert lingering.execute("SELECT count(*) FROM resource").fetchone() == (0,)
        watched(tx, ready)

    monkeypatch.setattr(SqlWriteTransaction, "insert_new", read_meanwhile)
    load()
    assert set(modes) == {"delete"} and set(_stored(store)) == _keys(practice)
    assert _journal(database) == "wal"
    lingering.close()


def test_a_load_into_a_new_sqlite_database_killed_part_way_leaves_it_empty(
    tmp_path: Path,
) -> None:
    """kill -9 of `opengp import` while it loads without the WAL: the database opens again
    empty and in WAL mode (its rollback journal undone), and the import run again completes."""
    directory = tmp_path / "practice"
    directory.mkdir()
    write_ndjson(PRACTICE, directory)
    database = tmp_path / "new.db"
    url = f"sqlite:///{database}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    command = [sys.executable, "-m", "opengp", "import", str(directory), "--database", url]
    journal = tmp_path / "new.db-journal"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not journal.exists() and process.poll() is None:
            time.sleep(0.002)
        assert process.poll() is None, "the import ended before it was seen loading"
        process.kill()
    finally:
        process.wait()
    store = SqlStore.from_url(url)
    try:
        assert _stored(store) == {}
        with store.reading() as tx:
            assert tx.conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        assert _journal(database) == "wal"
        assert main(["import", str(directory), "--database", url]) in (0, None)
        lines = [
            line for path in directory.glob("*.ndjson") for line in path.read_bytes().splitlines()
        ]
        assert set(_stored(store)) == _keys(lines)
    finally:
        store.dispose()


def _schema(store: SqlStore) -> set[str]:
    """Every index (and on SQLite, trigger) definition in the database."""
    with store.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            query = "SELECT type || ' ' || name || ' ' || coalesce(sql, '') FROM sqlite_master"
        else:
            query = "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema()"
        return set(conn.exec_driver_sql(query).scalars())


def test_an_import_into_an_empty_database_builds_the_search_indexes_after_loading(
    store: SqlStore, practice: list[bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The indexes are dropped while an empty database is loaded and built again after:
    the same definitions afterwards, also after a failed load, and the words searchable."""
    schema = _schema(store)
    path = tmp_path / "all.ndjson"
    path.write_bytes(b"\n".join(practice) + b"\n")

    def failing(tx: SqlWriteTransaction, ready: Any) -> None:
        raise RuntimeError("the disk is full")

    with monkeypatch.context() as patched:
        patched.setattr(SqlWriteTransaction, "insert_new", failing)
        with pytest.raises(RuntimeError):
            run_import(store, [Source("all.ndjson", path)], "all-or-nothing", tmp_path / "w")
    assert _schema(store) == schema and _stored(store) == {}
    run_import(store, [Source("all.ndjson", path)], "all-or-nothing", tmp_path / "w")
    assert _schema(store) == schema
    patient = next(orjson.loads(line) for line in practice if b'"Patient"' in line)
    family = patient["name"][0]["family"]
    with store.reading() as tx:
        query = parse_query("Patient", [("_content", family)], strict=True)
        assert patient["id"] in tx.find(query, 1000)
