"""What authentication, authorisation and audit cost a FHIR read and search.

    python -m benchmarks.access_cost [--out docs/benchmarks] [--databases sqlite,postgres]

Per database, two real `opengp serve --workers 1` processes on the same database: one as
configured (every request's bearer token verified, the policy decision, an audit entry
committed before the response), and one started by this benchmark with those three switched
off by patching the running process (`switch_off`). OpenGP itself has no way to switch them
off. The same reads and searches go to both, in interleaved rounds of one run; the target is
the ratio: with access control, at most 15% below without. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from benchmarks.crud import machine
from benchmarks.harness import (
    ROOT,
    SCOPES,
    Http,
    OpenGP,
    Workload,
    chosen_databases,
    database_arguments,
    fresh_postgres,
    measure,
    run_header,
    write_results,
)
from benchmarks.payloads import observation, patient

TARGET = 0.15  # at most 15% below the same operations without access control
NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
SNOMED = "http://snomed.info/sct"
# Two kinds of Observation per patient, so `code` selects part of the record.
CODES = (("27113001", "Body weight"), ("50373000", "Body height"))
OBSERVATIONS = 8  # per patient, half of each code

# The server without access control: the module below patched, then the usual command line.
OFF = (
    "import sys; from benchmarks.access_cost import switch_off; switch_off(); "
    "from opengp.cli import main; sys.exit(main())"
)


def switch_off() -> None:
    """Patch this process's OpenGP: every request is the benchmark's system client, unchecked
    (no token verification, no revocation lookup), every policy decision allows, and nothing
    is audited. For the baseline server of this benchmark only."""
    from opengp.access.principal import Principal
    from opengp.api.oauth import OAuthEndpoints
    from opengp.services.fhir import guard

    client = Principal(
        kind="system",
        id="bench",
        display="bench",
        scopes=frozenset(SCOPES.split()),
        purpose="direct-care",
        client_id="bench",
    )
    setattr(OAuthEndpoints, "identify", lambda self, request: lambda: client)  # noqa: B010
    setattr(guard, "authorize", lambda *args, **kwargs: None)  # noqa: B010
    setattr(guard, "success", lambda *args, **kwargs: None)  # noqa: B010


def progress(message: str) -> None:
    print(message, flush=True)


def nhs_number(i: int) -> str:
    """A valid NHS number of its own for each i < 100,000 (9 prefix: a test range)."""
    from opengp.fhir.nhs_number import check_digit

    for suffix in range(1000):  # about one in eleven has no check digit: take the next
        first_nine = f"9{i:05d}{suffix:03d}"
        digit = check_digit(first_nine)
        if digit is not None:
            return f"{first_nine}{digit}"
    raise AssertionError("unreachable: most nine digits have a check digit")


def record(i: int) -> dict[str, Any]:
    """A transaction Bundle: Patient i with its own NHS number, and its Observations."""
    subject = f"urn:uuid:00000000-0000-4000-8000-{i:012d}"
    person = patient(i)
    person["identifier"][0]["value"] = nhs_number(i)
    entries = [
        {"fullUrl": subject, "resource": person, "request": {"method": "POST", "url": "Patient"}}
    ]
    for k in range(OBSERVATIONS):
        body = observation(subject, k)
        code, display = CODES[k % len(CODES)]
        body["code"]["coding"][0].update(code=code, display=display)
        entries.append({"resource": body, "request": {"method": "POST", "url": "Observation"}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def load(server: OpenGP, patients: int) -> list[tuple[str, str]]:
    """Create the records over HTTP: (Patient id, NHS number) of each."""
    http = Http(server.port, server.token)
    try:
        made = []
        for i in range(patients):
            _, _, data = http.call("POST", "/fhir", orjson.dumps(record(i)))
            location = orjson.loads(data)["entry"][0]["response"]["location"]
            made.append((location.split("/")[1], nhs_number(i)))
        return made
    finally:
        http.close()


@contextmanager
def database(name: str, tmp: Path) -> Iterator[tuple[str, str]]:
    """(url, version) of a fresh, migrated database."""
    if name == "sqlite":
        import sqlite3

        yield f"sqlite:///{tmp / 'opengp.db'}", sqlite3.sqlite_version
        return
    with fresh_postgres() as (url, version):
        command = [sys.executable, "-m", "opengp", "db", "upgrade", "--database", url]
        subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
        yield url, version


def verify_trail(url: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "opengp", "audit", "verify", "--database", url],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"opengp audit verify failed: {done.stdout}{done.stderr}")
    return done.stdout.strip()


OPERATIONS = {
    "read": "GET Patient/{id}",
    "search_observation": f"GET Observation?patient={{id}}&code={SNOMED}|{CODES[0][0]}",
    "search_identifier": f"GET Patient?identifier={NHS_NUMBER}|{{nhs}}",
}


def bench(name: str, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    with ExitStack() as stack:
        url, version = stack.enter_context(database(name, tmp))
        servers: dict[str, OpenGP] = {}
        for mode in ("on", "off"):
            home = tmp / mode  # each its own signing-key file (PostgreSQL)
            home.mkdir()
            server = OpenGP(url, home, tmp / f"opengp-{name}-{mode}.log")
            if mode == "off":
                server.args[1:3] = ["-c", OFF]
            servers[mode] = stack.enter_context(server)
        progress(f"{name}: servers ready (on: pid {servers['on'].pid}, off: {servers['off'].pid})")
        records = load(servers["on"], args.patients)
        progress(f"{name}: {args.patients} patients, {args.patients * OBSERVATIONS} observations")
        code = quote(f"{SNOMED}|{CODES[0][0]}", safe="")

        def read(s: Http, i: int) -> None:
            s.call("GET", f"/fhir/Patient/{random.choice(records)[0]}")

        def by_patient(s: Http, i: int) -> None:
            s.call("GET", f"/fhir/Observation?patient={random.choice(records)[0]}&code={code}")

        def by_identifier(s: Http, i: int) -> None:
            nhs = quote(f"{NHS_NUMBER}|{random.choice(records)[1]}", safe="")
            s.call("GET", f"/fhir/Patient?identifier={nhs}")

        def opener(server: OpenGP) -> Any:
            return lambda: Http(server.port, server.token)

        steps = {"read": read, "search_observation": by_patient, "search_identifier": by_identifier}
        work = [
            Workload(f"{op}_{mode}", opener(server), step, args.n, server.pid)
            for op, step in steps.items()
            for mode, server in servers.items()
        ]
        started = time.perf_counter()
        results = measure(work, args.threads, args.rounds, 200, progress)
        progress(f"{name}: measured in {time.perf_counter() - started:.0f}s")
        trail = verify_trail(url)
        progress(f"{name}: {trail}")
    return {"version": version, "operations": results, "costs": costs(results), "audit": trail}


def costs(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per operation: how much slower with access control, as a fraction of without."""
    out = {}
    for op in OPERATIONS:
        on, off = results[f"{op}_on"], results[f"{op}_off"]
        out[op] = {
            "concurrent_throughput_loss": round(
                1 - on["concurrent"]["ops_per_s"] / off["concurrent"]["ops_per_s"], 3
            ),
            "sequential_throughput_loss": round(
                1 - on["sequential"]["ops_per_s"] / off["sequential"]["ops_per_s"], 3
            ),
            "p50_added": round(on["sequential"]["p50_ms"] / off["sequential"]["p50_ms"] - 1, 3),
            "p99_added": round(on["sequential"]["p99_ms"] / off["sequential"]["p99_ms"] - 1, 3),
            "cpu_added": round(
                on["sequential"]["server_cpu_ms_per_op"] / off["sequential"]["server_cpu_ms_per_op"]
                - 1,
                3,
            ),
        }
    return out


