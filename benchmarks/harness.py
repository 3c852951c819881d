"""Server processes, a keep-alive HTTP client, and the sequential/concurrent measuring loop."""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import math
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import make_url

ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


POSTGRES_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"
# The benchmark's system client (SMART Backend Services): every FHIR interaction on every type.
SCOPES = "system/*.cruds"
# One token for the whole run: the default 5 minutes is shorter than a full run.
TOKEN_LIFETIME_SECONDS = 3600
# The size the server generates for an embedded database (access/keys.py), so that SQLite and
# PostgreSQL verify the same kind of signature on every request.
SIGNING_KEY_BITS = 3072


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc; fields 14 and 15 of stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


class Process:
    """A server child process in its own session, ready once GET /readyz answers 200."""

    def __init__(self, args: Sequence[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.args = [sys.executable, *args, "--port", str(self.port)]
        self.log = log
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Process:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.args,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.args} exited: {self.log.read_text()[-3000:]}")
            probe = Http(self.port)
            try:
                if probe.call("GET", "/readyz", expect=None)[0] == 200:
                    return
            except OSError:
                pass
            finally:
                probe.close()
            time.sleep(0.1)
        raise RuntimeError(f"{self.args} did not become ready: {self.log.read_text()[-3000:]}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __exit__(self, *_: object) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


class OpenGP(Process):
    """`opengp serve --workers 1` on `database`, with a system client and a bearer token.

    The client is registered with `opengp clients add` before the server starts; the token is
    fetched once it is ready and lasts the run (`token`, for `Http`). PostgreSQL gets a signing
    key generated in `tmp`; with SQLite the server makes its own beside the database file.
    """

    def __init__(self, database: str, tmp: Path, log: Path) -> None:
        env = {"OPENGP_TOKEN_LIFETIME_SECONDS": str(TOKEN_LIFETIME_SECONDS)}
        if make_url(database).get_backend_name() != "sqlite":
            env["OPENGP_SIGNING_KEY"] = str(write_signing_key(tmp / "signing-key.pem"))
        serve = ["-m", "opengp", "serve", "--database", database, "--workers", "1"]
        super().__init__(serve, log, env)
        self.database = database
        self.token = ""

    def __enter__(self) -> OpenGP:
        client_id, secret = register_client(self.database, self.env)
        super().__enter__()
        try:
            self.token = fetch_token(self.port, client_id, secret)
        except BaseException:
            self.__exit__()
            raise
        return self


def write_signing_key(path: Path) -> Path:
    """An unencrypted PEM RSA private key at `path` (mode 0600), for OPENGP_SIGNING_KEY: new,
    or the one already there (servers started in one directory share it, as the workers of
    one deployment do)."""
    if path.exists():
        return path
    key = rsa.generate_private_key(public_exponent=65537, key_size=SIGNING_KEY_BITS)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(pem)
    return path


def register_client(database: str, env: dict[str, str]) -> tuple[str, str]:
    """`opengp clients add` on the database: the new client's (client_id, client_secret)."""
    command = [sys.executable, "-m", "opengp", "clients", "add", "--name", "bench"]
    command += ["--scopes", SCOPES, "--json", "--database", database]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"opengp clients add failed: {done.stderr.strip()[-3000:]}")
    credentials = json.loads(done.stdout)
    return credentials["client_id"], credentials["client_secret"]


def fetch_token(port: int, client_id: str, secret: str) -> str:
    """An access token by the client-credentials grant, with HTTP Basic (RFC 6749 §4.4, §2.3.1).

    Plain http is accepted because the server is addressed on loopback (127.0.0.1).
    """
    pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}"  # form-encoded first
    basic = base64.b64encode(pair.encode()).decode("ascii")
    form = urlencode({"grant_type": "client_credentials", "scope": SCOPES})
    headers = {
        "Authorization": f"Basic {basic}",
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
    }
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/oauth2/token", form, headers)
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise RuntimeError(f"POST /oauth2/token: {response.status} {data[:500]!r}")
    answer = json.loads(data)
    if str(answer.get("token_type", "")).lower() != "bearer":
        raise RuntimeError(f"POST /oauth2/token: not a bearer token: {answer.get('token_type')!r}")
    token: str = answer["access_token"]
    return token


class Http:
    """One keep-alive HTTP/1.1 connection (http.client: the leanest client, so the least noise).

    With a token every request carries `Authorization: Bearer <token>`.
    """

    def __init__(self, port: int, token: str | None = None) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers = {"Accept": "application/fhir+json"}
        if token is not None:
            self.headers["Authorization"] = f"Bearer {token}"

    def call(
        self, method: str, path: str, body: bytes | None = None, expect: int | None = 200
    ) -> tuple[int, http.client.HTTPResponse, bytes]:
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = "application/fhir+json"
        self.conn.request(method, path, body, headers)
        response = self.conn.getresponse()
        data = response.read()
        if expect is not None and response.status != expect:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:500]!r}")
        return response.status, response, data

    def close(self) -> None:
        self.conn.close()


@dataclass
class Workload:
    """`step(session, i)` performs operation number i; each client thread opens its own session."""

    name: str
    open: Callable[[], Any]
    step: Callable[[Any, int], None]
    n: int  # operations per mode (sequential, concurrent) over the whole run
    pid: int | None = None  # the server process whose CPU time is charged to this workload
    items: int = 1  # resources per operation (10 for a 10-entry transaction)


