"""FHIR search latency on the synthetic practice at ~10k, ~100k and ~1M resources, and the
cost of indexing on writes.

    python -m benchmarks.search [--out docs/benchmarks] [--sizes 10k,100k,1m]
                                [--databases sqlite,postgres] [--n 400] [--rebuild]

Per database and size: the dataset (benchmarks.datasets, kept between runs: a file under
build/benchmarks/ for SQLite, a database `opengp_bench_dataset_<size>` on PostgreSQL), a real
`opengp serve`, GP-typical searches with values drawn from the dataset, measured in
interleaved rounds, and the plans of the SQL the compiler makes for them. Then, on an empty
database, creates with and without search indexing (`RowWriter.add_resource` made a no-op): in
bulk (`create_many`) and over HTTP. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock
from urllib.parse import parse_qsl, quote, urlencode

import orjson
import psycopg
from sqlalchemy import Connection, event, func, make_url, select

from benchmarks.crud import machine
from benchmarks.datasets import config_for
from benchmarks.harness import (
    POSTGRES_DEFAULT,
    ROOT,
    Http,
    OpenGP,
    Workload,
    fresh_postgres,
    measure,
)
from benchmarks.payloads import patient, transaction
from opengp.demo.generator import generate
from opengp.fhir import jsonio
from opengp.search.parse import Include, SearchQuery
from opengp.search.query import parse_query
from opengp.store.migrate import upgrade
from opengp.store.sql import SqlStore
from opengp.store.sql.search import Searcher
from opengp.store.sql.search_tables import RowWriter, search_reference
from opengp.store.sql.tables import resource

NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
CACHE = ROOT / "build" / "benchmarks"
SAMPLES = 200  # distinct values per search, drawn from the dataset
EVERYTHING = 500  # resources of the patient whose record `everything` fetches
LABELS = {
    "identifier": f"Patient?identifier={NHS_NUMBER}|n",
    "family_birthdate": "Patient?family=abc&birthdate=d",
    "observation": "Observation?patient=p&code=s|c&date=ge d",
    "condition": "Condition?patient=p&clinical-status=active",
    "appointment": "Appointment?actor=PractitionerRole/r&date=day",
    "revinclude": "Patient?_id=p&_revinclude=Condition:patient",
    "revinclude_all": "Patient?_id=p&_revinclude=*",
    "everything": "Patient/p/$everything?_count=1000",
}
PLANNED = tuple(LABELS)
TARGETS_MS = {"identifier": 20.0, "observation": 50.0, "everything": 200.0}  # p99, PG at 1m
WHOLE_RECORD = ("revinclude_all", "everything")  # a quarter as many: each reads ~500 resources
PLAN_LINES = 60  # of each statement's plan, in the report (the JSON keeps them all)
# A server whose writes skip search indexing: the HTTP half of the indexing cost.
UNINDEXED = (
    "import sys; from opengp.store.sql.search_tables import RowWriter as W; "
    "W.add_resource = lambda self, body: None; from opengp.cli import main; "
    "sys.exit(main())"
)


def progress(message: str) -> None:
    print(message, flush=True)


# ---- datasets -------------------------------------------------------------------------------


def dataset(database: str, size: str, rebuild: bool) -> tuple[str, dict[str, Any]]:
    """The cached dataset's URL (built now if missing), and how long building took."""
    if database == "sqlite":
        path = CACHE / f"dataset-{size}.sqlite"
        if rebuild:
            for stale in path.parent.glob(f"{path.name}*"):
                stale.unlink()
        url = f"sqlite:///{path}"
    else:
        admin = os.environ.get("OPENGP_TEST_POSTGRES_URL", POSTGRES_DEFAULT)
        name = f"opengp_bench_dataset_{size}"
        with psycopg.connect(admin, autocommit=True) as conn:
            if rebuild:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                conn.execute(f'CREATE DATABASE "{name}"')
        url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    started = time.perf_counter()
    command = [sys.executable, "-m", "benchmarks.datasets", size, "--database", url]
    done = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    built = "already there" not in done.stdout
    progress(f"  {database} {size}: {done.stdout.strip()} ({seconds:.0f}s)")
    if database == "postgres":
        analyse(url)
    return url, {"built_now": built, "seconds": round(seconds, 1) if built else None}


