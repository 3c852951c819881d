"""FHIR Bulk Data export over HTTP: kick-off, polling, manifest, files, scope, cancel, expiry."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx2 as httpx
import orjson
import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient

from opengp.access.principal import Principal
from opengp.fhir.datetimes import instant
from opengp.fhir.errors import Forbidden
from opengp.services.bulk.jobs import JobRunner, job_lock
from opengp.services.bulk.requests import BulkRequests
from opengp.store.sql import SqlStore
from opengp.store.sql import bulk as sql
from opengp.store.sql.bulk_tables import bulk_job
from opengp.store.sql.tables import resource
from tests.functional.bulk_helpers import (
    ASYNC,
    PRACTICE,
    BulkClient,
    bulk_app,
    local,
    seeded,
    token,
)
from tests.functional.server import Server

SYSTEM_READ = "system/*.rs"


@pytest.fixture
def http(
    database_url: str, key_file: Path, tmp_path: Path, store: SqlStore
) -> Iterator[TestClient]:
    seeded(store)
    with bulk_app(database_url, key_file, tmp_path / "bulk", store) as client:
        yield client


@pytest.fixture
def bulk(http: TestClient, store: SqlStore) -> BulkClient:
    return BulkClient(http, token(http, store, SYSTEM_READ))


def _stored(store: SqlStore) -> dict[str, dict[str, bytes]]:
    """Live resources' stored content by type and id."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(resource.c.resource_type, resource.c.id, resource.c.content).where(
                ~resource.c.deleted
            )
        )
        found: dict[str, dict[str, bytes]] = {}
        for row in rows:
            found.setdefault(row.resource_type, {})[row.id] = row.content
        return found


def _ids(lines: list[dict[str, Any]]) -> set[str]:
    return {line["id"] for line in lines}


def _patients(store: SqlStore) -> list[str]:
    return sorted(_stored(store)["Patient"])


def _group(bulk: BulkClient, members: list[tuple[str, bool]]) -> str:
    body = {
        "resourceType": "Group",
        "type": "person",
        "actual": True,
        "name": "Registered patients",
        "member": [
            {"entity": {"reference": f"Patient/{id}"}, **({"inactive": True} if off else {})}
            for id, off in members
        ],
    }
    response = bulk.http.post(
        "/fhir/Group",
        content=orjson.dumps(body),
        headers=bulk.headers(**{"Content-Type": "application/fhir+json"}),
    )
    assert response.status_code == 201, response.text
    created: str = response.json()["id"]
    return created


def test_system_export_streams_every_stored_resource_as_it_is_stored(
    bulk: BulkClient, store: SqlStore
) -> None:
    started = bulk.kick_off("/fhir/$export")
    assert started.status_code == 202
    location = started.headers["content-location"]
    assert location.startswith("https://testserver/fhir/bulk/")
    manifest = bulk.run("/fhir/$export")
    assert manifest["requiresAccessToken"] is True
    assert manifest["request"] == "https://testserver/fhir/$export"
    assert datetime.fromisoformat(manifest["transactionTime"].replace("Z", "+00:00"))
    assert manifest["error"] == []
    stored = _stored(store)
    assert {o["type"]: o["count"] for o in manifest["output"]} == {
        t: len(ids) for t, ids in stored.items()
    }
    for output in manifest["output"]:
        response = bulk.http.get(local(output["url"]), headers=bulk.headers())
        lines = response.content.splitlines()
        # The stored bytes are the lines: nothing parsed or re-serialised.
        assert sorted(lines) == sorted(stored[output["type"]].values())
        assert int(response.headers["content-length"]) == len(response.content)
    assert bulk.wait(location).status_code == 200  # the first job finished too


