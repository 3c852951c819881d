"""Moving a practice: export, import and verify, and what indexing costs the bulk path.

    python -m benchmarks.bulk [--out docs/benchmarks] [--patients 1000,10000]
                              [--databases sqlite,postgres] [--before DIR] [--no-indexing-cost]

For each database and size: the synthetic practice (seed 1, "today" 2026-11-01) is loaded
into a fresh source database (`opengp demo`), then `opengp export`, `opengp import` into a
fresh target database and `opengp migrate verify` run as the commands they are, each in its
own process: wall seconds, CPU seconds (user + system of the command; PostgreSQL's own work
is in the server) and peak RSS. The import rate is accepted resources per wall second.

`--before DIR` (a source tree, e.g. `git archive HEAD src | tar -x -C DIR`) also runs each
import with that tree's code, interleaved with the current one on the same export, so the
two are compared within one run on a noisy machine.

The indexing cost: the practice loaded through the bulk path (`seed`, `create_many`) with
and without search indexing (`RowWriter.add_resource` made a no-op), interleaved, best of
`--repeat`; the ratio of their throughputs. Targets: import 5,000 resources/s on both
databases; a 10,000-patient migration (export + import + verify) under 15 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

from benchmarks.harness import fresh_postgres

AS_OF = "2026-11-01"  # a fixed "today", so every run builds the same practice
IMPORT_TARGET = 5000.0  # resources/s
MIGRATION_TARGET = 15 * 60.0  # seconds, 10,000 patients


@contextmanager
def empty_database(database: str, tmp: Path, name: str) -> Iterator[str]:
    if database == "sqlite":
        yield f"sqlite:///{tmp}/{name}.db"
    else:
        with fresh_postgres("opengp_bench_bulk") as (url, _version):
            yield url


def command(args: Sequence[str], source: Path | None = None) -> dict[str, float]:
    """Run `opengp ARGS` (from `source`'s tree when given): wall s, CPU s, peak RSS MB."""
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(source / "src")
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "opengp", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"opengp {' '.join(args)} failed: {output.decode()[-2000:]}")
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
    }


def resources_in(directory: Path) -> int:
    manifest = json.loads((directory / "manifest.json").read_text())
    return sum(int(o["count"]) for o in manifest["output"])


def migration(
    database: str, patients: int, tmp: Path, before: Path | None, repeat: int
) -> dict[str, Any]:
    """Seed a source database, export it, import it into fresh targets and verify one."""
    found: dict[str, Any] = {"database": database, "patients": patients}
    with empty_database(database, tmp, f"source-{patients}") as source:
        seed = ["demo", "--patients", str(patients), "--seed", "1", "--as-of", AS_OF]
        found["seed"] = command([*seed, "--database", source])
        export = tmp / f"export-{database}-{patients}"
        found["export"] = command(["export", "--out", str(export), "--database", source])
    found["resources"] = resources_in(export)
    trees: list[tuple[str, Path | None]] = [("after", None)]
    if before is not None:
        trees.insert(0, ("before", before))
    for round_ in range(repeat):
        for label, tree in trees:
            last = round_ == repeat - 1 and label == "after"
            with empty_database(database, tmp, f"target-{label}-{round_}") as target:
                command(["db", "upgrade", "--database", target])  # an empty schema first
                report = tmp / f"report-{label}-{round_}.ndjson"
                args = ["import", str(export), "--report", str(report), "--database", target]
                run = command(args, tree)
                run["resources_per_s"] = round(found["resources"] / run["seconds"])
                found.setdefault(f"import_{label}", []).append(run)
                if last:  # verify the current code's import
                    check = tmp / f"reconciliation-{database}-{patients}.json"
                    verify = ["migrate", "verify", str(export), "--report", str(check)]
                    found["verify"] = command([*verify, "--database", target])
                    found["verified"] = json.loads(check.read_text()).get("ok")
    best = min(found["import_after"], key=lambda r: r["seconds"])
    found["import"] = best
    found["migration_seconds"] = round(
        found["export"]["seconds"] + best["seconds"] + found["verify"]["seconds"], 1
    )
    if before is not None:
        old = min(r["seconds"] for r in found["import_before"])
        found["import_speedup"] = round(old / best["seconds"], 2)
        old_cpu = min(r["cpu_seconds"] for r in found["import_before"])
        new_cpu = min(r["cpu_seconds"] for r in found["import_after"])
        found["import_cpu_speedup"] = round(old_cpu / new_cpu, 2)
    return found


