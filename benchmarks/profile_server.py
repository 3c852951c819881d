"""Where a server's CPU time goes: py-spy (GIL-holding samples) under one sequential workload.

    python -m benchmarks.profile_server [--database sqlite|postgres] [--op create|read|...]

Needs py-spy in the venv (`.venv/bin/pip install py-spy`; not a project dependency). Writes the
raw collapsed stacks (for flame-graph tools) and prints the share of samples per layer.
"""

from __future__ import annotations

import argparse
import collections
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks.crud import postgres_database, sqlite_database
from benchmarks.harness import Http, OpenGP
from benchmarks.payloads import patient, transaction
from opengp.fhir.nhs_number import NHS_NUMBER_SYSTEM as NHS_NUMBER
from opengp.fhir.nhs_number import check_digit

# A sample goes to the first layer whose markers occur anywhere in its stack.
LAYERS = [
    ("validation", ["fhir/validation.py"]),
    ("SQLAlchemy commit", ["do_commit", "Transaction.commit", "do_rollback"]),
    (
        "SQLAlchemy connect / begin / savepoint",
        ["begin_nested", "_savepoint", "do_begin", "Connection.begin", "pool/", "Engine.connect"],
    ),
    (
        "SQLAlchemy execute (cache key, compile, cursor, rows)",
        ["Connection.execute", "Connection.scalar"],
    ),
    ("SQLAlchemy statement construction", ["sqlalchemy/"]),
    ("rest of the worker thread (routing, store, orjson, uuid)", ["WorkerThread.run"]),
    ("anyio / asyncio thread hand-off", ["anyio/", "run_in_threadpool", "call_soon_threadsafe"]),
    ("OpenGP HTTP adapter (body, JSON parse, headers)", ["opengp/api/fhir.py"]),
    (
        "Starlette + middleware (routing, CatchAll, Metrics)",
        ["starlette/", "opengp/app.py", "metrics.py"],
    ),
    ("uvicorn + h11 (HTTP parsing and writing)", ["uvicorn/", "h11/"]),
    ("asyncio event loop", [""]),
]


def layers(stacks: Path) -> dict[str, float]:
    counts: collections.Counter[str] = collections.Counter()
    for line in stacks.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        layer = next(name for name, markers in LAYERS if any(m in stack for m in markers))
        counts[layer] += int(n)
    total = sum(counts.values()) or 1
    return {name: round(100 * counts[name] / total, 1) for name, _ in LAYERS}


def _numbered(body: dict[str, Any], i: int) -> dict[str, Any]:
    """`body` with an NHS number of its own (valid: the first with a check digit from i)."""
    first = 900_000_000 + i * 10
    while (check := check_digit(str(first))) is None:
        first += 1
    identifier = {**body["identifier"][0], "value": f"{first}{check}"}
    return {**body, "identifier": [identifier, *body["identifier"][1:]]}


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.profile_server", description=__doc__
    )
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--op", choices=["create", "read", "update", "transaction", "search"], default="create"
    )
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        parser.error("py-spy is not installed in this venv: .venv/bin/pip install py-spy")
    stacks = args.out / f"profile-{args.database}-{args.op}.txt"
    with tempfile.TemporaryDirectory(prefix="opengp-profile-") as tmp_name:
        tmp = Path(tmp_name)
        database = sqlite_database(tmp) if args.database == "sqlite" else postgres_database()
        with database as db, OpenGP(db.url, tmp, tmp / "opengp.log") as server:
            s = Http(server.port, server.token)
            bodies = [_numbered(patient(i), i) for i in range(300)]
            new = [
                s.call("POST", "/fhir/Patient", orjson.dumps(body), expect=201)[1]
                for body in bodies
            ]
            ids = [r.headers["Location"].split("/")[-3] for r in new]
            # A one-match search: by NHS number, as reception and GP Connect consumers find
            # a patient.
            numbers = [body["identifier"][0]["value"] for body in bodies]
            record = [spy, "record", "--pid", str(server.pid), "--gil", "--rate", "250"]
            record += ["--format", "raw", "--nonblocking", "-o", str(stacks)]
            record += ["--duration", str(args.seconds)]
            profiler = subprocess.Popen(
                record, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            time.sleep(1)
            i, started = 1000, time.perf_counter()
            while profiler.poll() is None:
                i += 1
                if args.op == "create":
                    s.call("POST", "/fhir/Patient", orjson.dumps(patient(i)), expect=201)
                elif args.op == "read":
                    s.call("GET", f"/fhir/Patient/{random.choice(ids)}")
                elif args.op == "search":
                    query = f"identifier={NHS_NUMBER}|{random.choice(numbers)}"
                    s.call("GET", f"/fhir/Patient?{query}")
                elif args.op == "update":
                    id = random.choice(ids)
                    s.call("PUT", f"/fhir/Patient/{id}", orjson.dumps({**patient(i), "id": id}))
                else:
                    s.call("POST", "/fhir", orjson.dumps(transaction(i)))
            elapsed = time.perf_counter() - started
    print(f"{args.op} on {args.database}: {i - 1000} requests in {elapsed:.1f}s under py-spy")
    for name, share in layers(stacks).items():
        print(f"  {share:5.1f}%  {name}")
    print(f"raw stacks: {stacks}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
