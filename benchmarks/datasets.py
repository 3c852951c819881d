"""Benchmark datasets: a synthetic practice sized to about 10k, 100k or 1M+ resources.

    python -m benchmarks.datasets 100k --database URL

The patient count for a size comes from the generator's own resources-per-patient, measured
on a sample, so the datasets follow the generator as it changes; each has at least its
nominal number of resources. Seeds and "today" are fixed:
the same size always builds the same practice.
"""

from __future__ import annotations

import argparse
import math
import sys

from benchmarks.demo_load import AS_OF
from opengp.demo.generator import generate
from opengp.demo.load import seed
from opengp.demo.model import DemoConfig
from opengp.store.migrate import upgrade
from opengp.store.sql import SqlStore
from opengp.store.sql.reindex import refresh_statistics

SIZES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000}
SAMPLE = 200
# A practice-wide share (staff, rotas, slots) grows more slowly than the patients, so large
# practices have fewer resources per patient than the sample: sized up to reach at least
# the nominal size.
MARGIN = 1.08


def resources_per_patient() -> float:
    config = DemoConfig(patients=SAMPLE, seed=1, as_of=AS_OF)
    total = sum(len(part.resources) for part in generate(config))
    return total / SAMPLE


def config_for(size: str) -> DemoConfig:
    patients = math.ceil(SIZES[size] * MARGIN / resources_per_patient())
    return DemoConfig(patients=patients, seed=1, as_of=AS_OF)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.datasets")
    parser.add_argument("size", choices=sorted(SIZES))
    parser.add_argument("--database", required=True)
    args = parser.parse_args(argv)
    config = config_for(args.size)
    store = SqlStore.from_url(args.database)
    upgrade(store.engine)
    result = seed(store, config)
    # As `opengp demo` and `opengp import` do after a load (also for a dataset built before
    # they did): the planner's statistics.
    refresh_statistics(store.engine)
    store.dispose()
    state = "already there" if result.reused else f"{result.total:,} resources"
    print(f"{args.size}: {config.patients:,} patients, {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