@dataclass
class Mode:
    latencies_ns: list[int] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0

    def add(self, latencies: list[int], seconds: float, cpu: float) -> None:
        self.latencies_ns += latencies
        self.seconds += seconds
        self.cpu_seconds += cpu

    def summary(self, items: int) -> dict[str, float]:
        ops = len(self.latencies_ns)
        ordered = sorted(self.latencies_ns)
        ops_per_s = ops / self.seconds
        return {
            "ops": ops,
            "ops_per_s": round(ops_per_s, 1),
            "items_per_s": round(ops_per_s * items, 1),
            "p50_ms": round(percentile(ordered, 50) / 1e6, 3),
            "p99_ms": round(percentile(ordered, 99) / 1e6, 3),
            "mean_ms": round(sum(ordered) / ops / 1e6, 3),
            "server_cpu_ms_per_op": round(self.cpu_seconds * 1000 / ops, 3),
        }


def percentile(ordered: Sequence[int], p: float) -> float:
    """Nearest-rank percentile of sorted values."""
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _run(work: Workload, indices: Sequence[range]) -> tuple[list[int], float, float]:
    """Run each range of operation numbers on its own thread and session; all start together."""
    sessions = [work.open() for _ in indices]
    latencies: list[list[int]] = [[] for _ in indices]
    errors: list[BaseException] = []
    start = threading.Barrier(len(indices) + 1)

    def client(k: int) -> None:
        session, mine = sessions[k], latencies[k]
        start.wait()
        try:
            for i in indices[k]:
                t0 = time.perf_counter_ns()
                work.step(session, i)
                mine.append(time.perf_counter_ns() - t0)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(len(indices))]
    for thread in threads:
        thread.start()
    cpu0 = cpu_seconds(work.pid) if work.pid else 0.0
    t0 = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - t0
    cpu = (cpu_seconds(work.pid) - cpu0) if work.pid else 0.0
    for session in sessions:
        session.close()
    if errors:
        raise RuntimeError(f"{work.name} failed") from errors[0]
    return [x for mine in latencies for x in mine], seconds, cpu


class Measure:
    """Sequential (one client) and concurrent (`threads` clients) results of one workload."""

    def __init__(self, work: Workload, threads: int) -> None:
        self.work, self.threads = work, threads
        self.sequential, self.concurrent = Mode(), Mode()
        self.next = 0  # operation numbers are never reused: ids and bodies stay distinct

    def _take(self, n: int) -> range:
        taken = range(self.next, self.next + n)
        self.next += n
        return taken

    def warm_up(self, n: int) -> None:
        _run(self.work, [self._take(n)])
        block = self._take(n)
        _run(self.work, [block[k :: self.threads] for k in range(self.threads)])

    def round(self, n: int) -> None:
        self.sequential.add(*_run(self.work, [self._take(n)]))
        block = self._take(n)
        self.concurrent.add(
            *_run(self.work, [block[k :: self.threads] for k in range(self.threads)])
        )

    def summary(self) -> dict[str, Any]:
        return {
            "items_per_op": self.work.items,
            "sequential": self.sequential.summary(self.work.items),
            "concurrent": {"threads": self.threads, **self.concurrent.summary(self.work.items)},
        }


def measure(
    workloads: Sequence[Workload],
    threads: int,
    rounds: int,
    warm_up: int,
    progress: Callable[[str], None],
) -> dict[str, dict[str, Any]]:
    """Interleave every workload in `rounds` rounds, so drift in a noisy machine hits all alike."""
    measures = [Measure(w, threads) for w in workloads]
    for m in measures:
        m.warm_up(max(threads, min(warm_up, m.work.n // 4)))
    progress(f"  warmed up ({', '.join(w.name for w in workloads)})")
    for r in range(rounds):
        t0 = time.perf_counter()
        for m in measures:
            m.round(max(threads, m.work.n // rounds))
        progress(f"  round {r + 1}/{rounds} done in {time.perf_counter() - t0:.1f}s")
    return {m.work.name: m.summary() for m in measures}


@contextmanager
def fresh_postgres(prefix: str = "opengp_bench") -> Iterator[tuple[str, str]]:
    """A new, empty PostgreSQL database on $OPENGP_TEST_POSTGRES_URL: (url, server version).

    Dropped afterwards, connections and all.
    """
    admin = os.environ.get("OPENGP_TEST_POSTGRES_URL", POSTGRES_DEFAULT)
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        major, minor = divmod(conn.info.server_version, 10000)
    try:
        yield (
            make_url(admin).set(database=name).render_as_string(hide_password=False),
            (f"{major}.{minor}"),
        )
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every server benchmark takes: where to write, and which databases."""
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    parser.add_argument(
        "--databases", default="sqlite,postgres", help="comma-separated: sqlite,postgres"
    )


def chosen_databases(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The databases `--databases` names (the parser's error when it names another)."""
    chosen = [d.strip() for d in args.databases.split(",") if d.strip()]
    if not chosen or set(chosen) - {"sqlite", "postgres"}:
        parser.error("--databases takes sqlite and/or postgres")
    return chosen


def run_header(benchmark: str, module: str, argv: list[str] | None) -> dict[str, Any]:
    """The start of a results file: which benchmark, when, and the command that ran it."""
    return {
        "benchmark": benchmark,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([f"python -m {module}", *(argv if argv is not None else sys.argv[1:])]),
    }


def write_results(out: Path, stem: str, results: dict[str, Any], table: str) -> None:
    """`<stem>.json` and `<stem>.md` in `out`; the table printed too."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / f"{stem}.md").write_text(table)
    print(table)
    print(f"wrote {out / f'{stem}.json'} and {out / f'{stem}.md'}")
