"""`opengp export`, `opengp import` and `opengp migrate verify`: moving a practice.

    opengp export --out DIR [--database URL]
    opengp import DIR [--mode all-or-nothing|valid-rest] [--report FILE] [--workers N]
                      [--database URL]
    opengp migrate verify DIR [--report FILE] [--database URL]

`export` writes one `<Type>.ndjson` per resource type and `manifest.json` (per-type counts
and the SHA-256 of each file). `import` loads such a directory (or any NDJSON files) keeping
ids; run again, it changes nothing. `migrate verify` reconciles the export with a database
and writes the report (docs/bulk.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from opengp.access.audit import entry_for
from opengp.access.principal import Principal
from opengp.cli import DATABASE_HELP, Failure, open_store
from opengp.services.bulk.export import ExportRequest, run_export
from opengp.services.bulk.importing import MODES, ImportResult, Source, run_import
from opengp.services.bulk.manifest import MANIFEST, manifest, read_manifest, write_manifest
from opengp.services.bulk.verify import Reconciliation, verify
from opengp.store.sql.reindex import refresh_statistics

# Who the audit trail says exported or imported from the command line.
OPERATOR = Principal("system", "opengp-cli", "opengp command line", purpose="migration")
IMPORT_REPORT = "import-report.ndjson"
RECONCILIATION = "reconciliation.json"
SHOWN_PROBLEMS = 20


def register(commands: Any) -> None:
    export = commands.add_parser("export", help="export every resource as FHIR NDJSON")
    export.add_argument("--out", required=True, metavar="DIR", help="a new or empty directory")
    export.add_argument("--database", help=DATABASE_HELP)
    export.set_defaults(run=cmd_export)

    load = commands.add_parser("import", help="import FHIR NDJSON files, keeping ids")
    load.add_argument("directory", metavar="DIR", help="NDJSON files (with manifest.json)")
    load.add_argument(
        "--mode",
        choices=MODES,
        default="all-or-nothing",
        help="all-or-nothing (default): nothing if any line has a problem;"
        " valid-rest: import the lines without problems",
    )
    load.add_argument(
        "--report", metavar="FILE", help=f"problems found (default DIR/{IMPORT_REPORT})"
    )
    load.add_argument(
        "--workers",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="processes that check and prepare lines",
    )
    load.add_argument("--database", help=DATABASE_HELP)
    load.set_defaults(run=cmd_import)

    migrate = commands.add_parser("migrate", help="practice migration")
    steps = migrate.add_subparsers(dest="migrate_command", required=True, metavar="COMMAND")
    check = steps.add_parser("verify", help="reconcile an export with a database")
    check.add_argument("directory", metavar="DIR", help="the output of opengp export")
    check.add_argument("--report", metavar="FILE", help=f"default DIR/{RECONCILIATION}")
    check.add_argument("--database", help=DATABASE_HELP)
    check.set_defaults(run=cmd_verify)


@contextmanager
def _bars() -> Iterator[Callable[[str, int, int], None]]:
    """Progress bars, one per phase (on a terminal; nothing in a log)."""
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def progress(phase: str, done: int, total: int) -> None:
        bar = bars.get(phase)
        if bar is None:
            for other in bars.values():
                other.close()
            unit = "resource" if phase == "loading" else "B"
            bar = bars[phase] = tqdm(
                total=total,
                desc=phase,
                unit=unit,
                unit_scale=unit == "B",
                file=sys.stderr,
                disable=None,
            )
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield progress
    finally:
        for bar in bars.values():
            bar.close()


def cmd_export(args: argparse.Namespace) -> None:
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise Failure(f"{out} is not an empty directory: export into a new one")
    request = ExportRequest("system")
    store = open_store(args)
    try:
        with _bars() as bars:
            result = run_export(
                store,
                request,
                out,
                request.candidate_types(),
                progress=lambda kind, done, total, written: bars("exporting types", done, total),
            )
        body = manifest(
            result.transaction_time, "opengp export", result.outputs, str, requires_token=False
        )
        write_manifest(out, body)
        with store.writing() as tx:
            detail = {
                "operation": "export",
                "resources": result.total,
                "files": len(result.outputs),
            }
            tx.audit(entry_for(OPERATOR, "export", detail=detail))
    finally:
        store.dispose()
    kinds = ", ".join(f"{o.count} {o.type}" for o in result.outputs)
    print(f"Exported {result.total} resources to {out}: {kinds or 'none'}.")
    print(f"{MANIFEST} lists each file with its resource count and SHA-256.")


def _sources(directory: Path) -> list[Source]:
    if not directory.is_dir():
        raise Failure(f"{directory} is not a directory")
    if (directory / MANIFEST).exists():
        return [Source(f.file, directory / f.file, f.sha256) for f in read_manifest(directory)]
    found = sorted(p for p in directory.glob("*.ndjson") if p.name != IMPORT_REPORT)
    if not found:
        raise Failure(f"{directory} holds no .ndjson files")
    return [Source(p.name, p) for p in found]


def _print_import(result: ImportResult, report: Path) -> None:
    done = ", ".join(
        f"{sum(counts.values())} {what}"
        for what, counts in (
            ("created", result.created),
            ("updated", result.updated),
            ("unchanged", result.unchanged),
        )
    )
    print(f"Read {result.resources} resources; {result.accepted} without problems.")
    if result.loaded:
        print(f"Imported: {done}.")
    for problem in result.first_problems[:SHOWN_PROBLEMS]:
        print(f"  {problem.text()}", file=sys.stderr)
    if result.problems > SHOWN_PROBLEMS:
        print(f"  ... and {result.problems - SHOWN_PROBLEMS} more", file=sys.stderr)
    if result.problems:
        print(f"Every problem, by file and line: {report}", file=sys.stderr)


def cmd_import(args: argparse.Namespace) -> None:
    directory = Path(args.directory)
    sources = _sources(directory)
    report = Path(args.report) if args.report else directory / IMPORT_REPORT
    store = open_store(args)
    try:
        with tempfile.TemporaryDirectory() as work, _bars() as bars:
            result = run_import(
                store,
                sources,
                args.mode,
                Path(work),
                audit=lambda detail: entry_for(OPERATOR, "create", detail=detail),
                progress=bars,
                workers=max(1, args.workers),
                report=report,
            )
        if result.loaded:
            refresh_statistics(store.engine)  # search plans need them after a bulk load
    finally:
        store.dispose()
    _print_import(result, report)
    if not result.problems:
        report.unlink(missing_ok=True)
        return
    if not result.loaded:
        raise Failure(
            f"{result.rejected} lines have problems: nothing was imported (all-or-nothing);"
            " fix them and run again, or import the rest with --mode valid-rest"
        )
    raise Failure(f"{result.rejected} lines were not imported; fix them and run again")


def _print_reconciliation(result: Reconciliation, report: Path) -> None:
    columns = ("EXPORT", "DATABASE", "SAME", "MISSING", "ALTERED", "EXTRA")
    print(f"{'TYPE':<22}" + "".join(f" {c:>8}" for c in columns))
    for name in sorted(result.types):
        t = result.types[name]
        print(
            f"{name:<22} {t.in_export:>8} {t.in_database:>8} {t.identical:>8}"
            f" {t.missing.count:>8} {t.altered.count:>8} {t.extra.count:>8}"
        )
    print(f"References: {result.references} checked, {result.dangling.count} not resolving.")
    for problem in result.problems[:SHOWN_PROBLEMS]:
        print(f"  {problem}", file=sys.stderr)
    print(f"Reconciliation report: {report}")


def cmd_verify(args: argparse.Namespace) -> None:
    directory = Path(args.directory)
    report = Path(args.report) if args.report else directory / RECONCILIATION
    store = open_store(args)
    try:
        with tempfile.TemporaryDirectory() as work, _bars() as bars:
            result = verify(store, directory, Path(work), bars)
    finally:
        store.dispose()
    report.write_bytes(orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2) + b"\n")
    _print_reconciliation(result, report)
    if not result.ok:
        raise Failure("the database does not hold exactly what the export holds: see the report")
    print("Verified: every resource is present and unaltered, and every reference resolves.")
