"""Races and crashes against a real `opengp serve` process, on both databases."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2 as httpx
import orjson
import pytest

from tests.functional.conftest import FHIR_JSON, NHS_NUMBER, patient
from tests.functional.server import Server

pytestmark = pytest.mark.slow
HEADERS = {"Content-Type": FHIR_JSON}


@pytest.fixture
def server(database_url: str, tmp_path: Path, key_file: Path) -> Iterator[Server]:
    running = Server(database_url, tmp_path / "serve.log", key_file, workers=2).start()
    yield running
    running.stop()


def _together(count: int, work: Any) -> list[Any]:
    """Run `work(i)` on `count` threads released at the same moment."""
    barrier = threading.Barrier(count)

    def run(i: int) -> Any:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def test_twenty_parallel_conditional_creates_make_exactly_one(server: Server) -> None:
    body = orjson.dumps(patient(nhs_number="9000000009"))
    headers = {**HEADERS, "If-None-Exist": f"identifier={NHS_NUMBER}|9000000009"}
    limits = httpx.Limits(max_connections=20)
    auth = server.authorization()
    with httpx.Client(base_url=server.url, timeout=60, limits=limits, headers=auth) as client:
        responses = _together(
            20, lambda _: client.post("/fhir/Patient", content=body, headers=headers)
        )
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200] * 19 + [201], [r.text for r in responses if r.status_code >= 300]
        ids = {r.json()["id"] for r in responses}
        assert len(ids) == 1
        found = client.get(f"/fhir/Patient?identifier={NHS_NUMBER}|9000000009").json()
        assert found["total"] == 1


def test_two_updates_of_the_same_version_one_wins_one_gets_412(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=60, headers=server.authorization()) as client:
        for round in range(5):
            created = client.post(
                "/fhir/Patient", content=orjson.dumps(patient()), headers=HEADERS
            ).json()
            url = f"/fhir/Patient/{created['id']}"

            def update(i: int, created: Any = created, url: str = url) -> httpx.Response:
                changed = {**created, "gender": ["male", "other"][i]}
                headers = {**HEADERS, "If-Match": 'W/"1"'}
                return client.put(url, content=orjson.dumps(changed), headers=headers)

            statuses = sorted(r.status_code for r in _together(2, update))
            assert statuses == [200, 412], f"round {round}: {statuses}"
            assert client.get(url).json()["meta"]["versionId"] == "2"


def test_acknowledged_writes_survive_kill_9(
    database_url: str, tmp_path: Path, key_file: Path
) -> None:
    server = Server(database_url, tmp_path / "serve.log", key_file).start()
    auth = server.authorization()
    acknowledged: list[str] = []
    stop = threading.Event()

    def write_until_killed() -> None:
        with httpx.Client(base_url=server.url, timeout=10, headers=auth) as client:
            while not stop.is_set():
                try:
                    response = client.post(
                        "/fhir/Patient", content=orjson.dumps(patient()), headers=HEADERS
                    )
                except httpx.TransportError:
                    return  # the server died mid-request: that write was never acknowledged
                if response.status_code == 201:
                    acknowledged.append(response.json()["id"])

    writer = threading.Thread(target=write_until_killed)
    writer.start()
    while len(acknowledged) < 30:
        threading.Event().wait(0.02)
    server.kill_hard()
    stop.set()
    writer.join(timeout=30)
    restarted = Server(database_url, tmp_path / "serve2.log", key_file).start()
    try:
        again = restarted.authorization()
        with httpx.Client(base_url=restarted.url, timeout=10, headers=again) as client:
            missing = [
                i for i in acknowledged if client.get(f"/fhir/Patient/{i}").status_code != 200
            ]
        assert missing == [], f"{len(missing)} of {len(acknowledged)} acknowledged writes lost"
    finally:
        restarted.stop()