def test_kick_off_needs_respond_async_and_a_token(bulk: BulkClient) -> None:
    plain = bulk.http.get("/fhir/$export", headers=bulk.headers())
    assert plain.status_code == 400
    assert "Prefer: respond-async" in plain.json()["issue"][0]["diagnostics"]
    anonymous = bulk.http.get("/fhir/$export", headers=ASYNC)
    assert anonymous.status_code == 401
    xml = bulk.kick_off("/fhir/$export", Accept="application/fhir+xml")
    assert xml.status_code == 406


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("_outputFormat=text/csv", "_outputFormat"),
        ("_type=Spaceship", "Spaceship"),
        ("_since=yesterday", "_since"),
        ("_typeFilter=Observation?colour=red", "colour"),
        ("_typeFilter=Observation?_count=5", "_count"),
        ("_type=Patient&_typeFilter=Observation?status=final", "_type leaves out"),
        ("_elements=id", "_elements"),
    ],
)
def test_bad_parameters_are_refused_by_name(bulk: BulkClient, query: str, problem: str) -> None:
    response = bulk.kick_off(f"/fhir/$export?{query}")
    assert response.status_code == 400, response.text
    assert problem in response.json()["issue"][0]["diagnostics"]


def test_lenient_handling_ignores_unsupported_parameters(bulk: BulkClient) -> None:
    manifest = bulk.run(
        "/fhir/$export?_type=Patient&_elements=id", Prefer="respond-async, handling=lenient"
    )
    assert [o["type"] for o in manifest["output"]] == ["Patient"]


def test_type_since_and_type_filter_choose_what_is_exported(
    bulk: BulkClient, store: SqlStore
) -> None:
    manifest = bulk.run(
        "/fhir/$export?_type=Patient,Observation&_outputFormat=application/fhir%2Bndjson"
    )
    assert sorted(o["type"] for o in manifest["output"]) == ["Observation", "Patient"]

    # _since: only what changed after the instant.
    time.sleep(0.01)
    since = instant(datetime.now(UTC))
    time.sleep(0.01)
    patient_id = _patients(store)[0]
    current = orjson.loads(_stored(store)["Patient"][patient_id])
    current["gender"] = "unknown" if current.get("gender") != "unknown" else "other"
    changed = bulk.http.put(
        f"/fhir/Patient/{patient_id}",
        content=orjson.dumps(current),
        headers=bulk.headers(**{"Content-Type": "application/fhir+json"}),
    )
    assert changed.status_code == 403  # read-only scopes; write with a full-access client
    writer = BulkClient(bulk.http, token(bulk.http, store, "system/*.cruds"))
    changed = writer.http.put(
        f"/fhir/Patient/{patient_id}",
        content=orjson.dumps(current),
        headers=writer.headers(**{"Content-Type": "application/fhir+json"}),
    )
    assert changed.status_code == 200, changed.text
    since = since.replace("+", "%2B")
    recent = bulk.files(bulk.run(f"/fhir/$export?_type=Patient,Observation&_since={since}"))
    assert list(recent) == ["Patient"]
    assert _ids(recent["Patient"]) == {patient_id}

    # _typeFilter: only what matches the search, as the same search over the API finds it.
    search = "Observation?status=final&category=vital-signs"
    query = urlencode({"_type": "Observation", "_typeFilter": search})
    filtered = bulk.files(bulk.run(f"/fhir/$export?{query}"))
    found = bulk.http.get(f"/fhir/{search}&_count=1000&_elements=id", headers=bulk.headers())
    expected = {e["resource"]["id"] for e in found.json().get("entry", [])}
    assert expected
    assert _ids(filtered.get("Observation", [])) == expected


def test_patient_export_is_the_patient_compartment(bulk: BulkClient, store: SqlStore) -> None:
    files = bulk.files(bulk.run("/fhir/Patient/$export"))
    assert "Practitioner" not in files and "Organization" not in files
    stored = _stored(store)
    assert _ids(files["Patient"]) == set(stored["Patient"])
    assert _ids(files["Observation"]) == set(stored["Observation"])
    refused = bulk.kick_off("/fhir/Patient/$export?_type=Practitioner")
    assert refused.status_code == 400
    wrong = bulk.kick_off("/fhir/Observation/$export")
    assert wrong.status_code == 404


def test_group_export_holds_the_active_members_records(bulk: BulkClient, store: SqlStore) -> None:
    writer = BulkClient(bulk.http, token(bulk.http, store, "system/*.cruds"))
    first, second, left = _patients(store)[:3]
    group = _group(writer, [(first, False), (second, False), (left, True)])
    files = bulk.files(bulk.run(f"/fhir/Group/{group}/$export"))
    assert _ids(files["Patient"]) == {first, second}
    # The Group itself is in its members' compartments (Group.member), and names all three.
    assert _ids(files.pop("Group")) == {group}
    for kind, lines in files.items():
        for body in lines:
            text = orjson.dumps(body).decode()
            assert first in text or second in text, f"{kind}/{body['id']} is not a member's"
            assert left not in text
    assert "Observation" in files
    missing = bulk.kick_off("/fhir/Group/no-such-group/$export")
    assert missing.status_code == 404


