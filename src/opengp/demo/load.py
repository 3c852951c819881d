"""Seeding a store with the synthetic practice, and writing it as NDJSON.

The whole practice is loaded in one transaction through the store's bulk path: a seed that
fails part way leaves nothing behind, and one that is run again finds the practice and
reuses it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from opengp.demo.generator import generate, practice_of
from opengp.demo.model import DemoConfig
from opengp.fhir import jsonio
from opengp.store.sql import SqlStore
from opengp.store.sql.store import SqlWriteTransaction

BATCH = 2000
# Called after each part with (part kind, patients done so far).
Progress = Callable[[str, int], None]


@dataclass(slots=True)
class SeedResult:
    reused: bool
    counts: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _count(counts: Counter[str], resources: Iterable[dict[str, Any]]) -> None:
    counts.update(r["resourceType"] for r in resources)


def seed(
    store: SqlStore,
    config: DemoConfig,
    progress: Progress | None = None,
    also: Callable[[SqlWriteTransaction], None] | None = None,
) -> SeedResult:
    """Load the practice unless it is already there; `also` runs in the same transaction
    (accounts and clients that must exist exactly when the practice does)."""
    started = time.perf_counter()
    practice = practice_of(config)
    with store.reading() as tx:
        existing = tx.current("Organization", practice.organization_id)
    if existing is not None and not existing.deleted:
        return SeedResult(reused=True)
    result = SeedResult(reused=False)
    batch: list[dict[str, Any]] = []
    patients = 0
    with store.writing(bulk=True) as tx:
        for part in generate(config):
            batch += part.resources
            _count(result.counts, part.resources)
            patients += part.kind == "patient"
            if len(batch) >= BATCH:
                tx.create_many(batch)
                batch = []
            if progress:
                progress(part.kind, patients)
        tx.create_many(batch)
        if also is not None:
            also(tx)
    result.seconds = time.perf_counter() - started
    return result


def write_ndjson(
    config: DemoConfig, directory: Path, progress: Progress | None = None
) -> SeedResult:
    """One `<Type>.ndjson` file per resource type (the FHIR Bulk Data format)."""
    started = time.perf_counter()
    directory.mkdir(parents=True, exist_ok=True)
    result = SeedResult(reused=False)
    files: dict[str, IO[bytes]] = {}
    patients = 0
    try:
        for part in generate(config):
            for resource in part.resources:
                kind = resource["resourceType"]
                out = files.get(kind)
                if out is None:
                    out = files[kind] = (directory / f"{kind}.ndjson").open("wb")
                out.write(jsonio.dumps(resource) + b"\n")
            _count(result.counts, part.resources)
            patients += part.kind == "patient"
            if progress:
                progress(part.kind, patients)
    finally:
        for out in files.values():
            out.close()
    result.seconds = time.perf_counter() - started
    return result
