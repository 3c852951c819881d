"""Verified migration: does a database hold exactly what an export holds?

`verify` compares the export in a directory (`opengp export`: NDJSON files and their
manifest) with a database and reconciles:
- each file against the manifest: SHA-256 and resource count;
- each type: resources in the export, live resources in the database, and which ids are
  missing, altered or extra;
- each resource: the content hash (`ndjson.content_hash`: SHA-256 of the JSON with keys
  sorted, leaving out meta.versionId and meta.lastUpdated, which an import sets afresh);
- each reference (`Type/id`): it resolves to a live resource in the database.

The ids and hashes of the export are kept in a scratch ledger, not in memory; the database
is read from one snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from opengp.fhir import jsonio
from opengp.fhir.datetimes import instant
from opengp.fhir.definitions import RESOURCE_TYPES
from opengp.services.bulk.checking import reference_targets
from opengp.services.bulk.ledger import Ledger
from opengp.services.bulk.manifest import ManifestFile, read_manifest
from opengp.services.bulk.ndjson import content_hash, file_sha256, lines
from opengp.store.sql import SqlStore
from opengp.store.sql import bulk as sql
from opengp.store.sql.store import SqlReadTransaction

SHOWN = 100  # ids listed per kind of difference (all are counted)
BATCH = 1000
CONTENT_HASH = (
    "SHA-256 of the resource's JSON with keys sorted, no whitespace, decimals as written,"
    " without meta.versionId and meta.lastUpdated"
)
Progress = Callable[[str, int, int], None]


@dataclass(slots=True)
class Differences:
    count: int = 0
    ids: list[str] = field(default_factory=list)

    def add(self, id: str) -> None:
        self.count += 1
        if len(self.ids) < SHOWN:
            self.ids.append(id)


@dataclass(slots=True)
class TypeReconciliation:
    in_export: int = 0
    in_database: int = 0
    identical: int = 0
    missing: Differences = field(default_factory=Differences)
    altered: Differences = field(default_factory=Differences)
    extra: Differences = field(default_factory=Differences)

    @property
    def ok(self) -> bool:
        return not (self.missing.count or self.altered.count or self.extra.count)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "inExport": self.in_export,
            "inDatabase": self.in_database,
            "identical": self.identical,
        }
        for name, found in (("missing", self.missing), ("altered", self.altered)):
            body[name] = found.count
            body[f"{name}Ids"] = found.ids
        body["extra"] = self.extra.count
        body["extraIds"] = self.extra.ids
        return body


@dataclass(slots=True)
class Reconciliation:
    checked: datetime
    types: dict[str, TypeReconciliation] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # the export itself: files, lines
    references: int = 0
    dangling: Differences = field(default_factory=Differences)

    @property
    def ok(self) -> bool:
        types_ok = all(t.ok for t in self.types.values())
        return types_ok and not self.problems and not self.dangling.count

    def type(self, resource_type: str) -> TypeReconciliation:
        return self.types.setdefault(resource_type, TypeReconciliation())

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": instant(self.checked),
            "contentHash": CONTENT_HASH,
            "files": self.files,
            "problems": self.problems,
            "types": {t: self.types[t].to_json() for t in sorted(self.types)},
            "references": {
                "checked": self.references,
                "dangling": self.dangling.count,
                "danglingExamples": self.dangling.ids,
            },
        }


def _read_file(
    directory: Path, index: int, listed: ManifestFile, ledger: Ledger, result: Reconciliation
) -> None:
    path = directory / listed.file
    if not path.is_file():
        result.problems.append(f"{listed.file}: listed in the manifest but missing")
        return
    sha_ok = listed.sha256 is None or file_sha256(path) == listed.sha256
    count = 0
    with path.open("rb") as stream:
        for line in lines(stream):
            where = f"{listed.file} line {line.number}"
            if line.too_long or not line.data.strip():
                result.problems.append(f"{where}: not a resource")
                continue
            try:
                body = jsonio.loads(line.data)
                resource_type, id = body["resourceType"], body["id"]
            except (jsonio.JsonError, TypeError, KeyError):
                result.problems.append(f"{where}: not a resource with resourceType and id")
                continue
            count += 1
            if resource_type != listed.type:
                result.problems.append(f"{where}: a {resource_type} in the {listed.type} file")
            earlier = ledger.add(
                resource_type, id, index, line.number, ok=True, hash=content_hash(body)
            )
            if earlier is not None:
                result.problems.append(
                    f"{where}: {resource_type}/{id} is also at line {earlier[1]}"
                )
            ledger.add_refs((index, line.number, t, i) for t, i in reference_targets(body))
    if not sha_ok:
        result.problems.append(f"{listed.file}: its SHA-256 differs from the manifest's")
    if listed.count is not None and listed.count != count:
        result.problems.append(
            f"{listed.file}: {count} resources, the manifest says {listed.count}"
        )
    result.files.append(
        {"file": listed.file, "type": listed.type, "resources": count, "sha256Matches": sha_ok}
    )


def _compare_type(
    conn: Connection, resource_type: str, ledger: Ledger, result: Reconciliation
) -> None:
    found = result.type(resource_type)
    tx = SqlReadTransaction(conn)
    for items in ledger.items(resource_type, BATCH):
        found.in_export += len(items)
        stored = {s.id: s for s in tx.read_many(resource_type, [id for id, _ in items])}
        missing = []
        for id, expected in items:
            current = stored.get(id)
            if current is None or current.content is None:
                found.missing.add(id)
                missing.append((resource_type, id))
            elif content_hash(jsonio.loads(current.content)) != expected:
                found.altered.add(id)
            else:
                found.identical += 1
        ledger.mark_missing(missing)  # references to them do not resolve either
    found.in_database = sql.count_live(conn, resource_type)
    if found.in_database > found.identical + found.altered.count:
        after = ""
        while ids := sql.ids_after(conn, resource_type, after, BATCH):
            known = ledger.known(resource_type, ids)
            for id in ids:
                if id not in known:
                    found.extra.add(id)
            after = ids[-1]


def _check_references(conn: Connection, ledger: Ledger, result: Reconciliation) -> None:
    result.references = ledger.reference_count()
    ledger.find_missing(lambda resource_type, ids: sql.live_ids(conn, resource_type, ids))
    for source_type, source_id, target_type, target_id in ledger.references_to_missing():
        result.dangling.add(f"{source_type}/{source_id} -> {target_type}/{target_id}")


def verify(
    store: SqlStore, directory: Path, workdir: Path, progress: Progress | None = None
) -> Reconciliation:
    """Reconcile the export in `directory` with `store` (see the module's description)."""
    listed = read_manifest(directory)
    result = Reconciliation(store.clock())
    ledger_path = workdir / "verify-ledger.sqlite3"
    ledger_path.unlink(missing_ok=True)
    ledger = Ledger(ledger_path, [f.file for f in listed])
    try:
        for index, item in enumerate(listed):
            if progress:
                progress("reading the export", index, len(listed))
            _read_file(directory, index, item, ledger, result)
        with sql.snapshot(store.engine) as conn:
            types = sorted(
                set(ledger.types()) | {t for t in RESOURCE_TYPES if sql.count_live(conn, t)}
            )
            for index, resource_type in enumerate(types):
                if progress:
                    progress("comparing with the database", index, len(types))
                _compare_type(conn, resource_type, ledger, result)
            _check_references(conn, ledger, result)
    finally:
        ledger.close()
        ledger_path.unlink(missing_ok=True)
    return result
