"""The bulk job runner: runs queued $export and $import jobs in a background thread.

A job is a `bulk_job` row and a directory `<bulk dir>/<job id>/`: `files/` holds what the
client downloads, beside it are the lock and scratch files. The row records the progress
(X-Progress) and the outcome (manifest or error).

Any process of the server may run a job. Claiming is a status change in the database
(queued -> running, which only one process wins) made while holding an exclusive lock on the
job's directory (`flock`). The lock dies with its process, so a job left "running" whose
lock can be taken was abandoned by a process that died: it is queued again and started over
(an export is written afresh; an import is idempotent).

The thread starts when there is work (a kick-off, a status poll) and ends when none is left,
so an idle server runs nothing. Finished jobs expire after `EXPIRY`: their files are deleted
when the runner or a request next passes (and refused from that moment on regardless).
"""

from __future__ import annotations

import fcntl
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from opengp.access.audit import entry_for
from opengp.access.principal import Principal
from opengp.config import Settings
from opengp.fhir.errors import FhirError, Forbidden
from opengp.services.bulk.export import Cancelled, ExportRequest, run_export
from opengp.services.bulk.importing import InputChanged, Source, run_import
from opengp.services.bulk.manifest import manifest
from opengp.services.fhir import guard
from opengp.store.sql import SqlStore
from opengp.store.sql import bulk as sql
from opengp.store.sql.bulk import JobRow

log = logging.getLogger("opengp.bulk")
EXPIRY = timedelta(hours=1)
PROGRESS_EVERY = 1.0  # seconds between progress writes (and cancellation checks)
ERROR_FILE = "OperationOutcome.ndjson"
THREAD_NAME = "opengp-bulk"


def bulk_directory(settings: Settings) -> Path:
    """OPENGP_BULK_DIR, or `bulk/` beside the embedded SQLite database, or var/bulk."""
    if settings.bulk_dir:
        return Path(settings.bulk_dir)
    prefix = "sqlite:///"
    if settings.database_url.startswith(prefix) and ":memory:" not in settings.database_url:
        return Path(settings.database_url[len(prefix) :]).parent / "bulk"
    return Path("var/bulk")


def may(principal: Principal, interaction: str, resource_type: str) -> bool:
    """Whether the policy lets `principal` do a bulk `interaction` on a type."""
    try:
        guard.authorize(principal, interaction, resource_type)
    except Forbidden:
        return False
    return True


def import_allowed(principal: Principal, resource_type: str) -> str | None:
    """Why `principal` may not import resources of a type (create or update), or None."""
    if may(principal, "import", resource_type) and may(principal, "update", resource_type):
        return None
    return f"the importer's scopes do not allow creating and updating {resource_type}"


def grant_of(principal: Principal) -> dict[str, Any]:
    """What a job needs of the principal who asked for it, to run later in their name."""
    return {
        "kind": principal.kind,
        "id": principal.id,
        "scopes": sorted(principal.scopes),
        "purpose": principal.purpose,
        "client_id": principal.client_id,
    }


def principal_of(grant: dict[str, Any]) -> Principal:
    return Principal(
        grant["kind"],
        grant["id"],
        grant["id"],
        scopes=frozenset(grant["scopes"]),
        purpose=grant.get("purpose"),
        client_id=grant.get("client_id"),
    )


@contextmanager
def job_lock(directory: Path, *, create: bool = False) -> Iterator[bool]:
    """Hold the job directory's lock for the block, if it can be had now (True). A job
    whose directory is gone (cancelled meanwhile) cannot be locked unless `create`."""
    if create:
        directory.mkdir(parents=True, exist_ok=True)
    try:
        handle: IO[bytes] = (directory / ".lock").open("ab")
    except FileNotFoundError:
        yield False
        return
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        handle.close()  # releases the lock


