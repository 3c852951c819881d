"""A real `opengp serve` process on a free loopback port, for tests that need one; and the
application in process over HTTP (the `settings` and `http` fixtures) for the screen tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from starlette.testclient import TestClient

from opengp.access.clients import register_client
from opengp.app import create_app
from opengp.config import Settings
from opengp.store.sql import SqlStore

SCREENS = "https://gp.test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    def __init__(self, database_url: str, log: Path, key_file: Path, workers: int = 1) -> None:
        self.database_url = database_url
        self.log = log
        self.key_file = key_file
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        command = [
            sys.executable,
            "-m",
            "opengp",
            "serve",
            "--port",
            str(self.port),
            "--database",
            self.database_url,
            "--workers",
            str(self.workers),
        ]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "OPENGP_SIGNING_KEY": str(self.key_file)},
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"opengp serve exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"opengp serve did not become ready: {self.log.read_text()[-2000:]}")

    def kill_hard(self) -> None:
        """kill -9 the whole process group: no shutdown code runs."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill_hard()

    def authorization(self, scopes: str = "system/*.cruds") -> dict[str, str]:
        """An Authorization header for a client registered now, token from this server."""
        store = SqlStore.from_url(self.database_url)
        try:
            with store.writing() as tx:
                client_id, secret = register_client(tx.conn, "server tests", scopes)
        finally:
            store.dispose()
        assert secret is not None
        form = {"grant_type": "client_credentials", "scope": scopes}
        response = httpx.post(f"{self.url}/oauth2/token", data=form, auth=(client_id, secret))
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
def settings(database_url: str, key_file: Path) -> Settings:
    """The settings of the screen tests: the default limit on a request's body."""
    return Settings(database_url=database_url, signing_key_path=str(key_file))


@pytest.fixture
def http(settings: Settings, store: SqlStore) -> Iterator[TestClient]:
    """The application in process, for the screen tests: redirects are not followed."""
    with TestClient(create_app(settings, store), base_url=SCREENS, follow_redirects=False) as c:
        yield c
