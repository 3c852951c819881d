"""Bulk import of NDJSON: check everything, resolve references, then load.

1. **Check** every line (`checking.check_line`): valid JSON, a resource of a type OpenGP
   holds, with a valid id, passing validation, allowed to the importer. Ids given twice are
   not imported at all (which copy is right cannot be known). With a manifest (from
   `opengp export`) each file's SHA-256 is checked first: an altered or truncated file is
   rejected whole, since lost lines cannot be seen line by line.
2. **Resolve** references after everything is read, so files may come in any order: each
   `Type/id` must be in the input or already in the database; a line referring to a
   missing or rejected resource is rejected too, until every accepted line's references
   resolve.
3. **Load** the accepted lines, keeping their ids: a new resource is created, an identical
   one (same content hash, `ndjson.content_hash`) is left alone, a different one is updated
   as a new version. So running an import again changes nothing, and running it after the
   input was fixed loads what was missing.

A clean input (the usual migration) is checked and loaded in one pass (`_Loader`): each
accepted line is written, in one transaction, as soon as it is checked; the transaction
commits once every reference has resolved. At the first problem that transaction is rolled
back and the rest is only checked; then "all-or-nothing" loads nothing, and "valid-rest"
loads the accepted lines, read again, in transactions of `LOAD_BATCH`. Either way each
resource is written whole (content, version, index rows) in one transaction, with the audit
entry of that transaction.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, get_args

import orjson
from sqlalchemy.exc import IntegrityError

from opengp.fhir import jsonio
from opengp.services.bulk.checking import Checked, check_line, chunks, line_digest
from opengp.services.bulk.ledger import Ledger
from opengp.services.bulk.ndjson import Problem, content_hash, file_sha256, lines
from opengp.services.bulk.parallel import Mapper, ordered_map
from opengp.store import WriteConflict
from opengp.store.base import AuditRecord
from opengp.store.sql import SqlStore
from opengp.store.sql import bulk as sql
from opengp.store.sql.store import NewResource, SqlWriteTransaction, prepare_new

Mode = Literal["all-or-nothing", "valid-rest"]
MODES: tuple[str, ...] = get_args(Mode)
LOAD_BATCH = 2000
PARALLEL_FROM_BYTES = 8 * 1024 * 1024
ATTEMPTS = 3
FIRST_PROBLEMS = 100
# Called with (phase, done, total): "importing" (checking and loading, in bytes read),
# "checking" (bytes read) or "loading" (resources written).
Progress = Callable[[str, int, int], None]
# The audit entry of one load transaction, from what it did (counts, never patient data).
Audit = Callable[[dict[str, Any]], AuditRecord]
# Why the importer may not write resources of a type, or None when it may.
Allowed = Callable[[str], str | None]


class InputChanged(Exception):
    """A file changed between checking and loading it."""


@dataclass(frozen=True, slots=True)
class Source:
    name: str  # as problems name it, e.g. "Patient.ndjson"
    path: Path
    sha256: str | None = None  # expected, when a manifest gives it


@dataclass(slots=True)
class ImportResult:
    mode: Mode
    resources: int = 0  # non-blank lines read
    accepted: int = 0
    rejected: int = 0  # lines with a problem
    problems: int = 0
    first_problems: list[Problem] = field(default_factory=list)
    loaded: bool = False
    created: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)

    def counts(self) -> dict[str, int]:
        return {
            "created": sum(self.created.values()),
            "updated": sum(self.updated.values()),
            "unchanged": sum(self.unchanged.values()),
        }

    def summary(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "resources": self.resources,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "problems": self.problems,
            "loaded": self.loaded,
            "created": dict(sorted(self.created.items())),
            "updated": dict(sorted(self.updated.items())),
            "unchanged": dict(sorted(self.unchanged.items())),
        }


def _check_files(sources: Sequence[Source], ledger: Ledger) -> list[bool]:
    usable = []
    for index, source in enumerate(sources):
        problem = None
        if not source.path.is_file():
            problem = "the file is missing"
        elif source.sha256 is not None and file_sha256(source.path) != source.sha256:
            problem = "its SHA-256 differs from the manifest's: altered or truncated; not read"
        if problem is not None:
            ledger.problem(Problem(source.name, 0, problem, "integrity"), index)
        usable.append(problem is None)
    return usable


def _duplicate(ledger: Ledger, key: str, first: tuple[int, int], again: tuple[int, int]) -> None:
    """An id given twice: neither line is imported, and both say where the other is."""
    ledger.reject(*first)
    for (file, line), (other_file, other_line) in ((first, again), (again, first)):
        message = f"{key} is also at {ledger.where(other_file, other_line)}: an id given"
        message += " twice is not imported (which copy is right cannot be known)"
        ledger.problem(Problem(ledger.files[file], line, message, "duplicate"), file)


def _record(ledger: Ledger, index: int, found: list[Checked], allowed: Allowed) -> list[bool]:
    """Record what checking lines of a file found; whether each is accepted (so far: their
    references are resolved later)."""
    problems = []
    for checked in found:
        problem, code = checked.problem, checked.code
        if problem is None and checked.resource_type is not None:
            refused = allowed(checked.resource_type)
            if refused is not None:
                problem, code = refused, "forbidden"
        problems.append((problem, code))
    identified: list[int] = []  # positions of the lines with a type and an id
    items = []
    for position, c in enumerate(found):
        if c.resource_type is not None and c.id is not None:
            identified.append(position)
            ok = problems[position][0] is None
            items.append((c.resource_type, c.id, index, c.line, ok, c.digest))
    seen = ledger.add_many(items)
    duplicates = {identified[i]: earlier for i, earlier in seen.items()}
    accepted: list[bool] = []
    refs: list[tuple[int, int, str, str]] = []
    for position, checked in enumerate(found):
        problem, code = problems[position]
        earlier = duplicates.get(position)
        if earlier is not None:
            key = f"{checked.resource_type}/{checked.id}"
            _duplicate(ledger, key, earlier, (index, checked.line))
        elif problem is not None:
            name = ledger.files[index]
            ledger.problem(Problem(name, checked.line, problem, code, checked.expression), index)
        else:
            refs.extend((index, checked.line, t, i) for t, i in checked.targets)
        accepted.append(earlier is None and problem is None)
    ledger.add_refs(refs)
    return accepted


Lines = list[tuple[int, bytes | None]]
# (file, its bytes read so far, lines, and when loading: now and the database's dialect)
Job = tuple[int, int, Lines, tuple[datetime, str] | None]
Done = tuple[int, int, list[tuple[Checked, NewResource | None]]]


def _check_chunk(job: Job) -> Done:
    """Check lines of a file and, when loading, make each valid one ready to insert as
    version 1 written at `now` (pure: runs in the worker processes)."""
    index, end, chunk, loading = job
    found = []
    for number, data in chunk:
        outcome = check_line(number, data)
        if outcome is not None:
            checked, body = outcome
            ready = None if body is None or loading is None else prepare_new(body, *loading)
            found.append((checked, ready))
    return index, end, found


class _Loader:
    """Writes accepted lines as they are checked, in one transaction, for as long as every
    line so far is accepted; at the first problem, or a race with another writer, the
    transaction is rolled back (`abandon`). Into a database holding no resources, the search
    indexes are built after the load (`sql.indexes_built_after`).

    Batches are written by a thread of their own, one at a time, while this one goes on
    reading and recording what the workers checked: the database driver lets other threads
    run while the database works (a batch's rows go in one statement per table)."""

    def __init__(self, store: SqlStore, mode: Mode, *, load: bool) -> None:
        self.dialect, self.clock = store.dialect, store.clock
        self.done = ImportResult(mode)
        self.pending: list[NewResource] = []
        self.empty: dict[str, bool] = {}  # see `_write`
        self._stack = ExitStack()
        self.tx: SqlWriteTransaction | None = None
        self._writing: Future[None] | None = None  # the batch being written
        if load:
            self._writer = self._stack.enter_context(ThreadPoolExecutor(1))
            self.tx = self._stack.enter_context(store.writing(bulk=True))
            self._stack.enter_context(sql.indexes_built_after(self.tx.conn))

    def add(self, ready: NewResource) -> None:
        self.pending.append(ready)
        if len(self.pending) >= LOAD_BATCH:
            self._flush()

    def _flush(self) -> None:
        if self.tx is not None and self.pending:
            self.settle()
            if self.tx is not None:
                batch = (self.tx, self.pending, self.done, self.empty)
                self._writing = self._writer.submit(_write, *batch)
        self.pending = []

    def settle(self) -> None:
        """Wait until the batch being written is written (or the transaction abandoned, when
        another writer wrote some of its ids meanwhile)."""
        writing, self._writing = self._writing, None
        if writing is not None:
            try:
                writing.result()
            except (WriteConflict, IntegrityError):
                self.abandon()

    def abandon(self, error: BaseException | None = None) -> None:
        """Roll back everything written (if not done already)."""
        if self.tx is not None:
            if self._writing is not None:
                wait([self._writing])  # what it did is rolled back, whatever its outcome
            self.tx, self.pending, self._writing = None, [], None
            error = error or _Abandoned()
            self._stack.__exit__(type(error), error, error.__traceback__)

    def commit(self, audit: Audit | None) -> ImportResult | None:
        """Write the rest and commit: what was done; None if rolled back instead."""
        self._flush()
        self.settle()
        if self.tx is None:
            return None
        if audit is not None:
            self.tx.audit(audit({"operation": "import", **self.done.counts()}))
        self.tx = None
        try:
            self._stack.close()
        except WriteConflict:
            return None
        return self.done


class _Abandoned(Exception):
    """Rolls back a `_Loader`'s transaction."""


def _pass(
    sources: Sequence[Source],
    usable: list[bool],
    ledger: Ledger,
    allowed: Allowed,
    mapped: Mapper,
    loader: _Loader,
    total: int,
    progress: Progress | None,
) -> int:
    """Check every line (`total` bytes in the usable files), and load them while `loader`
    loads; the number of resources (non-blank lines) read."""
    read = 0
    offsets = list(
        itertools.accumulate(
            (s.path.stat().st_size if ok else 0 for s, ok in zip(sources, usable, strict=True)),
            initial=0,
        )
    )

    def jobs() -> Iterator[Job]:
        for index, source in enumerate(sources):
            if usable[index]:
                with source.path.open("rb") as stream:
                    for chunk in chunks(stream):
                        loading = None if loader.tx is None else (loader.clock(), loader.dialect)
                        yield index, stream.tell(), chunk, loading

    for index, end, found in mapped(_check_chunk, jobs()):
        read += len(found)
        accepted = _record(ledger, index, [checked for checked, _ in found], allowed)
        for ok, (_, ready) in zip(accepted, found, strict=True):
            if not ok:
                loader.abandon()
            elif ready is not None:
                loader.add(ready)
        if progress:
            phase = "checking" if loader.tx is None else "importing"
            progress(phase, offsets[index] + end, total)
    return read


def _resolve_references(store: SqlStore, ledger: Ledger, loader: _Loader) -> None:
    loader.settle()  # the transaction is this thread's again
    with nullcontext(loader.tx) if loader.tx is not None else store.reading() as tx:
        ledger.find_missing(lambda resource_type, ids: sql.live_ids(tx.conn, resource_type, ids))
    ledger.reject_broken_references()


def _accepted(sources: Sequence[Source], ledger: Ledger, batch: int) -> Iterator[list[bytes]]:
    """The accepted lines, read again from the files, `batch` at a time."""
    found: list[bytes] = []
    for index, source in enumerate(sources):
        wanted = ledger.accepted_lines(index)
        expected = next(wanted, None)
        if expected is None:
            continue
        with source.path.open("rb") as stream:
            for line in lines(stream):
                if line.number != expected[0]:
                    continue
                if line_digest(line.data) != expected[1]:
                    break
                found.append(line.data)
                if len(found) >= batch:
                    yield found
                    found = []
                expected = next(wanted, None)
                if expected is None:
                    break
        if expected is not None:
            raise InputChanged(f"{source.name} changed while it was being imported: run again")
    if found:
        yield found


def _prepare(job: tuple[list[bytes], datetime, str]) -> list[NewResource]:
    """Accepted lines made ready to insert, as version 1 written at `now` (pure: runs in
    the worker processes)."""
    found, now, dialect = job
    return [prepare_new(jsonio.loads(data), now, dialect) for data in found]


def _write(
    tx: SqlWriteTransaction, ready: list[NewResource], done: ImportResult, empty: dict[str, bool]
) -> None:
    """Create, update or leave alone each resource (by comparing content hashes).

    `empty`: whether the database had none of a type when the import first wrote it
    (a migration into an empty database): their resources are all new, since the ledger
    lets each id through once, and looking them up would only cost time (on PostgreSQL a
    table filled within the transaction has no statistics, and the look-up degenerated to a
    scan of the whole table per batch)."""
    by_type: dict[str, list[NewResource]] = {}
    for item in ready:
        by_type.setdefault(item.resource_type, []).append(item)
    for resource_type, group in by_type.items():
        if resource_type not in empty:
            empty[resource_type] = not sql.holds_any(tx.conn, resource_type)
        existing = (
            {}
            if empty[resource_type]
            else {s.id: s for s in tx.read_many(resource_type, [r.id for r in group])}
        )
        new = []
        for item in group:
            previous = existing.get(item.id)
            if previous is None:
                new.append(item)
                done.created[resource_type] += 1
                continue
            body = jsonio.loads(item.content)
            if previous.content is not None and content_hash(
                jsonio.loads(previous.content)
            ) == content_hash(body):
                done.unchanged[resource_type] += 1
            else:  # changed, or deleted here since: a new version
                tx.save(resource_type, item.id, body, method="PUT", previous=previous)
                done.updated[resource_type] += 1
        tx.insert_new(new)


def _transaction(
    store: SqlStore,
    batches: Callable[[], Iterable[list[NewResource]]],
    mode: Mode,
    audit: Audit | None,
    progress: Callable[[ImportResult], None],
    empty: dict[str, bool],
) -> ImportResult:
    """Write `batches` in one transaction, tried again from the start if it lost a race
    with another writer; what it did. `empty` (see `_write`) lasts the whole import: the
    ledger lets each id through once, so a type that was empty when the import first wrote
    it only holds what this import wrote."""
    for attempt in range(ATTEMPTS):
        done = ImportResult(mode)
        try:
            with store.writing(bulk=True) as tx:
                for ready in batches():
                    _write(tx, ready, done, empty)
                    progress(done)
                if audit is not None:
                    tx.audit(audit({"operation": "import", **done.counts()}))
            return done
        except (WriteConflict, IntegrityError):
            # Another writer changed or created one of these resources meanwhile: classify
            # them again (an import running twice at once ends up the same as one after
            # the other).
            if attempt == ATTEMPTS - 1:
                raise
            empty.clear()  # someone else writes these types too: look every id up
    raise AssertionError("unreachable")


def _load(
    store: SqlStore,
    sources: Sequence[Source],
    ledger: Ledger,
    result: ImportResult,
    audit: Audit | None,
    progress: Progress | None,
    mapped: Mapper,
) -> None:
    """The accepted lines, read again; all-or-nothing: one transaction; valid-rest: one per
    batch. Other processes parse, normalise and index the next batches while this one
    writes."""
    empty: dict[str, bool] = {}

    def report(done: ImportResult) -> None:
        if progress:
            progress("loading", _count(result) + _count(done), result.accepted)

    def batches() -> Iterator[list[NewResource]]:
        jobs = (
            (found, store.clock(), store.dialect)
            for found in _accepted(sources, ledger, LOAD_BATCH)
        )
        return mapped(_prepare, jobs)

    if result.mode == "all-or-nothing":
        parts: Iterable[ImportResult] = [
            _transaction(store, batches, result.mode, audit, report, empty)
        ]
    else:
        parts = (
            _transaction(store, lambda b=b: [b], result.mode, audit, report, empty)  # type: ignore[misc]
            for b in batches()
        )
    for done in parts:
        _add(result, done)


def _count(result: ImportResult) -> int:
    return sum(result.counts().values())


def _add(result: ImportResult, done: ImportResult) -> None:
    result.created.update(done.created)
    result.updated.update(done.updated)
    result.unchanged.update(done.unchanged)


def write_report(ledger: Ledger, path: Path) -> None:
    """Every problem, as NDJSON of OperationOutcome (a Bulk Data error file)."""
    with path.open("wb") as out:
        for problem in ledger.problems():
            out.write(orjson.dumps(problem.outcome()) + b"\n")


def run_import(
    store: SqlStore,
    sources: Sequence[Source],
    mode: Mode,
    workdir: Path,
    *,
    allowed: Allowed = lambda resource_type: None,
    audit: Audit | None = None,
    progress: Progress | None = None,
    workers: int = 1,
    report: Path | None = None,
) -> ImportResult:
    """Import `sources` (see the module's description); `workdir` holds scratch files."""
    workdir.mkdir(parents=True, exist_ok=True)
    ledger_path = workdir / "import-ledger.sqlite3"
    ledger_path.unlink(missing_ok=True)
    ledger = Ledger(ledger_path, [s.name for s in sources])
    try:
        usable = _check_files(sources, ledger)
        size = sum(s.path.stat().st_size for s, ok in zip(sources, usable, strict=True) if ok)
        if size < PARALLEL_FROM_BYTES:
            workers = 1  # starting processes would cost more than it saves
        result = ImportResult(mode)
        # The worker processes are forked before any transaction opens (`ordered_map`).
        with ordered_map(workers) as mapped:
            # A file that is missing or altered is a problem already: only check the rest.
            loader = _Loader(store, mode, load=all(usable))
            try:
                result.resources = _pass(
                    sources, usable, ledger, allowed, mapped, loader, size, progress
                )
                _resolve_references(store, ledger, loader)
                result.problems, result.rejected = ledger.problem_counts()
                result.accepted = ledger.count(ok=True)
                if result.problems:
                    loader.abandon()
                done = loader.commit(audit)
            except BaseException as error:
                loader.abandon(error)
                raise
            result.first_problems = list(itertools.islice(ledger.problems(), FIRST_PROBLEMS))
            if report is not None:
                write_report(ledger, report)
            if done is None and mode == "all-or-nothing" and result.problems:
                return result
            if done is None:
                _load(store, sources, ledger, result, audit, progress, mapped)
            else:
                _add(result, done)
        result.loaded = True
        return result
    finally:
        ledger.close()
        ledger_path.unlink(missing_ok=True)
