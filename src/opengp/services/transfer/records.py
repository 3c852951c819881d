"""Pull a patient's whole record from the old practice's OpenGP, and give it ids here.

The record is `Patient/{id}/$everything`, every page (the patient, everything in their
compartment, and what those refer to), then whatever the people, organisations, places and
medicines in it refer to in turn (read one by one), so that every reference resolves here.
Nothing in another patient's record is fetched: a reference to it points back at the old
server, by absolute URL.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from opengp.fhir.nhs_number import NHS_NUMBER_SYSTEM
from opengp.fhir.references import iter_references, parse_relative, rewrite_references
from opengp.search.definitions.r4 import COMPARTMENTS
from opengp.services.transfer.remote import Remote, RemoteError, TransferError, problem

PAGE_SIZE = 1000  # the most a search page holds
MAX_RESOURCES = 100_000  # far beyond any GP record: a bigger answer is not a record
MAX_ROUNDS = 10  # references of references of ... the people and places named
# Types that can be in a patient's record: never fetched on their own, they could be
# another patient's.
IN_RECORDS = frozenset(COMPARTMENTS["Patient"]) | {"Patient"}

Key = tuple[str, str]  # (resource type, id)


@dataclass(slots=True)
class PulledRecord:
    """A patient's record as the old server holds it, ids and references unchanged."""

    source: str  # the old server's FHIR base URL
    patient_id: str  # the Patient's id there
    resources: dict[Key, dict[str, Any]] = field(default_factory=dict)

    @property
    def patient(self) -> dict[str, Any]:
        return self.resources[("Patient", self.patient_id)]


def find_patient(remote: Remote, nhs_number: str) -> dict[str, Any]:
    """The one Patient with this NHS number on the old server."""
    query = urlencode({"identifier": f"{NHS_NUMBER_SYSTEM}|{nhs_number}", "_count": "2"})
    reply = remote.get(f"Patient?{query}")
    if reply.status != 200:
        raise RemoteError(f"searching for the patient at {remote.base_url}: {problem(reply)}")
    found = [
        e["resource"]
        for e in _entries(reply.body)
        if e.get("search", {}).get("mode", "match") == "match"
        and e["resource"].get("resourceType") == "Patient"
    ]
    if not found:
        raise TransferError(f"no patient with NHS number {nhs_number} at {remote.base_url}")
    if len(found) > 1:
        raise TransferError(
            f"more than one patient has NHS number {nhs_number} at {remote.base_url}:"
            " the old practice must resolve the duplicate first"
        )
    patient: dict[str, Any] = found[0]
    if not isinstance(patient.get("id"), str):
        raise RemoteError("the old practice's server sent a Patient without an id")
    return patient


def pull_record(remote: Remote, patient_id: str) -> PulledRecord:
    """Every resource of the patient's `$everything` (all pages) and what it refers to."""
    record = PulledRecord(remote.base_url, patient_id)
    url: str | None = f"Patient/{patient_id}/$everything?_count={PAGE_SIZE}"
    while url is not None:
        reply = remote.get(url)
        if reply.status != 200:
            raise RemoteError(f"reading the record at {remote.base_url}: {problem(reply)}")
        for entry in _entries(reply.body):
            _keep(record, entry["resource"])
        url = _next_link(reply.body)
    if ("Patient", patient_id) not in record.resources:
        raise RemoteError("the old practice's server left the Patient out of $everything")
    _complete(remote, record)
    return record


def _entries(bundle: Any) -> list[dict[str, Any]]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise RemoteError("the old practice's server did not answer with a Bundle")
    entries = [e for e in bundle.get("entry") or () if isinstance(e, dict)]
    kept = []
    for entry in entries:
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            raise RemoteError("the old practice's server sent a Bundle entry without a resource")
        if resource.get("resourceType") == "OperationOutcome":
            _refuse_incomplete(resource)
            continue
        kept.append(entry)
    return kept


