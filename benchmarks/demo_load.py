"""Generating and loading the synthetic practice: time, resources per second, peak memory.

    python -m benchmarks.demo_load [--out docs/benchmarks] [--patients 1000,10000]
                                   [--databases sqlite,postgres]

Each case runs in a fresh process (so its peak RSS is its own) on a fresh database. Targets:
1,000 patients into SQLite under 30 s, 10,000 under 5 minutes, memory flat in the number of
patients.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from benchmarks.harness import fresh_postgres

AS_OF = date(2026, 11, 1)  # a fixed "today", so every run builds the same practice
TARGET_SECONDS = {1000: 30.0, 10000: 300.0}


def one(patients: int, url: str) -> dict[str, Any]:
    """Seed one practice into `url` in this process; report time and peak memory."""
    from opengp.demo.load import seed
    from opengp.demo.model import DemoConfig
    from opengp.store.migrate import upgrade
    from opengp.store.sql import SqlStore

    store = SqlStore.from_url(url)
    upgrade(store.engine)
    started = time.perf_counter()
    result = seed(store, DemoConfig(patients=patients, seed=1, as_of=AS_OF))
    seconds = time.perf_counter() - started
    store.dispose()
    return {
        "patients": patients,
        "resources": result.total,
        "seconds": round(seconds, 2),
        "resources_per_s": round(result.total / seconds),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "by_type": dict(sorted(result.counts.items())),
    }


def case(patients: int, url: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.demo_load", "--one", str(patients), url]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "| database | patients | resources | seconds | resources/s | peak RSS MB | target |",
        "|---|--:|--:|--:|--:|--:|---|",
    ]
    for row in results["cases"]:
        target = TARGET_SECONDS.get(row["patients"])
        verdict = ""
        if target and row["database"] == "sqlite":
            met = "met" if row["seconds"] <= target else "missed"
            verdict = f"< {target:g} s: {met}"
        lines.append(
            f"| {row['database']} | {row['patients']:,} | {row['resources']:,} "
            f"| {row['seconds']:.1f} | {row['resources_per_s']:,} | {row['peak_rss_mb']:.0f} "
            f"| {verdict} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.demo_load")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    parser.add_argument("--patients", default="1000,10000")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--one", nargs=2, metavar=("PATIENTS", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(int(args.one[0]), args.one[1])))
        return 0
    sizes = [int(p) for p in args.patients.split(",") if p]
    databases = [d for d in args.databases.split(",") if d]
    results: dict[str, Any] = {
        "benchmark": "demo-load",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "as_of": AS_OF.isoformat(),
        "cases": [],
    }
    for database in databases:
        for patients in sizes:
            print(f"demo-load: {patients} patients into {database} ...", flush=True)
            if database == "sqlite":
                with tempfile.TemporaryDirectory(prefix="opengp-bench-") as tmp:
                    row = case(patients, f"sqlite:///{tmp}/opengp.db")
            else:
                with fresh_postgres() as (url, _version):
                    row = case(patients, url)
            results["cases"].append({"database": database, **row})
            print(f"  {row['resources']:,} resources in {row['seconds']} s", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "demo-load.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (args.out / "demo-load.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