def analyse(url: str) -> None:
    """VACUUM (ANALYZE), as autovacuum would after a bulk load or a re-index (it is off on
    some test servers, and without statistics the plans are poor)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")


def _sample(conn: Connection, resource_type: str, k: int, rng: random.Random) -> list[Any]:
    r = resource.c
    ids = conn.scalars(select(r.id).where(r.resource_type == resource_type, ~r.deleted)).all()
    picked = rng.sample(sorted(ids), min(k, len(ids)))
    rows = conn.execute(select(r.content).where(r.resource_type == resource_type, r.id.in_(picked)))
    return [jsonio.loads(row.content) for row in rows]


def _path(resource_type: str, pairs: Sequence[tuple[str, str]]) -> str:
    return f"/fhir/{resource_type}?{urlencode(pairs, quote_via=quote)}"


def _ref(value: dict[str, Any], prefix: str) -> str | None:
    reference = str(value.get("reference", ""))
    return reference.split("/", 1)[1] if reference.startswith(prefix + "/") else None


def searches(conn: Connection, seed: int = 1) -> dict[str, list[str]]:
    """Request paths of each search, with values taken from resources in the dataset."""
    rng = random.Random(seed)
    patients = _sample(conn, "Patient", SAMPLES, rng)
    out: dict[str, list[str]] = {name: [] for name in LABELS}
    for p in patients:
        nhs = next(i["value"] for i in p["identifier"] if i.get("system") == NHS_NUMBER)
        out["identifier"].append(_path("Patient", [("identifier", f"{NHS_NUMBER}|{nhs}")]))
        family = p["name"][0]["family"][:3]
        pairs = [("family", family), ("birthdate", p["birthDate"])]
        out["family_birthdate"].append(_path("Patient", pairs))
        pairs = [("_id", p["id"]), ("_revinclude", "Condition:patient")]
        out["revinclude"].append(_path("Patient", pairs))
    for o in _sample(conn, "Observation", SAMPLES * 2, rng):
        patient_id, when = _ref(o.get("subject", {}), "Patient"), o.get("effectiveDateTime")
        coding = o.get("code", {}).get("coding", [{}])[0]
        if patient_id and when and "system" in coding:
            since = date.fromisoformat(when[:10]) - timedelta(days=365)
            code = f"{coding['system']}|{coding['code']}"
            pairs = [("patient", patient_id), ("code", code), ("date", f"ge{since}")]
            out["observation"].append(_path("Observation", pairs))
    for c in _sample(conn, "Condition", SAMPLES * 3, rng):
        status = c.get("clinicalStatus", {}).get("coding", [{}])[0].get("code")
        if status == "active" and (patient_id := _ref(c["subject"], "Patient")):
            pairs = [("patient", patient_id), ("clinical-status", "active")]
            out["condition"].append(_path("Condition", pairs))
    for a in _sample(conn, "Appointment", SAMPLES * 2, rng):
        roles = [_ref(p.get("actor", {}), "PractitionerRole") for p in a["participant"]]
        role = next((r for r in roles if r), None)
        if role and "start" in a:
            pairs = [("actor", f"PractitionerRole/{role}"), ("date", a["start"][:10])]
            out["appointment"].append(_path("Appointment", pairs))
    r = search_reference.c
    referrers = func.count(func.distinct(r.resource_id))
    counts = conn.execute(
        select(r.target_id, referrers).where(r.target_type == "Patient").group_by(r.target_id)
    ).all()
    closest = sorted(counts, key=lambda row: (abs(row[1] - EVERYTHING), row[0]))[:20]
    for patient_id, _ in closest:
        out["revinclude_all"].append(_path("Patient", [("_id", patient_id), ("_revinclude", "*")]))
        out["everything"].append(f"/fhir/Patient/{patient_id}/$everything?_count=1000")
    return {name: paths[:SAMPLES] for name, paths in out.items()}


def matches(http: Http, paths: Sequence[str]) -> dict[str, float]:
    """What the searches return (not timed): mean total and Bundle entries, share empty."""
    totals, entries = [], []
    for path in paths[:50]:
        bundle = orjson.loads(http.call("GET", path)[2])
        totals.append(bundle.get("total", 0))
        entries.append(len(bundle.get("entry", [])))
    return {
        "mean_total": round(sum(totals) / len(totals), 1),
        "mean_entries": round(sum(entries) / len(entries), 1),
        "share_empty": round(sum(t == 0 for t in totals) / len(totals), 2),
    }


# ---- query plans ----------------------------------------------------------------------------


def search_query(path: str) -> SearchQuery:
    """The query the server runs for `path` (a type search, or `Patient/id/$everything` as
    services.fhir.listing.everything makes it)."""
    target, _, query_string = path.removeprefix("/fhir/").partition("?")
    pairs = parse_qsl(query_string)
    if not target.endswith("/$everything"):
        return parse_query(target, pairs, strict=True)
    patient_id = target.split("/")[1]
    return replace(
        parse_query(None, pairs, strict=True),
        compartment=("Patient", (patient_id,)),
        includes=(Include(None, None, None, iterate=False),),
    )


def plan(conn: Connection, path: str) -> dict[str, Any]:
    """Every statement the search runs (the matches, their contents, what they include),
    each with its plan: EXPLAIN (ANALYZE, BUFFERS) on PostgreSQL, EXPLAIN QUERY PLAN on
    SQLite. Run after the timed rounds, on a warm cache."""
    query = search_query(path)
    statements: list[tuple[str, Any]] = []

    def record(_c: Any, _cur: Any, statement: str, parameters: Any, _x: Any, many: bool) -> None:
        if not many and statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(conn, "before_cursor_execute", record)
    try:
        writing = lambda: nullcontext(SimpleNamespace(conn=conn))  # noqa: E731
        Searcher(conn, writing, datetime.now(UTC)).page(query, "benchmark")
    finally:
        event.remove(conn, "before_cursor_execute", record)
    out = []
    for statement, parameters in statements:
        started = time.perf_counter()
        if conn.dialect.name == "postgresql":
            explain = "EXPLAIN (ANALYZE, BUFFERS) " + statement
            lines = [row[0] for row in conn.exec_driver_sql(explain, parameters)]
        else:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            depth = {0: -1}
            lines = []
            for id_, parent, _, detail in rows:
                depth[id_] = depth.get(parent, -1) + 1
                lines.append("  " * depth[id_] + detail)
        ms = round((time.perf_counter() - started) * 1000, 2)
        out.append({"sql": statement, "explain_ms": ms, "plan": lines})
    return {"path": path, "statements": out}


# ---- measuring ------------------------------------------------------------------------------


def prewarm(url: str) -> float:
    """Read the whole dataset into the operating system's cache, as a server that has been
    up for a while has it (the first searches of a cold server read from disk); seconds."""
    started = time.perf_counter()
    if url.startswith("sqlite"):
        with Path(make_url(url).database or "").open("rb") as stream:
            while stream.read(1 << 24):
                pass
    else:
        with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
            conn.execute(
                "SELECT pg_prewarm(c.oid::regclass, 'read') FROM pg_class c"
                " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'i')"
            )
    return round(time.perf_counter() - started, 1)


def bench_size(database: str, size: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    url, load = dataset(database, size, args.rebuild)
    if args.prewarm:
        load["prewarm_seconds"] = prewarm(url)
        progress(f"  {database} {size}: read into the cache in {load['prewarm_seconds']}s")
    store = SqlStore.from_url(url)
    with store.engine.connect() as conn:
        paths = searches(conn)
        total = conn.scalar(select(func.count()).select_from(resource))
    own = tmp / f"{database}-{size}"  # each server its own signing key
    own.mkdir()
    server = OpenGP(url, own, own / "opengp.log")
    if args.pg_options:  # e.g. "-c plan_cache_mode=force_custom_plan", for an experiment
        server.env["PGOPTIONS"] = args.pg_options
    with server:
        progress(f"{database} {size}: server ready (pid {server.pid}), {total:,} resources")

        def step(paths: list[str]) -> Any:
            return lambda s, i: s.call("GET", paths[i % len(paths)])

        work = [
            Workload(
                name,
                lambda: Http(server.port, server.token),
                step(paths[name]),
                args.n // 4 if name in WHOLE_RECORD else args.n,
                server.pid,
            )
            for name in LABELS
        ]
        results = measure(work, args.threads, args.rounds, 100, progress)
        http = Http(server.port, server.token)
        for name in LABELS:
            results[name]["returns"] = matches(http, paths[name])
            results[name]["example"] = paths[name][0]
        http.close()
    with store.engine.connect() as conn:
        plans = {name: plan(conn, paths[name][0]) for name in PLANNED}
    store.dispose()
    return {
        "resources": total,
        "patients": config_for(size).patients,
        "load": load,
        "searches": results,
        "plans": plans,
    }


def _migrated(url: str) -> str:
    store = SqlStore.from_url(url)
    upgrade(store.engine)
    store.dispose()
    return url


@contextmanager
def empty_database(database: str, tmp: Path, name: str) -> Iterator[str]:
    if database == "sqlite":
        yield _migrated(f"sqlite:///{tmp / name}.db")
        return
    with fresh_postgres() as (url, _version):
        yield _migrated(url)


def bulk_rate(database: str, tmp: Path, bodies: list[dict[str, Any]], indexed: bool) -> float:
    """Resources per second of `create_many` into an empty database, batches of 2,000."""
    patch = (
        nullcontext()
        if indexed
        else mock.patch.object(RowWriter, "add_resource", return_value=None)
    )
    with empty_database(database, tmp, f"bulk-{indexed}-{time.monotonic_ns()}") as url:
        store = SqlStore.from_url(url)
        started = time.perf_counter()
        with patch, store.writing() as tx:
            for at in range(0, len(bodies), 2000):
                tx.create_many(bodies[at : at + 2000])
        seconds = time.perf_counter() - started
        store.dispose()
    return len(bodies) / seconds


def indexing_cost(database: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    bodies = [r for part in generate(config_for("10k")) for r in part.resources]
    rates: dict[str, list[float]] = {"indexed": [], "unindexed": []}
    for _ in range(3):  # interleaved, as everything else
        for mode in rates:
            rates[mode].append(bulk_rate(database, tmp, bodies, mode == "indexed"))
    bulk = {mode: round(sorted(r)[1]) for mode, r in rates.items()}  # the median of 3
    progress(f"{database}: bulk create {bulk} resources/s")
    with ExitStack() as stack:
        url = stack.enter_context(empty_database(database, tmp, "http"))
        servers = {}
        for mode in ("indexed", "unindexed"):
            server = OpenGP(url, tmp, tmp / f"opengp-{database}-{mode}.log")
            if mode == "unindexed":
                server.args[1:3] = ["-c", UNINDEXED]
            servers[mode] = stack.enter_context(server)

        def opener(server: OpenGP) -> Any:
            return lambda: Http(server.port, server.token)

        def create(s: Http, i: int) -> None:
            s.call("POST", "/fhir/Patient", orjson.dumps(patient(i)), expect=201)

        def bundle(s: Http, i: int) -> None:
            s.call("POST", "/fhir", orjson.dumps(transaction(i)))

        work = [
            Workload(f"{op}_{mode}", opener(server), fn, n, server.pid, items)
            for mode, server in servers.items()
            for op, fn, n, items in (("create", create, 1000, 1), ("transaction", bundle, 200, 10))
        ]
        http = measure(work, args.threads, args.rounds, 100, progress)
    return {"bulk_resources": len(bodies), "bulk_resources_per_s": bulk, "http": http}


# ---- report ---------------------------------------------------------------------------------


def indexing_rows(dbs: dict[str, Any]) -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for db in dbs.values():
        cost = db["indexing"]
        bulk = cost["bulk_resources_per_s"]
        cells = {
            "bulk create_many, indexed (resources/s)": f"{bulk['indexed']:,}",
            "bulk create_many, not indexed (resources/s)": f"{bulk['unindexed']:,}",
            "bulk throughput, indexed / not": f"{bulk['indexed'] / bulk['unindexed']:.2f}x",
        }
        for op in ("create", "transaction"):
            p50 = {m: cost["http"][f"{op}_{m}"]["sequential"]["p50_ms"] for m in bulk}
            cells[f"HTTP {op} p50 ms, indexed"] = f"{p50['indexed']:.2f}"
            cells[f"HTTP {op} p50 ms, not indexed"] = f"{p50['unindexed']:.2f}"
            cells[f"HTTP {op} p50, indexed / not"] = f"{p50['indexed'] / p50['unindexed']:.2f}x"
        for label, cell in cells.items():
            rows.setdefault(label, []).append(cell)
    return rows


def markdown(results: dict[str, Any]) -> str:
    dbs = results["databases"]
    sizes = results["sizes"]
    head = " | ".join(f"{s} p50 | {s} p99" for s in sizes)
    out = [
        f"| search | database | resources returned | {head} | {sizes[-1]}/{sizes[0]} p50 "
        f"| {sizes[-1]}/{sizes[0]} p99 | target (p99, PG {sizes[-1]}) |",
        f"|---|---|--:|{'--:|--:|' * len(sizes)}--:|--:|---|",
    ]
    for name, label in LABELS.items():
        for db_name, db in dbs.items():
            runs = [db["sizes"][s]["searches"][name] for s in sizes]
            seq = [r["sequential"] for r in runs]
            cells = " | ".join(f"{s['p50_ms']:.1f} | {s['p99_ms']:.1f}" for s in seq)
            target, ratio_p99 = TARGETS_MS.get(name), seq[-1]["p99_ms"] / seq[0]["p99_ms"]
            verdict = ""
            if target and db_name == "postgres":
                verdict = f"< {target:g} ms: {'met' if seq[-1]['p99_ms'] < target else 'missed'}"
            returned = runs[-1]["returns"]["mean_entries"]
            out.append(
                f"| `{label}` | {db_name} | {returned:g} | {cells} "
                f"| {seq[-1]['p50_ms'] / seq[0]['p50_ms']:.2f}x | {ratio_p99:.2f}x | {verdict} |"
            )
    costed = {name: db for name, db in dbs.items() if db["indexing"]}
    if costed:
        out += ["", f"| indexing cost | {' | '.join(costed)} |", "|---|" + "--:|" * len(costed)]
        for label, values in indexing_rows(costed).items():
            out.append(f"| {label} | {' | '.join(values)} |")
    for db_name, db in dbs.items():
        size = sizes[-1]
        out += ["", f"Plans on {db_name} at {size}:"]
        for found in db["sizes"][size]["plans"].values():
            out += ["", f"`{found['path']}`"]
            for statement in found["statements"]:
                head = " ".join(statement["sql"].split())[:160]
                lines = statement["plan"]
                cut = (
                    [f"... ({len(lines) - PLAN_LINES} more lines)"]
                    if len(lines) > PLAN_LINES
                    else []
                )
                out += ["", "```", f"-- {head} ...", *lines[:PLAN_LINES], *cut, "```"]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.search", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--sizes", default="10k,100k,1m")
    parser.add_argument("--n", type=int, default=400, help="searches of each kind per mode")
    parser.add_argument("--threads", type=int, default=8, help="concurrent clients")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached datasets")
    parser.add_argument("--pg-options", default="", help="PGOPTIONS for the server (libpq)")
    parser.add_argument("--no-indexing-cost", action="store_true", help="searches only")
    parser.add_argument(
        "--prewarm", action="store_true", help="read each dataset into the cache first"
    )
    args = parser.parse_args(argv)
    sizes = [s for s in args.sizes.split(",") if s]
    results: dict[str, Any] = {
        "benchmark": "search",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks.search", *(argv or sys.argv[1:])]),
        "n": args.n,
        "threads": args.threads,
        "rounds": args.rounds,
        "machine": machine(),
        "targets_p99_ms": TARGETS_MS,
        "sizes": sizes,
        "pg_options": args.pg_options,
        "prewarm": args.prewarm,
        "databases": {},
    }
    for database in [d for d in args.databases.split(",") if d]:
        with tempfile.TemporaryDirectory(prefix="opengp-bench-") as tmp_name:
            tmp = Path(tmp_name)
            found = {size: bench_size(database, size, args, tmp) for size in sizes}
            # Kept at once: a later failure must not lose a database's results.
            results["databases"][database] = {"sizes": found, "indexing": None}
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "search.json").write_text(json.dumps(results, indent=2) + "\n")
            cost = None if args.no_indexing_cost else indexing_cost(database, args, tmp)
        results["databases"][database]["indexing"] = cost
    (args.out / "search.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (args.out / "search.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