def markdown(results: dict[str, Any]) -> str:
    dbs = results["databases"]
    out = [
        "| operation | database | access control | seq ops/s | conc ops/s | p50 ms | p99 ms "
        "| conc p50 ms | conc p99 ms | server CPU ms/op |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for op, label in OPERATIONS.items():
        for name, db in dbs.items():
            for mode in ("on", "off"):
                r = db["operations"][f"{op}_{mode}"]
                s, c = r["sequential"], r["concurrent"]
                out.append(
                    f"| {label} | {name} | {mode} | {s['ops_per_s']:,.0f} | {c['ops_per_s']:,.0f} "
                    f"| {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {c['p50_ms']:.2f} "
                    f"| {c['p99_ms']:.2f} | {s['server_cpu_ms_per_op']:.2f} |"
                )
    out += [
        "",
        "| operation | database | conc throughput lost | seq throughput lost | p50 added "
        "| p99 added | server CPU added | target: ≤ 15% lost |",
        "|---|---|--:|--:|--:|--:|--:|---|",
    ]
    for op, label in OPERATIONS.items():
        for name, db in dbs.items():
            c = db["costs"][op]
            verdict = "met" if c["concurrent_throughput_loss"] <= TARGET else "missed"
            out.append(
                f"| {label} | {name} | {c['concurrent_throughput_loss']:.1%} "
                f"| {c['sequential_throughput_loss']:.1%} | {c['p50_added']:+.1%} "
                f"| {c['p99_added']:+.1%} | {c['cpu_added']:+.1%} | {verdict} |"
            )
    out += ["", *(f"- {name}: {db['audit']}" for name, db in dbs.items())]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.access_cost", description=__doc__.split("\n")[0]
    )
    database_arguments(parser)
    parser.add_argument("--n", type=int, default=2000, help="operations per mode and server")
    parser.add_argument("--patients", type=int, default=300, help="patients loaded")
    parser.add_argument("--threads", type=int, default=8, help="concurrent clients")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved measuring rounds")
    args = parser.parse_args(argv)
    chosen = chosen_databases(parser, args)
    results: dict[str, Any] = {
        **run_header("access-cost", "benchmarks.access_cost", argv),
        "n": args.n,
        "patients": args.patients,
        "threads": args.threads,
        "rounds": args.rounds,
        "machine": machine(),
        "target_loss": TARGET,
        "databases": {},
    }
    for name in chosen:
        with tempfile.TemporaryDirectory(prefix="opengp-bench-") as tmp_name:
            results["databases"][name] = bench(name, Path(tmp_name), args)
    write_results(args.out, "access-cost", results, markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
