"""Run named benchmark workloads: `python -m benchmarks [WORKLOAD ...] [--out DIR]`.

Each workload writes `<name>.json` and `<name>.md` into DIR (default docs/benchmarks).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from benchmarks import access_cost, bulk, crud, demo_load, search

WORKLOADS: dict[str, Callable[[list[str] | None], int]] = {
    "access-cost": access_cost.main,
    "bulk": bulk.main,
    "crud": crud.main,
    "demo-load": demo_load.main,
    "search": search.main,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("workloads", nargs="*", help=f"any of {', '.join(WORKLOADS)} (default all)")
    parser.add_argument("--out", default="docs/benchmarks")
    args = parser.parse_args(argv)
    unknown = set(args.workloads) - set(WORKLOADS)
    if unknown:
        parser.error(
            f"unknown workload {', '.join(sorted(unknown))}; choose from {', '.join(WORKLOADS)}"
        )
    for name in args.workloads or WORKLOADS:
        print(f"== {name}", flush=True)
        if WORKLOADS[name](["--out", args.out]) != 0:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
