"""Authorisation, provenance and audit for the appointment use cases.

The screens call these services rather than the FHIR API, so they go through the same policy
(`guard.authorize`), record the same Provenance and append to the same audit trail as a FHIR
request would (docs/security.md): a write's audit entry in its own transaction, a read's in
a short one before the answer, and every refusal or failure.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar

from opengp.access.audit import entry_for
from opengp.access.principal import Principal
from opengp.fhir.errors import Conflict, FhirError
from opengp.services.fhir import guard, provenance
from opengp.store import (
    ReadTransaction,
    ResourceStore,
    StoredResource,
    WriteConflict,
    WriteTransaction,
)

T = TypeVar("T")
MAX_ATTEMPTS = 5


def authorise(
    tx: ReadTransaction,
    principal: Principal,
    interaction: str,
    resource_type: str,
    patient_id: str | None = None,
) -> None:
    """The policy's decision (Forbidden if no), with the legitimate-relationship check.
    `interaction` is read, search, create or update."""
    route = "search-type" if interaction == "search" else interaction
    if route not in guard.ACTIONS:  # guard.authorize lets unknown ones pass (capabilities)
        raise ValueError(f"{interaction!r} is not an interaction the policy decides")
    guard.authorize(
        principal,
        route,
        resource_type,
        patient_id=patient_id,
        relationship=guard.relationships(tx),
    )


def recorded(
    tx: WriteTransaction,
    principal: Principal,
    action: Literal["create", "update"],
    stored: StoredResource,
    *,
    patient_id: str | None = None,
    use_case: str,
) -> StoredResource:
    """Provenance and an audit entry for one write, in its transaction."""
    provenance.record(tx, principal, action, 201 if action == "create" else 200, stored)
    tx.audit(
        entry_for(
            principal,
            action,
            patient_id=patient_id,
            resource_type=stored.resource_type,
            resource_id=stored.id,
            detail={"use_case": use_case},
        )
    )
    return stored


def recorded_many(
    tx: WriteTransaction,
    principal: Principal,
    resource_type: str,
    ids: Sequence[str],
    *,
    when: datetime,
    use_case: str,
) -> None:
    """One Provenance naming every resource created in bulk (version 1 each: slot
    generation), and one audit entry."""
    if not ids:
        return
    first = StoredResource(resource_type, ids[0], 1, when, False, None)
    body = provenance.provenance_of(principal, "create", first)
    body["target"] = [{"reference": f"{resource_type}/{id}/_history/1"} for id in ids]
    new_id = str(uuid.uuid4())
    tx.save("Provenance", new_id, {"id": new_id, **body}, method="POST", previous=None)
    detail = {"use_case": use_case, "count": len(ids)}
    tx.audit(entry_for(principal, "create", resource_type=resource_type, detail=detail))


def writing(
    store: ResourceStore,
    principal: Principal,
    resource_type: str,
    work: Callable[[WriteTransaction], T],
    *,
    action: str = "update",
) -> T:
    """Run `work` in a write transaction, again if a concurrent write won; a refusal or
    failure is audited (its transaction rolled back) and raised."""
    try:
        for _ in range(MAX_ATTEMPTS):
            try:
                with store.writing() as tx:
                    return work(tx)
            except WriteConflict:
                continue
        raise Conflict(f"the {resource_type} is being changed by others; try again")
    except FhirError as error:
        _failed(store, principal, action, resource_type, error)
        raise


def reading(
    store: ResourceStore,
    principal: Principal,
    resource_type: str,
    work: Callable[[ReadTransaction], T],
    *,
    patient_id: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> T:
    """Run `work` in a read transaction and audit it as a search (before returning)."""
    try:
        with store.reading() as tx:
            result = work(tx)
    except FhirError as error:
        _failed(store, principal, "search-type", resource_type, error)
        raise
    entry = entry_for(
        principal, "search", patient_id=patient_id, resource_type=resource_type, detail=detail
    )
    with store.auditing() as trail:
        trail.audit(entry)
    return result


def _failed(
    store: ResourceStore, principal: Principal, action: str, resource_type: str, error: FhirError
) -> None:
    with store.auditing() as trail:
        trail.audit(guard.failure(principal, action, [resource_type], error))