def test_scopes_limit_the_export_and_only_system_clients_may_ask(
    http: TestClient, store: SqlStore, tmp_path: Path
) -> None:
    narrow = BulkClient(http, token(http, store, "system/Patient.rs system/Observation.rs"))
    manifest = narrow.run("/fhir/$export")
    assert sorted(o["type"] for o in manifest["output"]) == ["Observation", "Patient"]
    refused = narrow.kick_off("/fhir/$export?_type=Patient,Condition")
    assert refused.status_code == 403
    assert "Condition" in refused.json()["issue"][0]["diagnostics"]
    # A user, however senior, cannot: an export reads every patient's record.
    requests = BulkRequests(store, JobRunner(store, tmp_path / "other"))
    gp = Principal(
        "staff", "u1", "Dr A", roles=frozenset({"R8000"}), scopes=frozenset({"user/*.cruds"})
    )
    with pytest.raises(Forbidden, match="system clients"):
        requests.export(gp, "system", [], base="https://testserver/fhir", url="x")


def test_jobs_are_private_to_their_client_and_files_need_the_token(
    bulk: BulkClient, store: SqlStore
) -> None:
    started = bulk.kick_off("/fhir/$export?_type=Patient")
    location = started.headers["content-location"]
    manifest = bulk.wait(location).json()
    file_url = local(manifest["output"][0]["url"])
    assert bulk.http.get(file_url).status_code == 401
    other = BulkClient(bulk.http, token(bulk.http, store, SYSTEM_READ))
    assert other.http.get(local(location), headers=other.headers()).status_code == 404
    assert other.http.get(file_url, headers=other.headers()).status_code == 404
    assert other.http.delete(local(location), headers=other.headers()).status_code == 404
    assert bulk.http.get(file_url + "x", headers=bulk.headers()).status_code == 404


def test_polling_reports_progress_and_delete_cancels(
    bulk: BulkClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(JobRunner, "wake", lambda self: None)  # hold the job in the queue
    started = bulk.kick_off("/fhir/$export")
    location = local(started.headers["content-location"])
    waiting = bulk.http.get(location, headers=bulk.headers())
    assert waiting.status_code == 202
    assert waiting.headers["x-progress"] == "queued"
    assert waiting.headers["retry-after"]
    assert bulk.http.delete(location, headers=bulk.headers()).status_code == 202
    assert bulk.http.get(location, headers=bulk.headers()).status_code == 404
    assert not (tmp_path / "bulk" / location.rsplit("/", 1)[-1]).exists()


def test_cancelling_a_finished_job_deletes_its_files(bulk: BulkClient, tmp_path: Path) -> None:
    started = bulk.kick_off("/fhir/$export?_type=Patient")
    location = started.headers["content-location"]
    manifest = bulk.wait(location).json()
    job_dir = tmp_path / "bulk" / location.rsplit("/", 1)[-1]
    assert (job_dir / "files" / "Patient.ndjson").exists()
    assert bulk.http.delete(local(location), headers=bulk.headers()).status_code == 202
    assert not job_dir.exists()
    file_url = local(manifest["output"][0]["url"])
    assert bulk.http.get(file_url, headers=bulk.headers()).status_code == 404


def test_finished_jobs_expire_and_their_files_are_deleted(
    bulk: BulkClient, store: SqlStore, tmp_path: Path
) -> None:
    started = bulk.kick_off("/fhir/$export?_type=Patient")
    location = started.headers["content-location"]
    done = bulk.wait(location)
    assert datetime.strptime(done.headers["expires"], "%a, %d %b %Y %H:%M:%S GMT")
    job_id = location.rsplit("/", 1)[-1]
    with store.writing() as tx:
        past = datetime.now(UTC) - timedelta(seconds=1)
        tx.conn.execute(update(bulk_job).where(bulk_job.c.id == job_id).values(expires=past))
    assert bulk.http.get(local(location), headers=bulk.headers()).status_code == 404
    file_url = local(done.json()["output"][0]["url"])
    assert bulk.http.get(file_url, headers=bulk.headers()).status_code == 404
    deadline = time.monotonic() + 10
    while True:  # the runner (started by the polls) sweeps expired jobs
        with store.reading() as tx:
            status = tx.conn.scalar(select(bulk_job.c.status).where(bulk_job.c.id == job_id))
        if status == "expired":
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    assert not (tmp_path / "bulk" / job_id).exists()


def test_post_kick_off_takes_parameters_and_exports_are_audited(
    bulk: BulkClient, store: SqlStore
) -> None:
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "_type", "valueString": "Patient"}],
    }
    started = bulk.http.post(
        "/fhir/$export",
        content=orjson.dumps(body),
        headers=bulk.headers(**{**ASYNC, "Content-Type": "application/fhir+json"}),
    )
    assert started.status_code == 202, started.text
    manifest = bulk.wait(started.headers["content-location"]).json()
    assert [o["type"] for o in manifest["output"]] == ["Patient"]
    bulk.download(manifest["output"][0]["url"])
    refused = bulk.kick_off("/fhir/$export?_type=Nothing")
    assert refused.status_code == 400
    from opengp.store.sql.access_tables import audit_event

    with store.engine.connect() as conn:
        rows = conn.execute(
            select(audit_event.c.outcome, audit_event.c.detail).where(
                audit_event.c.action == "export"
            )
        ).all()
    polls = [r for r in rows if '"poll"' in (r.detail or "")]
    counts = Counter(r.outcome for r in rows if r not in polls)
    # kick-off, completion, download; the refused kick-off; and each poll of the job.
    assert counts["success"] == 3
    assert counts["failed"] == 1
    assert polls and all(r.outcome == "success" for r in polls)