def _refuse_incomplete(outcome: dict[str, Any]) -> None:
    """A page that says something was left out (not allowed, too many) is not the record."""
    for issue in outcome.get("issue") or ():
        if isinstance(issue, dict) and issue.get("code") in ("suppressed", "too-costly"):
            raise RemoteError(
                "the old practice's server did not send the whole record: "
                + str(issue.get("diagnostics") or issue.get("code"))
            )


def _next_link(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link") or ():
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            return url if isinstance(url, str) else None
    return None


def _keep(record: PulledRecord, resource: dict[str, Any]) -> None:
    kind, id = resource.get("resourceType"), resource.get("id")
    if not isinstance(kind, str) or not isinstance(id, str):
        raise RemoteError("the old practice's server sent a resource without a type or id")
    record.resources.setdefault((kind, id), resource)
    if len(record.resources) > MAX_RESOURCES:
        raise RemoteError(f"the record has more than {MAX_RESOURCES} resources: not a GP record")


def _complete(remote: Remote, record: PulledRecord) -> None:
    """Fetch what the record refers to and does not hold, unless it could be in another
    patient's record."""
    asked: set[Key] = set()
    for _ in range(MAX_ROUNDS):
        wanted = sorted(
            key
            for key in _references(record) - asked
            if key not in record.resources and key[0] not in IN_RECORDS
        )
        if not wanted:
            return
        asked.update(wanted)
        for kind, id in wanted:
            reply = remote.get(f"{kind}/{id}")
            if reply.status in (404, 410):
                continue  # gone there too: the reference keeps pointing at the old server
            if reply.status != 200 or not isinstance(reply.body, dict):
                raise RemoteError(f"reading {kind}/{id} at {remote.base_url}: {problem(reply)}")
            if (reply.body.get("resourceType"), reply.body.get("id")) != (kind, id):
                raise RemoteError(f"the old practice's server answered {kind}/{id} with another")
            _keep(record, reply.body)
    raise RemoteError("the record's references go on too far: not a GP record")


def _references(record: PulledRecord) -> set[Key]:
    found = set()
    for resource in record.resources.values():
        for _, ref in iter_references(resource):
            literal = parse_relative(ref["reference"])
            if literal is not None and literal.version_id is None:
                found.add((literal.resource_type, literal.id))
    return found


# ---- ids here ---------------------------------------------------------------------------


def local_id(source: str, resource_type: str, id: str) -> str:
    """The id here of `resource_type/id` from `source`: a name-based UUID of its full URL
    there (RFC 9562 §5.5), so the same resource pulled again gets the same id, and it
    cannot clash with a resource made here or pulled from elsewhere."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{source}/{resource_type}/{id}"))


def with_local_ids(record: PulledRecord) -> dict[Key, dict[str, Any]]:
    """The record with ids here and references rewritten to match: to a resource pulled,
    its id here; to anything else (not pulled, or a particular version there), its absolute
    URL on the old server. Content is otherwise untouched (server meta aside)."""
    held = record.resources

    def rewrite(reference: str) -> str | None:
        literal = parse_relative(reference)
        if literal is None:
            return None  # contained, absolute, urn: as they are
        key = (literal.resource_type, literal.id)
        if literal.version_id is None and key in held:
            return f"{key[0]}/{local_id(record.source, *key)}"
        return f"{record.source}/{reference}"

    mapped: dict[Key, dict[str, Any]] = {}
    for (kind, id), resource in held.items():
        body = _without_server_meta(resource)
        new_id = local_id(record.source, kind, id)
        body["id"] = new_id
        rewrite_references(body, rewrite)
        mapped[(kind, new_id)] = body
    return mapped


def _without_server_meta(resource: dict[str, Any]) -> dict[str, Any]:
    """A deep copy without meta.versionId and meta.lastUpdated (this server sets them)."""
    body = copy.deepcopy(resource)
    meta = body.get("meta")
    if isinstance(meta, dict):
        for name in ("versionId", "lastUpdated"):
            meta.pop(name, None)
        if not meta:
            del body["meta"]
    return body
