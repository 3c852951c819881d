"""A Bulk Data client for tests: kick-off, poll, download (the asynchronous pattern)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import orjson
from starlette.testclient import TestClient

from opengp.access.clients import register_client
from opengp.app import create_app
from opengp.config import Settings
from opengp.demo.load import seed
from opengp.demo.model import DemoConfig
from opengp.services.bulk.jobs import THREAD_NAME
from opengp.store.sql import SqlStore
from tests.functional.conftest import BASE

PRACTICE = DemoConfig(patients=20, seed=5, as_of=date(2026, 11, 1))
ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


def token(http: TestClient, store: SqlStore, scopes: str, purpose: str = "direct-care") -> str:
    with store.writing() as tx:
        client_id, secret = register_client(tx.conn, "bulk tests", scopes, purpose=purpose)
    form = {"grant_type": "client_credentials", "scope": scopes}
    response = http.post("/oauth2/token", data=form, auth=(client_id, secret or ""))
    assert response.status_code == 200, response.text
    issued: str = response.json()["access_token"]
    return issued


def local(url: str) -> str:
    return url.removeprefix(BASE)


class BulkClient:
    def __init__(self, http: TestClient, bearer: str) -> None:
        self.http = http
        self.bearer = bearer

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.bearer}", **extra}

    def kick_off(self, url: str, **extra: str) -> Any:
        return self.http.get(url, headers=self.headers(**{**ASYNC, **extra}))

    def wait(self, location: str, timeout: float = 60) -> Any:
        """Poll the status URL until the job is no longer running."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.http.get(local(location), headers=self.headers())
            if response.status_code != 202:
                return response
            assert response.headers["x-progress"]
            assert time.monotonic() < deadline, "the bulk job did not finish"
            time.sleep(0.05)

    def run(self, url: str, **extra: str) -> dict[str, Any]:
        """Kick off and wait: the manifest."""
        started = self.kick_off(url, **extra)
        assert started.status_code == 202, started.text
        done = self.wait(started.headers["content-location"])
        assert done.status_code == 200, done.text
        manifest: dict[str, Any] = done.json()
        return manifest

    def download(self, url: str) -> list[dict[str, Any]]:
        response = self.http.get(local(url), headers=self.headers())
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/fhir+ndjson")
        return [orjson.loads(line) for line in response.content.splitlines()]

    def files(self, manifest: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
        return {o["type"]: self.download(o["url"]) for o in manifest["output"]}


@contextmanager
def bulk_app(
    database_url: str, key_file: Path, bulk_dir: Path, store: SqlStore
) -> Iterator[TestClient]:
    settings = Settings(
        database_url=database_url, signing_key_path=str(key_file), bulk_dir=str(bulk_dir)
    )
    try:
        with TestClient(create_app(settings, store), base_url=BASE) as http:
            yield http
    finally:
        wait_for_runners()


def wait_for_runners(timeout: float = 30) -> None:
    """Let job runner threads finish before the store they use is disposed."""
    for thread in threading.enumerate():
        if thread.name == THREAD_NAME:
            thread.join(timeout)
            assert not thread.is_alive(), "a bulk job runner did not finish"


def seeded(store: SqlStore) -> None:
    seed(store, PRACTICE)