def test_a_job_abandoned_by_a_dead_process_is_run_again_and_a_live_one_is_left(
    store: SqlStore, tmp_path: Path
) -> None:
    seeded(store)
    runner = JobRunner(store, tmp_path / "bulk")
    runner.wake = lambda: None  # type: ignore[method-assign]  # this test runs the queue itself
    requests = BulkRequests(store, runner)
    client = Principal("system", "c1", "c1", scopes=frozenset({SYSTEM_READ}))
    base = "https://testserver/fhir"
    job_id = requests.export(client, "system", [("_type", "Patient")], base=base, url="x")
    with store.writing() as tx:  # claimed by a process that then died (its lock is gone)
        assert sql.move_job(tx.conn, job_id, "queued", "running")
    with job_lock(runner.job_directory(job_id)) as held:  # ... or is alive: it holds the lock
        assert held
        assert runner.run_next() is False
        assert requests.status(client, job_id).status == "running"
    assert runner.run_next() is True  # the lock is free: the job is started over
    done = requests.status(client, job_id)
    assert done.status == "completed"
    assert done.manifest is not None
    assert done.manifest["output"][0]["count"] == PRACTICE.patients


@pytest.mark.slow
def test_a_real_server_with_two_workers_runs_an_export(
    database_url: str,
    store: SqlStore,
    key_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seeded(store)
    monkeypatch.setenv("OPENGP_BULK_DIR", str(tmp_path / "bulk"))
    server = Server(database_url, tmp_path / "serve.log", key_file, workers=2).start()
    try:
        auth = server.authorization(SYSTEM_READ)
        started = httpx.get(f"{server.url}/fhir/$export", headers={**auth, **ASYNC})
        assert started.status_code == 202, started.text
        deadline = time.monotonic() + 60
        while (
            status := httpx.get(started.headers["content-location"], headers=auth)
        ).status_code == 202:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert status.status_code == 200, status.text
        counts = {o["type"]: o["count"] for o in status.json()["output"]}
        assert counts["Patient"] == PRACTICE.patients
        url = next(o["url"] for o in status.json()["output"] if o["type"] == "Patient")
        lines = httpx.get(url, headers=auth).content.splitlines()
        assert len(lines) == PRACTICE.patients
    finally:
        server.stop()
