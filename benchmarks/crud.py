"""FHIR create / read / update / transaction over real HTTP, side by side with the floors.

    python -m benchmarks.crud [--out docs/benchmarks] [--databases sqlite,postgres] [--n N]

Per database: a real `opengp serve --workers 1` process, a minimal uvicorn + Starlette app (the
HTTP floor) and raw INSERT / SELECT through the same driver (the database floor), all measured in
interleaved rounds of one run, so that the ratios hold on a noisy machine. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import orjson

from benchmarks.floor import PostgresFloor, SqliteFloor, row
from benchmarks.harness import (
    Http,
    OpenGP,
    Process,
    Workload,
    chosen_databases,
    database_arguments,
    fresh_postgres,
    measure,
    run_header,
    write_results,
)
from benchmarks.payloads import patient, transaction

PACKAGES = ("uvicorn", "starlette", "sqlalchemy", "psycopg", "orjson")
TARGETS = {"create_vs_floor_insert": 3.0, "read_vs_floor_select_plus_http": 2.0}


def progress(message: str) -> None:
    print(message, flush=True)


@dataclass
class Database:
    name: str
    url: str
    open_floor: Callable[[], SqliteFloor | PostgresFloor]
    version: str


@contextmanager
def sqlite_database(tmp: Path) -> Iterator[Database]:
    floor_path = tmp / "floor.db"  # a sibling file of the server's, on the same file system
    SqliteFloor.setup(floor_path)
    url = f"sqlite:///{tmp / 'opengp.db'}"
    yield Database("sqlite", url, lambda: SqliteFloor(floor_path), sqlite3.sqlite_version)


@contextmanager
def postgres_database() -> Iterator[Database]:
    with fresh_postgres() as (url, version):
        command = [sys.executable, "-m", "opengp", "db", "upgrade", "--database", url]
        subprocess.run(command, check=True, capture_output=True)
        PostgresFloor.setup(url)  # in the server's own database
        yield Database("postgres", url, lambda: PostgresFloor(url), version)


def workloads(db: Database, fhir: OpenGP, minimal: Process, n: int) -> list[Workload]:
    ids: list[str] = []  # Patients created over HTTP, for reads and updates
    floor_ids: list[str] = []
    sqlite_time = db.name == "sqlite"

    def fhir_http() -> Http:
        return Http(fhir.port, fhir.token)

    def create(s: Http, i: int) -> None:
        _, response, _ = s.call("POST", "/fhir/Patient", orjson.dumps(patient(i)), expect=201)
        ids.append(response.headers["Location"].split("/")[-3])

    def read(s: Http, i: int) -> None:
        s.call("GET", f"/fhir/Patient/{random.choice(ids)}")

    def update(s: Http, i: int) -> None:
        id = ids[i % len(ids)]  # concurrent clients take distinct i, so distinct resources
        body = {**patient(i), "id": id, "active": i % 2 == 0}
        s.call("PUT", f"/fhir/Patient/{id}", orjson.dumps(body))

    def bundle(s: Http, i: int) -> None:
        s.call("POST", "/fhir", orjson.dumps(transaction(i)))

    def floor_insert(s: SqliteFloor | PostgresFloor, i: int) -> None:
        id = str(uuid.uuid4())
        s.insert([row(id, orjson.dumps(patient(i)), sqlite_time=sqlite_time)])
        floor_ids.append(id)

    def floor_insert_10(s: SqliteFloor | PostgresFloor, i: int) -> None:
        body = orjson.dumps(patient(i))  # same size as the bundle's entries, give or take
        s.insert([row(str(uuid.uuid4()), body, sqlite_time=sqlite_time) for _ in range(10)])

    def floor_select(s: SqliteFloor | PostgresFloor, i: int) -> None:
        s.select(random.choice(floor_ids))

    def http_get(s: Http, i: int) -> None:
        s.call("GET", "/fixed")

    def http_post(s: Http, i: int) -> None:
        s.call("POST", "/fixed", orjson.dumps(patient(i)))

    def minimal_http() -> Http:
        # The same bearer header, ignored there: the HTTP floor parses as many header bytes.
        return Http(minimal.port, fhir.token)

    floor, tx_n = db.open_floor, max(1, n // 10)
    return [  # in this order within every round: reads follow the creates they read
        Workload("http_get", minimal_http, http_get, n, minimal.pid),
        Workload("http_post", minimal_http, http_post, n, minimal.pid),
        Workload("floor_insert", floor, floor_insert, n),
        Workload("floor_select", floor, floor_select, n),
        Workload("floor_insert_10", floor, floor_insert_10, tx_n, items=10),
        Workload("create", fhir_http, create, n, fhir.pid),
        Workload("read", fhir_http, read, n, fhir.pid),
        Workload("update", fhir_http, update, n, fhir.pid),
        Workload("transaction", fhir_http, bundle, tx_n, fhir.pid, items=10),
    ]


def ratios(r: dict[str, dict[str, Any]]) -> dict[str, float]:
    def p50(name: str) -> float:
        value: float = r[name]["sequential"]["p50_ms"]
        return value

    return {
        "create_vs_floor_insert": round(p50("create") / p50("floor_insert"), 2),
        "create_vs_floor_insert_plus_http": round(
            p50("create") / (p50("floor_insert") + p50("http_post")), 2
        ),
        "read_vs_floor_select_plus_http": round(
            p50("read") / (p50("floor_select") + p50("http_get")), 2
        ),
        "update_vs_floor_insert_plus_http": round(
            p50("update") / (p50("floor_insert") + p50("http_post")), 2
        ),
        "transaction_vs_floor_insert_10_plus_http": round(
            p50("transaction") / (p50("floor_insert_10") + p50("http_post")), 2
        ),
    }


def bench(db: Database, tmp: Path, n: int, threads: int, rounds: int) -> dict[str, Any]:
    with ExitStack() as stack:
        fhir = stack.enter_context(OpenGP(db.url, tmp, tmp / f"opengp-{db.name}.log"))
        minimal = stack.enter_context(
            Process(["-m", "benchmarks.minimal_http"], tmp / "minimal.log")
        )
        progress(f"{db.name}: servers ready (opengp pid {fhir.pid}, minimal pid {minimal.pid})")
        started = time.perf_counter()
        results = measure(workloads(db, fhir, minimal, n), threads, rounds, 200, progress)
    progress(f"{db.name}: measured in {time.perf_counter() - started:.0f}s")
    return {"version": db.version, "operations": results, "ratios": ratios(results)}


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    revision = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return {
        "git_head": revision.stdout.strip() or None,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": {name: metadata.version(name) for name in PACKAGES},
        # uvicorn picks httptools / uvloop when installed; OpenGP does not depend on them.
        "uvicorn_http": "httptools" if find_spec("httptools") else "h11",
        "uvicorn_loop": "uvloop" if find_spec("uvloop") else "asyncio",
    }


LABELS = {
    "create": "FHIR create (POST Patient)",
    "read": "FHIR read (GET Patient/id)",
    "update": "FHIR update (PUT Patient/id)",
    "transaction": "FHIR transaction (10 entries)",
    "floor_insert": "floor: SQL INSERT, 1 row/commit",
    "floor_select": "floor: SQL SELECT by key",
    "floor_insert_10": "floor: SQL INSERT, 10 rows/commit",
    "http_get": "floor: minimal HTTP GET",
    "http_post": "floor: minimal HTTP POST 1 KB",
}
RATIO_LABELS = {
    "create_vs_floor_insert": "create p50 / floor insert p50",
    "create_vs_floor_insert_plus_http": "create p50 / (floor insert + minimal POST) p50",
    "read_vs_floor_select_plus_http": "read p50 / (floor select + minimal GET) p50",
    "update_vs_floor_insert_plus_http": "update p50 / (floor insert + minimal POST) p50",
    "transaction_vs_floor_insert_10_plus_http": (
        "transaction p50 / (floor 10 rows + minimal POST) p50"
    ),
}


def markdown(results: dict[str, Any]) -> str:
    dbs = results["databases"]
    out = [
        "| operation | database | seq ops/s | conc ops/s | p50 ms | p99 ms "
        "| conc p50 ms | conc p99 ms | server CPU ms/op |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for op, label in LABELS.items():
        for name, db in dbs.items():
            s, c = db["operations"][op]["sequential"], db["operations"][op]["concurrent"]
            items = db["operations"][op]["items_per_op"]
            rate = (
                f"{s['ops_per_s']:,.0f} ({s['items_per_s']:,.0f} res/s)"
                if items > 1
                else f"{s['ops_per_s']:,.0f}"
            )
            conc = (
                f"{c['ops_per_s']:,.0f} ({c['items_per_s']:,.0f} res/s)"
                if items > 1
                else f"{c['ops_per_s']:,.0f}"
            )
            cpu = f"{s['server_cpu_ms_per_op']:.2f}" if not op.startswith("floor_") else "-"
            out.append(
                f"| {label} | {name} | {rate} | {conc} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} "
                f"| {c['p50_ms']:.2f} | {c['p99_ms']:.2f} | {cpu} |"
            )
    out += ["", f"| ratio | {' | '.join(dbs)} | target |", f"|---|{'--:|' * len(dbs)}--:|"]
    for key, label in RATIO_LABELS.items():
        target = f"<= {TARGETS[key]:g}x" if key in TARGETS else ""
        values = " | ".join(
            f"**{db['ratios'][key]:.2f}x**"
            + (" (missed)" if key in TARGETS and db["ratios"][key] > TARGETS[key] else "")
            for db in dbs.values()
        )
        out.append(f"| {label} | {values} | {target} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.crud", description=__doc__.split("\n")[0]
    )
    database_arguments(parser)
    parser.add_argument(
        "--n", type=int, default=2000, help="creates, reads, updates per mode (bundles: n/10)"
    )
    parser.add_argument("--threads", type=int, default=8, help="concurrent clients")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved measuring rounds")
    args = parser.parse_args(argv)
    chosen = chosen_databases(parser, args)
    results: dict[str, Any] = {
        **run_header("crud", "benchmarks.crud", argv),
        "n": args.n,
        "threads": args.threads,
        "rounds": args.rounds,
        "machine": machine(),
        "targets": TARGETS,
        "databases": {},
    }
    for name in chosen:
        with tempfile.TemporaryDirectory(prefix="opengp-bench-") as tmp_name:
            tmp = Path(tmp_name)
            database = sqlite_database(tmp) if name == "sqlite" else postgres_database()
            with database as db:
                results["databases"][name] = bench(db, tmp, args.n, args.threads, args.rounds)
    write_results(args.out, "crud", results, markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
