"""Business rules a few resource types obey on every write through the FHIR API.

One hook, called by `interactions` just before a resource is saved or deleted, in the
write's transaction (so a refusal rolls everything back), whatever the interaction: create,
update, patch, conditional variants, and the entries of a transaction Bundle. A rule may
refuse (raise a `FhirError`), make related changes in the same transaction, and complete the
resource (e.g. fill in what the server assigns). Types without a rule pass untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from opengp.access.principal import Principal
from opengp.services.appointments import fhir_rules as appointments
from opengp.services.fhir import registration
from opengp.store import StoredResource, WriteTransaction

# (transaction, who, the current live version or None, the resource to save or None for a
# deletion) -> the resource to save.
WriteRule = Callable[
    [WriteTransaction, Principal | None, StoredResource | None, dict[str, Any] | None],
    dict[str, Any] | None,
]

RULES: Mapping[str, WriteRule] = {
    "Appointment": appointments.appointment,
    "EpisodeOfCare": registration.episode_of_care,
    "Slot": appointments.slot,
}


def _live(previous: StoredResource | None) -> StoredResource | None:
    return None if previous is None or previous.deleted else previous


def before_save(
    tx: WriteTransaction,
    principal: Principal | None,
    previous: StoredResource | None,
    resource: dict[str, Any],
) -> dict[str, Any]:
    rule = RULES.get(resource["resourceType"])
    if rule is None:
        return resource
    return rule(tx, principal, _live(previous), resource) or resource


def before_delete(tx: WriteTransaction, previous: StoredResource) -> None:
    rule = RULES.get(previous.resource_type)
    if rule is not None:
        rule(tx, None, _live(previous), None)
