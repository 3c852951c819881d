"""Receive a pulled record here: all of it in one transaction, or nothing.

Each resource is validated as every write is, before anything is written. Then, in one
write transaction: the resources (a new resource is created; one already here with the same
content is left alone; a different one becomes a new version), the registration here (a new
EpisodeOfCare at this practice; the Patient's general practitioner and managing
organisation this practice; the old practice's registration episode finished), one
Provenance naming the source, and the audit entry.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from opengp.access.audit import entry_for
from opengp.access.principal import Principal
from opengp.fhir import jsonio
from opengp.fhir.errors import FhirError
from opengp.fhir.nhs_number import NHS_NUMBER_SYSTEM
from opengp.fhir.validation import validate_resource
from opengp.search.query import parse_query
from opengp.services.bulk.ndjson import content_hash
from opengp.services.fhir import guard
from opengp.services.fhir.provenance import provenance_of
from opengp.services.transfer.records import Key, PulledRecord, local_id, with_local_ids
from opengp.services.transfer.remote import TransferError
from opengp.store import (
    ReadTransaction,
    ResourceStore,
    StoredResource,
    WriteConflict,
    WriteTransaction,
)

ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
# GP2GP, the NHS service this is the OpenGP-to-OpenGP form of: Provenance.policy.
TRANSFER_POLICY = "https://digital.nhs.uk/services/gp2gp"
PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
REGISTRATION = [{"text": "GP registration"}]  # as the synthetic practice's (demo/people.py)
MAX_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Practice:
    """The practice here the patient registers with."""

    organization_id: str
    name: str
    ods_code: str


@dataclass(frozen=True, slots=True)
class Received:
    patient_id: str  # the Patient's id here
    registration_id: str  # the new registration EpisodeOfCare here
    created: int
    updated: int
    unchanged: int


def find_practice(tx: ReadTransaction, ods_code: str) -> Practice:
    query = parse_query("Organization", [("identifier", f"{ODS_SYSTEM}|{ods_code}")], strict=True)
    ids = tx.find(query, 2)
    if len(ids) != 1:
        found = "no organisation" if not ids else "more than one organisation"
        raise TransferError(f"{found} here has ODS code {ods_code}")
    stored = tx.current("Organization", ids[0])
    content = stored.content if stored is not None else None
    name = jsonio.loads(content).get("name") if content is not None else None
    return Practice(ids[0], name if isinstance(name, str) else ods_code, ods_code)


def registration_id(patient_id: str, practice: Practice) -> str:
    """The id of the patient's registration at `practice` made by a transfer: fixed, so a
    second run finds the first's."""
    return str(
        uuid.uuid5(
            uuid.NAMESPACE_URL, f"urn:opengp:registration:{patient_id}:{practice.organization_id}"
        )
    )


def patients_here(tx: ReadTransaction, nhs_number: str) -> list[str]:
    query = parse_query(
        "Patient", [("identifier", f"{NHS_NUMBER_SYSTEM}|{nhs_number}")], strict=True
    )
    return tx.find(query, 10)


def already_received(
    tx: ReadTransaction, nhs_number: str, patient_id: str, practice: Practice
) -> bool:
    """Whether a transfer of this record here has completed before. A patient with the NHS
    number who did not come by this transfer is already registered here: an error."""
    others = [p for p in patients_here(tx, nhs_number) if p != patient_id]
    if others:
        raise TransferError(
            f"a patient with NHS number {nhs_number} is already registered here"
            f" (Patient/{others[0]}): check it is the same person before merging by hand"
        )
    registration = tx.current("EpisodeOfCare", registration_id(patient_id, practice))
    return registration is not None and not registration.deleted


def old_registrations(record: PulledRecord) -> list[str]:
    """Ids (there) of the old practice's open registration episodes: active EpisodeOfCare of
    the patient's managing organisation (as policy.RELATIONSHIP_LINKS reads a registration)."""
    managing = (record.patient.get("managingOrganization") or {}).get("reference")
    return sorted(
        id
        for (kind, id), body in record.resources.items()
        if kind == "EpisodeOfCare"
        and body.get("status") == "active"
        and managing is not None
        and (body.get("managingOrganization") or {}).get("reference") == managing
    )


def prepare(
    record: PulledRecord, practice: Practice, nhs_number: str, today: date
) -> dict[Key, dict[str, Any]]:
    """The resources to write here, validated: the record with ids here, registered at
    `practice`, its old registration finished `today`."""
    if not any(
        i.get("system") == NHS_NUMBER_SYSTEM and i.get("value") == nhs_number
        for i in record.patient.get("identifier") or ()
        if isinstance(i, dict)
    ):
        raise TransferError(f"the old practice's Patient does not carry NHS number {nhs_number}")
    mapped = with_local_ids(record)
    source_of = {local_id(record.source, kind, id): id for kind, id in record.resources}
    patient_id = local_id(record.source, "Patient", record.patient_id)
    here = {"reference": f"Organization/{practice.organization_id}", "display": practice.name}
    patient = mapped[("Patient", patient_id)]
    patient["generalPractitioner"] = [dict(here)]
    patient["managingOrganization"] = dict(here)
    for old in old_registrations(record):
        episode = mapped[("EpisodeOfCare", local_id(record.source, "EpisodeOfCare", old))]
        episode["status"] = "finished"
        episode["period"] = {**(episode.get("period") or {}), "end": today.isoformat()}
    new_id = registration_id(patient_id, practice)
    registration: dict[str, Any] = {
        "resourceType": "EpisodeOfCare",
        "id": new_id,
        "status": "active",
        "type": REGISTRATION,
        "patient": {"reference": f"Patient/{patient_id}"},
        "managingOrganization": dict(here),
        "period": {"start": today.isoformat()},
    }
    mapped[("EpisodeOfCare", new_id)] = registration
    for (kind, id), body in mapped.items():
        try:
            validate_resource(body)
        except FhirError as error:
            where = f"{kind}/{source_of.get(id, id)}"
            raise TransferError(
                f"{where} from the old practice is not valid here: {error}"
            ) from None
    return mapped


