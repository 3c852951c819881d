"""Patient record transfer between two OpenGPs: the OpenGP form of GP2GP (docs/bulk.md).

When a patient registers here, `transfer_record` pulls their whole record from the old
practice's OpenGP over its FHIR API (as a system client registered there with purpose
migration), receives it here in one transaction with a Provenance naming the source, makes
the registration here, and then ends the registration at the old practice.

Run again after a failure, it completes what is left; run again after success, it changes
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from opengp.access.audit import entry_for
from opengp.access.principal import Principal
from opengp.fhir import jsonio
from opengp.fhir.nhs_number import is_valid_nhs_number
from opengp.services.transfer.receiving import (
    Practice,
    already_received,
    find_practice,
    prepare,
    receive,
    registration_id,
)
from opengp.services.transfer.records import find_patient, local_id, pull_record
from opengp.services.transfer.registration import end_registrations
from opengp.services.transfer.remote import Remote, RemoteError, TransferError
from opengp.store import ResourceStore

__all__ = ["Remote", "RemoteError", "TransferError", "TransferResult", "transfer_record"]

ENGLAND = ZoneInfo("Europe/London")  # a registration's dates are England's days


@dataclass(frozen=True, slots=True)
class TransferResult:
    patient_id: str  # here
    registration_id: str  # the registration EpisodeOfCare here
    practice: Practice
    received: bool  # False: the record had been received by an earlier run
    created: int
    updated: int
    unchanged: int
    ended: tuple[str, ...]  # EpisodeOfCare ids finished at the old practice by this run


def transfer_record(
    store: ResourceStore,
    remote: Remote,
    nhs_number: str,
    practice_ods: str,
    principal: Principal,
    now: datetime,
) -> TransferResult:
    """Transfer the record of the patient with `nhs_number` from `remote` to the practice
    with ODS code `practice_ods` here, on behalf of `principal` (who must be allowed to
    create and update every type of the record)."""
    if not is_valid_nhs_number(nhs_number):
        raise ValueError(f"{nhs_number!r} is not a valid NHS number (ten digits, modulus 11)")
    try:
        return _transfer(store, remote, nhs_number, practice_ods, principal, now)
    except TransferError as error:
        # A refused or failed transfer is in the audit trail here too (the reason's kind
        # only: messages may carry an NHS number).
        detail = {"operation": "transfer", "source": remote.base_url, "error": type(error).__name__}
        with store.auditing() as trail:
            trail.audit(entry_for(principal, "create", "failed", detail=detail))
        raise


def _transfer(
    store: ResourceStore,
    remote: Remote,
    nhs_number: str,
    practice_ods: str,
    principal: Principal,
    now: datetime,
) -> TransferResult:
    with store.reading() as tx:
        practice = find_practice(tx, practice_ods)
    source_patient = find_patient(remote, nhs_number)
    patient_id = local_id(remote.base_url, "Patient", source_patient["id"])
    with store.reading() as tx:
        done = already_received(tx, nhs_number, patient_id, practice)
    created = updated = unchanged = 0
    if not done:
        record = pull_record(remote, source_patient["id"])
        today = now.astimezone(ENGLAND).date()
        resources = prepare(record, practice, nhs_number, today)
        received = receive(store, principal, record, practice, nhs_number, resources)
        created, updated, unchanged = received.created, received.updated, received.unchanged
    reg_id = registration_id(patient_id, practice)
    try:
        ended = end_registrations(remote, source_patient, _registered_on(store, reg_id))
    except RemoteError as error:
        raise RemoteError(
            "the record is here and the patient is registered here, but the registration at"
            f" the old practice is still open ({error}): run the transfer again to end it"
        ) from None
    return TransferResult(
        patient_id, reg_id, practice, not done, created, updated, unchanged, tuple(ended)
    )


def _registered_on(store: ResourceStore, reg_id: str) -> str:
    """The day the registration here began: the day the old one ends."""
    with store.reading() as tx:
        stored = tx.current("EpisodeOfCare", reg_id)
    if stored is None or stored.content is None:
        raise TransferError("the registration here is missing: run the transfer again")
    start = jsonio.loads(stored.content).get("period", {}).get("start")
    if not isinstance(start, str):
        raise TransferError("the registration here has no start date")
    return start
