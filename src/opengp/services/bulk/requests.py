"""Bulk data requests as use cases: kick off an export or an import, poll it, cancel it,
download its files. Each is authorised and audited here; the HTTP adapter is `api/bulk.py`.

Bulk data is for system clients (SMART Backend Services, client credentials): a bulk export
reads every patient's record, so no user-level access (bound by legitimate relationships)
can ask for one. Export needs read scopes on each type exported; import needs a client
registered for the purpose of migration, with create and update scopes on each type it
writes. A job is seen, cancelled and downloaded only by the client that started it.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opengp.access.audit import entry_for
from opengp.access.principal import Principal
from opengp.fhir.errors import BadRequest, FhirError, Forbidden, NotFound
from opengp.services.bulk.export import ExportRequest, Level, export_request, group_members
from opengp.services.bulk.importing import MODES
from opengp.services.bulk.jobs import JobRunner, grant_of, may
from opengp.services.fhir import guard
from opengp.store.sql import SqlStore
from opengp.store.sql import bulk as sql
from opengp.store.sql.bulk import JobRow

FILE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*\.ndjson")
INBOX = "inbox"


@contextmanager
def _audited_failure(store: SqlStore, principal: Principal, interaction: str) -> Iterator[None]:
    """Audit a refusal or failure of a bulk request (as the router does for the rest)."""
    try:
        yield
    except FhirError as error:
        record_refusal(store, principal, interaction, error)
        raise


def record_refusal(
    store: SqlStore, principal: Principal | None, interaction: str, error: FhirError
) -> None:
    """Audit a refused or failed bulk request, once."""
    if error.audited:
        return
    with store.auditing() as trail:
        trail.audit(guard.failure(principal, interaction, [], error))
    error.audited = True


def _system(principal: Principal, what: str) -> None:
    if principal.kind != "system":
        raise Forbidden(
            f"bulk data {what} is for system clients (SMART Backend Services), not {principal.kind}"
        )


def import_parameters(body: Any) -> tuple[str | None, list[str]]:
    """(mode, input paths) of an $import Parameters body: `mode` (valueCode) and `input`
    parts each with a `url` (valueUrl or valueString): a path in the import inbox."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadRequest("the body must be a Parameters resource (or NDJSON to upload)")
    mode, urls = None, []
    for parameter in body.get("parameter") or ():
        if not isinstance(parameter, dict):
            continue
        if parameter.get("name") == "mode":
            mode = parameter.get("valueCode")
        elif parameter.get("name") == "input":
            for part in parameter.get("part") or ():
                if isinstance(part, dict) and part.get("name") == "url":
                    urls.append(str(part.get("valueUrl") or part.get("valueString") or ""))
    if not urls:
        raise BadRequest("name at least one input: a parameter input with a part url")
    return mode, urls