def receive(
    store: ResourceStore,
    principal: Principal,
    record: PulledRecord,
    practice: Practice,
    nhs_number: str,
    resources: dict[Key, dict[str, Any]],
) -> Received:
    """Write `resources` (from `prepare`) in one transaction, with their Provenance."""
    for kind in sorted({kind for kind, _ in resources}):
        guard.authorize(principal, "create", kind)
        guard.authorize(principal, "update", kind)
    patient_id = local_id(record.source, "Patient", record.patient_id)
    for _ in range(MAX_ATTEMPTS):
        try:
            with store.writing() as tx:
                return _write(tx, principal, record, practice, nhs_number, resources, patient_id)
        except WriteConflict:
            continue
    raise TransferError("the record is being changed here by others; try again")


def _write(
    tx: WriteTransaction,
    principal: Principal,
    record: PulledRecord,
    practice: Practice,
    nhs_number: str,
    resources: dict[Key, dict[str, Any]],
    patient_id: str,
) -> Received:
    # Two transfers of one patient at once: the second waits, then finds the first's.
    tx.serialise(f"transfer:{nhs_number}")
    reg_id = registration_id(patient_id, practice)
    if already_received(tx, nhs_number, patient_id, practice):
        return Received(patient_id, reg_id, 0, 0, len(resources))
    written: list[str] = []  # Type/id/_history/version
    new: list[dict[str, Any]] = []
    registration: StoredResource | None = None
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    for (kind, id), body in resources.items():
        previous = tx.current(kind, id, for_update=True)
        if _same(previous, body):
            counts["unchanged"] += 1
            continue
        counts["created" if previous is None else "updated"] += 1
        if previous is None and (kind, id) != ("EpisodeOfCare", reg_id):
            new.append(body)  # created below, together
            written.append(f"{kind}/{id}/_history/1")
            continue
        method = "POST" if previous is None else "PUT"
        stored = tx.save(kind, id, body, method=method, previous=previous)
        written.append(f"{kind}/{id}/_history/{stored.version_id}")
        if kind == "EpisodeOfCare" and id == reg_id:
            registration = stored
    # The bulk path (as for imports): validated above, a few statements per table.
    tx.create_many(new)
    if registration is None:  # not here before (already_received), so written above
        raise TransferError("the registration here could not be made")
    provenance = _provenance(principal, record, registration, written)
    tx.save("Provenance", provenance["id"], provenance, method="POST", previous=None)
    detail = {"operation": "transfer", "source": record.source, **counts}
    tx.audit(
        entry_for(
            principal,
            "create",
            patient_id=patient_id,
            resource_type="Patient",
            resource_id=patient_id,
            detail=detail,
        )
    )
    return Received(patient_id, reg_id, counts["created"], counts["updated"], counts["unchanged"])


def _same(previous: StoredResource | None, body: dict[str, Any]) -> bool:
    """Whether what is here is `body` already (deleted content is None: not the same)."""
    if previous is None or previous.content is None:
        return False
    return content_hash(jsonio.loads(previous.content)) == content_hash(body)


def _provenance(
    principal: Principal, record: PulledRecord, registration: StoredResource, written: list[str]
) -> dict[str, Any]:
    """One Provenance for the whole transfer (Provenance.target is 1..*): what was written
    here, by whom (author: who ran the transfer, as for any write), for whom it was kept
    (custodian: the old practice), from where (entity: the record at the old server) and
    under which policy (a record transfer)."""
    body = provenance_of(principal, "create", registration)
    body["target"] = [{"reference": reference} for reference in written]
    body["policy"] = [TRANSFER_POLICY]
    body["activity"]["text"] = "Patient record transfer from another practice (GP2GP)"
    custodian = {"coding": [{"system": PARTICIPANT, "code": "custodian"}]}
    body["agent"].append({"type": custodian, "who": _old_practice(record)})
    source = f"{record.source}/Patient/{record.patient_id}"
    body["entity"] = [
        {"role": "source", "what": {"reference": source, "display": "the record transferred"}}
    ]
    return {"resourceType": "Provenance", "id": str(uuid.uuid4()), **body}


def _old_practice(record: PulledRecord) -> dict[str, Any]:
    """The old practice, by ODS code when its Organization came with the record, and where
    its record was (the old server)."""
    managing = (record.patient.get("managingOrganization") or {}).get("reference") or ""
    kind, _, id = managing.partition("/")
    organization = record.resources.get((kind, id)) if kind == "Organization" else None
    display = f"the practice at {record.source}"
    if organization is not None:
        name = organization.get("name")
        display = f"{name} ({record.source})" if isinstance(name, str) else display
        for identifier in organization.get("identifier") or ():
            if isinstance(identifier, dict) and identifier.get("system") == ODS_SYSTEM:
                return {"identifier": dict(identifier), "display": display}
    return {"display": display}