def _seed_rate(url: str, patients: int, indexed: bool) -> tuple[float, float]:
    """Resources per wall second and per CPU second (this process's: on a busy machine,
    the steadier of the two)."""
    from opengp.demo.load import seed
    from opengp.demo.model import DemoConfig
    from opengp.store.migrate import upgrade
    from opengp.store.sql import SqlStore
    from opengp.store.sql.search_tables import RowWriter

    store = SqlStore.from_url(url)
    upgrade(store.engine)
    config = DemoConfig(patients=patients, seed=1, as_of=datetime.fromisoformat(AS_OF).date())
    skip = mock.patch.object(RowWriter, "add_resource", return_value=None)
    try:
        with skip if not indexed else nullcontext():
            started, cpu = time.perf_counter(), time.process_time()
            result = seed(store, config)
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            return result.total / wall, result.total / cpu
    finally:
        store.dispose()


def indexing_cost(database: str, patients: int, tmp: Path, repeat: int) -> dict[str, Any]:
    rates: dict[str, list[tuple[float, float]]] = {"indexed": [], "unindexed": []}
    for round_ in range(repeat):
        for mode in rates:
            with empty_database(database, tmp, f"cost-{mode}-{round_}") as url:
                rates[mode].append(_seed_rate(url, patients, mode == "indexed"))
    wall = {mode: round(max(r[0] for r in found)) for mode, found in rates.items()}
    cpu = {mode: round(max(r[1] for r in found)) for mode, found in rates.items()}
    return {
        "database": database,
        "patients": patients,
        "resources_per_s": wall,
        "resources_per_cpu_s": cpu,
        "ratio": round(wall["indexed"] / wall["unindexed"], 2),
        "cpu_ratio": round(cpu["indexed"] / cpu["unindexed"], 2),
    }


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "| database | patients | resources | export s | import s | import resources/s"
        " | import CPU s | import peak RSS MB | verify s | migration s | before/after"
        " | CPU before/after |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in results["migrations"]:
        imp = row["import"]
        speedup = f"{row['import_speedup']:.2f}x" if "import_speedup" in row else ""
        cpu_speedup = f"{row['import_cpu_speedup']:.2f}x" if "import_cpu_speedup" in row else ""
        lines.append(
            f"| {row['database']} | {row['patients']:,} | {row['resources']:,} "
            f"| {row['export']['seconds']:.1f} | {imp['seconds']:.1f} "
            f"| {imp['resources_per_s']:,} | {imp['cpu_seconds']:.1f} "
            f"| {imp['peak_rss_mb']:.0f} | {row['verify']['seconds']:.1f} "
            f"| {row['migration_seconds']:.1f} | {speedup} | {cpu_speedup} |"
        )
    if results["indexing"]:
        lines += [
            "",
            "| database | patients | create_many indexed /s | not indexed /s | indexed / not"
            " | per CPU s: indexed | not indexed | indexed / not |",
            "|---|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for cost in results["indexing"]:
            rate, cpu = cost["resources_per_s"], cost["resources_per_cpu_s"]
            lines.append(
                f"| {cost['database']} | {cost['patients']:,} | {rate['indexed']:,} "
                f"| {rate['unindexed']:,} | {cost['ratio']:.2f}x | {cpu['indexed']:,} "
                f"| {cpu['unindexed']:,} | {cost['cpu_ratio']:.2f}x |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bulk")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    parser.add_argument("--patients", default="1000,10000")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--before", type=Path, help="a source tree to compare imports with")
    parser.add_argument("--repeat", type=int, default=1, help="imports per tree and size")
    parser.add_argument("--cost-patients", type=int, default=1000)
    parser.add_argument("--no-indexing-cost", action="store_true")
    parser.add_argument("--name", default="bulk", help="file name of the results")
    args = parser.parse_args(argv)
    if args.before is not None and not (args.before / "src" / "opengp").is_dir():
        parser.error(f"{args.before} has no src/opengp")
    sizes = [int(p) for p in args.patients.split(",") if p]
    results: dict[str, Any] = {
        "benchmark": "bulk",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "migrations": [],
        "indexing": [],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    for database in [d for d in args.databases.split(",") if d]:
        with tempfile.TemporaryDirectory(prefix="opengp-bench-bulk-") as name:
            tmp = Path(name)
            for patients in sizes:
                print(f"bulk: {patients} patients, {database} ...", flush=True)
                found = migration(database, patients, tmp, args.before, args.repeat)
                results["migrations"].append(found)
                print(json.dumps(found), flush=True)
            if not args.no_indexing_cost:
                cost = indexing_cost(database, args.cost_patients, tmp, args.repeat)
                results["indexing"].append(cost)
                print(json.dumps(cost), flush=True)
        (args.out / f"{args.name}.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (args.out / f"{args.name}.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