class BulkRequests:
    def __init__(self, store: SqlStore, runner: JobRunner) -> None:
        self.store = store
        self.runner = runner

    @property
    def inbox(self) -> Path:
        """Where operators put files to import by path."""
        return self.runner.directory / INBOX

    # ---- export -------------------------------------------------------------------------

    def export(
        self,
        principal: Principal,
        level: Level,
        params: Sequence[tuple[str, str]],
        *,
        group_id: str | None = None,
        lenient: bool = False,
        base: str,
        url: str,
    ) -> str:
        """Queue an export; its job id."""
        with _audited_failure(self.store, principal, "export"):
            _system(principal, "export")
            request = export_request(level, params, group_id=group_id, lenient=lenient)
            types = self._export_types(principal, request)
            if group_id is not None:
                with self.store.reading() as tx:
                    group_members(tx, group_id)  # NotFound if there is no such Group
            job = {
                "export": request.to_json(),
                "types": types,
                "base": base,
                "url": url,
                "grant": grant_of(principal),
            }
            detail = {
                "level": level,
                "types": len(types),
                "parameters": sorted({n for n, _ in params}),
            }
            return self._queue(principal, "export", job, detail, group_id)

    def _export_types(self, principal: Principal, request: ExportRequest) -> list[str]:
        candidates = request.candidate_types()
        allowed = [t for t in candidates if may(principal, "export", t)]
        if request.types and len(allowed) < len(candidates):
            refused = next(t for t in candidates if t not in allowed)
            raise Forbidden(f"the access token's scopes do not allow exporting {refused}")
        if not allowed or (request.level == "group" and not may(principal, "export", "Group")):
            raise Forbidden("the access token's scopes do not allow this export")
        return allowed

    def _queue(
        self,
        principal: Principal,
        kind: str,
        job: dict[str, Any],
        detail: dict[str, Any],
        group_id: str | None = None,
        job_id: str | None = None,
    ) -> str:
        job_id = job_id or uuid.uuid4().hex
        self.runner.job_directory(job_id).mkdir(parents=True, exist_ok=True)
        action = "export" if kind == "export" else "create"
        with self.store.writing() as tx:
            sql.add_job(tx.conn, job_id, kind, principal.label, job, self.store.clock())
            tx.audit(
                entry_for(
                    principal,
                    action,  # type: ignore[arg-type]
                    resource_type="Group" if group_id else None,
                    resource_id=group_id,
                    detail={"job": job_id, "operation": kind, **detail},
                )
            )
        self.runner.wake()
        return job_id

    # ---- import -------------------------------------------------------------------------

    def check_importer(self, principal: Principal) -> None:
        """Before an upload is read: only a migration client may import."""
        with _audited_failure(self.store, principal, "import"):
            _system(principal, "import")
            if principal.purpose != "migration":
                raise Forbidden("bulk import is for clients registered with purpose migration")

    def new_upload(self) -> tuple[str, Path]:
        """A job id and the file an upload for it is written to."""
        job_id = uuid.uuid4().hex
        directory = self.runner.job_directory(job_id)
        directory.mkdir(parents=True, exist_ok=True)
        return job_id, directory / "upload.ndjson"

    def discard_upload(self, job_id: str) -> None:
        shutil.rmtree(self.runner.job_directory(job_id), ignore_errors=True)

    def inbox_inputs(self, principal: Principal, urls: Sequence[str]) -> list[dict[str, str]]:
        """Files named by path, each inside the inbox (no way out of it)."""
        inputs = []
        inbox = self.inbox.resolve()
        with _audited_failure(self.store, principal, "import"):
            for url in urls:
                path = (inbox / url.removeprefix("file:")).resolve()
                if not path.is_relative_to(inbox) or not path.is_file():
                    raise BadRequest(f"input {url[:100]!r} is not a file in the import inbox")
                inputs.append({"name": str(path.relative_to(inbox)), "path": str(path)})
        return inputs

    def start_import(
        self,
        principal: Principal,
        mode: str | None,
        inputs: list[dict[str, str]],
        *,
        base: str,
        url: str,
        job_id: str | None = None,
    ) -> str:
        with _audited_failure(self.store, principal, "import"):
            mode = mode or "all-or-nothing"
            if mode not in MODES:
                raise BadRequest(f"mode must be one of {', '.join(MODES)}, not {mode[:40]!r}")
            job = {
                "mode": mode,
                "inputs": inputs,
                "base": base,
                "url": url,
                "grant": grant_of(principal),
            }
            return self._queue(principal, "import", job, {"mode": mode}, job_id=job_id)

    # ---- polling, cancelling, downloading -----------------------------------------------

    def _owned(self, principal: Principal, job_id: str) -> JobRow:
        with self.store.reading() as tx:
            job = sql.get_job(tx.conn, job_id)
        if (
            job is None
            or job.owner != principal.label
            or job.status in ("cancelled", "expired")
            or (job.expires is not None and job.expires <= self.store.clock())
        ):
            raise NotFound(f"no bulk job {job_id[:40]!r}: it may have been cancelled or expired")
        return job

    def status(self, principal: Principal, job_id: str) -> JobRow:
        self.runner.wake()  # expires old jobs, starts abandoned ones again
        with _audited_failure(self.store, principal, "export"):
            job = self._owned(principal, job_id)
        action = "export" if job.kind == "export" else "create"
        with self.store.auditing() as trail:  # each poll: who asked after which job
            detail = {"job": job_id, "poll": job.status}
            trail.audit(entry_for(principal, action, detail=detail))  # type: ignore[arg-type]
        fresher = self.runner.progress.get(job_id)
        if fresher is not None and job.status == "running":
            job = dataclasses.replace(job, progress=fresher)
        return job

    def cancel(self, principal: Principal, job_id: str) -> None:
        """Cancel a job, or delete a finished one's files (a running job stops soon)."""
        with _audited_failure(self.store, principal, "export"):
            job = self._owned(principal, job_id)
            action = "export" if job.kind == "export" else "create"
            live = ("queued", "running", "completed", "failed")
            with self.store.writing() as tx:
                if not sql.move_job(tx.conn, job_id, live, "cancelled"):
                    raise NotFound(f"no bulk job {job_id[:40]!r}: it was cancelled or expired")
                detail = {"job": job_id, "status": "cancelled"}
                tx.audit(entry_for(principal, action, detail=detail))  # type: ignore[arg-type]
            shutil.rmtree(self.runner.job_directory(job_id), ignore_errors=True)

    def output(self, principal: Principal, job_id: str, name: str) -> Path:
        """A completed job's file, for its owner to download (each download audited)."""
        with _audited_failure(self.store, principal, "export"):
            job = self._owned(principal, job_id)
            path = self.runner.job_directory(job_id) / "files" / name
            if job.status != "completed" or not FILE_NAME.fullmatch(name) or not path.is_file():
                raise NotFound(f"job {job_id[:40]!r} has no file {name[:80]!r}")
            with self.store.auditing() as trail:
                detail = {"job": job_id, "file": name}
                trail.audit(entry_for(principal, "export", detail=detail))
            return path