class Throttle:
    """True at most once per `seconds` (and the first time)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.last = -seconds

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self.last < self.seconds:
            return False
        self.last = now
        return True


class JobRunner:
    def __init__(self, store: SqlStore, directory: Path, expiry: timedelta = EXPIRY) -> None:
        self.store = store
        self.directory = directory
        self.expiry = expiry
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wanted = False
        # Progress of the jobs this process is running, fresher than their rows.
        self.progress: dict[str, str] = {}

    def job_directory(self, job_id: str) -> Path:
        return self.directory / job_id

    def wake(self) -> None:
        """Make sure a thread is running the queue (started only when none is)."""
        with self._lock:
            self._wanted = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=THREAD_NAME, daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._lock:
                self._wanted = False
            try:
                worked = self.run_next()
            except Exception as exc:  # keep the thread alive; never log patient data
                log.error("bulk job runner: %s", type(exc).__name__)
                worked = False
            if not worked:
                with self._lock:
                    if not self._wanted:
                        self._thread = None
                        return

    # ---- one step -----------------------------------------------------------------------

    def run_next(self) -> bool:
        """Expire old jobs, re-queue abandoned ones, and run the oldest queued job; whether
        a job was run."""
        self.expire()
        with self.store.reading() as tx:
            running = sql.job_ids(tx.conn, "running")
            queued = sql.job_ids(tx.conn, "queued")
        for job_id in running:
            with job_lock(self.job_directory(job_id)) as free:
                if free:  # its process died: start it over
                    with self.store.writing() as tx:
                        sql.move_job(tx.conn, job_id, "running", "queued")
                    queued.append(job_id)
        for job_id in queued:
            with job_lock(self.job_directory(job_id), create=True) as mine:
                if not mine:
                    continue
                with self.store.writing() as tx:
                    claimed = sql.move_job(
                        tx.conn, job_id, "queued", "running", progress="starting"
                    )
                    job = sql.get_job(tx.conn, job_id)
                if job is None or job.status in ("cancelled", "expired"):
                    self._discard(job_id)  # cancelled meanwhile: its directory is ours to remove
                if not claimed or job is None:
                    continue
                try:
                    self._run(job)
                finally:
                    self.progress.pop(job_id, None)
                return True
        return False

    def expire(self) -> None:
        with self.store.reading() as tx:
            due = sql.expired_job_ids(tx.conn, self.store.clock())
        for job_id in due:
            shutil.rmtree(self.job_directory(job_id), ignore_errors=True)
            with self.store.writing() as tx:
                sql.move_job(tx.conn, job_id, ("completed", "failed"), "expired")

    # ---- running a job ------------------------------------------------------------------

    def _run(self, job: JobRow) -> None:
        principal = principal_of(job.request["grant"])
        action = "export" if job.kind == "export" else "create"
        try:
            if job.kind == "export":
                body, transaction_time = self._export(job)
            else:
                body, transaction_time = self._import(job, principal)
        except Cancelled:
            self._discard(job.id)
            return
        except (FhirError, InputChanged, OSError) as exc:
            self._finish(job, principal, action, error=str(exc))
            return
        except Exception as exc:  # the reason without detail: it may hold data values
            log.error("bulk job %s failed: %s", job.id, type(exc).__name__)
            self._finish(job, principal, action, error=f"failed ({type(exc).__name__})")
            return
        self._finish(job, principal, action, manifest_body=body, transaction_time=transaction_time)

    def _progress(self, job_id: str) -> tuple[Callable[[str, bool], None], Callable[[], bool]]:
        """(report progress, cancelled?), each touching the database at most once a second.

        Progress is kept in memory too (`progress`), for polls this process answers: while
        an import writes, its transaction holds SQLite's only write lock, so the row cannot
        be updated (`durable` False) until it commits.
        """
        write, check = Throttle(PROGRESS_EVERY), Throttle(PROGRESS_EVERY)
        state = {"cancelled": False}

        def report(text: str, durable: bool = True) -> None:
            self.progress[job_id] = text
            if durable and write():
                with self.store.writing() as tx:
                    sql.set_progress(tx.conn, job_id, text)

        def cancelled() -> bool:
            if check():
                with self.store.reading() as tx:
                    job = sql.get_job(tx.conn, job_id)
                state["cancelled"] = job is None or job.status != "running"
            return state["cancelled"]

        return report, cancelled

    def _export(self, job: JobRow) -> tuple[dict[str, Any], datetime]:
        request = ExportRequest.from_json(job.request["export"])
        report, cancelled = self._progress(job.id)

        def progress(resource_type: str, done: int, total: int, written: int) -> None:
            report(f"{written:,} resources written; {done} of {total} types done", True)

        files = self.job_directory(job.id) / "files"
        result = run_export(
            self.store, request, files, job.request["types"], progress=progress, cancelled=cancelled
        )
        base = job.request["base"]
        body = manifest(
            result.transaction_time,
            job.request["url"],
            result.outputs,
            lambda name: f"{base}/bulk/{job.id}/files/{name}",
            requires_token=True,
        )
        return body, result.transaction_time

    def _import(self, job: JobRow, principal: Principal) -> tuple[dict[str, Any], datetime]:
        report, cancelled = self._progress(job.id)

        def progress(phase: str, done: int, total: int) -> None:
            if cancelled():
                raise Cancelled()
            text = f"{phase}: {done:,} of {total:,}" + ("" if phase == "loading" else " bytes")
            report(text, phase == "checking")  # else inside the import's transaction

        work = self.job_directory(job.id)
        files = work / "files"
        files.mkdir(parents=True, exist_ok=True)
        sources = [Source(i["name"], Path(i["path"])) for i in job.request["inputs"]]
        started = self.store.clock()
        result = run_import(
            self.store,
            sources,
            job.request["mode"],
            work,
            allowed=lambda resource_type: import_allowed(principal, resource_type),
            audit=lambda detail: entry_for(principal, "create", detail={"job": job.id, **detail}),
            progress=progress,
            report=files / ERROR_FILE,
        )
        for source in sources:
            if source.path.parent == work:  # an upload: patient data no longer needed
                source.path.unlink(missing_ok=True)
        base = job.request["base"]
        errors = []
        if result.problems:
            url = f"{base}/bulk/{job.id}/files/{ERROR_FILE}"
            errors.append({"type": "OperationOutcome", "url": url, "count": result.problems})
        else:
            (files / ERROR_FILE).unlink(missing_ok=True)
        body = manifest(started, job.request["url"], [], str, requires_token=True, errors=errors)
        body["import"] = result.summary()
        return body, started

    def _finish(
        self,
        job: JobRow,
        principal: Principal,
        action: str,
        *,
        manifest_body: dict[str, Any] | None = None,
        transaction_time: datetime | None = None,
        error: str | None = None,
    ) -> None:
        now = self.store.clock()
        status = "failed" if error is not None else "completed"
        summary = (manifest_body or {}).get("import") or {}
        counts = {k: v for k, v in summary.items() if isinstance(v, int)}
        detail = {"job": job.id, "status": status, **counts}
        with self.store.writing() as tx:
            moved = sql.move_job(
                tx.conn,
                job.id,
                "running",
                status,
                finished=now,
                expires=now + self.expiry,
                manifest=manifest_body,
                error=error,
                progress=None,
                transaction_time=transaction_time,
            )
            if moved:
                outcome = "failed" if error is not None else "success"
                tx.audit(entry_for(principal, action, outcome, detail=detail))  # type: ignore[arg-type]
        if not moved:  # cancelled while it ran
            self._discard(job.id)

    def _discard(self, job_id: str) -> None:
        shutil.rmtree(self.job_directory(job_id), ignore_errors=True)
