"""A practice's online-booking settings: how far ahead patients may book, until when they
may cancel, and which of the practice's slot types they may book at all.

Stored as a FHIR `Basic` resource (R4's home for what has no resource of its own,
http://hl7.org/fhir/R4/basic.html) about the practice's Organization, with one OpenGP
complex extension; its id is derived from the Organization's, so there is exactly one per
practice and two first saves cannot make two. Versioned, audited and exported with the
practice like every other resource, and no new table.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from opengp.access.principal import Principal
from opengp.fhir import jsonio
from opengp.fhir.errors import Unprocessable
from opengp.fhir.validation import validate_resource
from opengp.services.appointments import recording
from opengp.services.appointments.codes import SETTINGS_CODE, SETTINGS_URL, reference_id
from opengp.store import ReadTransaction, ResourceStore, WriteTransaction

MAX_HORIZON_DAYS = 366
MAX_CUTOFF_HOURS = 24 * 28


@dataclass(frozen=True, slots=True)
class PracticeSettings:
    """Defaults are the safe ones: nothing is bookable online until the practice says which
    slot types are (the GP Connect "bookable" control, opt-in)."""

    online_horizon_days: int = 28  # patients book at most this many days ahead
    cancellation_cutoff_hours: int = 24  # patients cancel online until this long before
    online_slot_types: frozenset[str] = field(default_factory=frozenset)  # serviceType.text

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for each value out of range."""
        found = []
        if not 0 <= self.online_horizon_days <= MAX_HORIZON_DAYS:
            found.append(("online_horizon_days", f"must be 0 to {MAX_HORIZON_DAYS} days"))
        if not 0 <= self.cancellation_cutoff_hours <= MAX_CUTOFF_HOURS:
            found.append(("cancellation_cutoff_hours", f"must be 0 to {MAX_CUTOFF_HOURS} hours"))
        for text in self.online_slot_types:
            if not text.strip() or len(text) > 100:
                found.append(("online_slot_types", "each slot type is 1 to 100 characters"))
        return found


def settings_id(organization_id: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{SETTINGS_URL}/Organization/{organization_id}"))


def settings_of(tx: ReadTransaction, organization_id: str | None) -> PracticeSettings:
    """The practice's settings (the defaults when it has saved none)."""
    if organization_id is None:
        return PracticeSettings()
    stored = tx.current("Basic", settings_id(organization_id))
    if stored is None or stored.content is None:
        return PracticeSettings()
    return _parse(jsonio.loads(stored.content))


def practice_settings(
    store: ResourceStore, principal: Principal, organization_id: str
) -> PracticeSettings:
    """For the screens: the settings, for staff to edit or patients to be told the rules."""
    return recording.reading(store, principal, "Basic", lambda tx: settings_of(tx, organization_id))


def save_practice_settings(
    store: ResourceStore, principal: Principal, organization_id: str, settings: PracticeSettings
) -> PracticeSettings:
    """Practice admin: replace the settings (needs the right to change the appointment book)."""
    problems = settings.problems()
    if problems:
        raise Unprocessable(
            "; ".join(f"{name} {message}" for name, message in problems),
            expression=[name for name, _ in problems],
        )

    def work(tx: WriteTransaction) -> PracticeSettings:
        recording.authorise(tx, principal, "update", "Schedule")
        id = settings_id(organization_id)
        previous = tx.current("Basic", id, for_update=True)
        body = _resource(id, organization_id, settings)
        validate_resource(body)
        live = previous if previous is not None and not previous.deleted else None
        stored = tx.save("Basic", id, body, method="PUT", previous=previous)
        recording.recorded(
            tx, principal, "update" if live else "create", stored, use_case="appointment-settings"
        )
        return settings

    return recording.writing(store, principal, "Basic", work)


def practice_of_schedule(tx: ReadTransaction, schedule: dict[str, Any]) -> str | None:
    """The practice whose book a Schedule is: the Organization providing its HealthcareService,
    or managing its Location."""
    for actor in schedule.get("actor") or ():
        for kind, element in (
            ("HealthcareService", "providedBy"),
            ("Location", "managingOrganization"),
        ):
            id = reference_id(actor, kind)
            stored = tx.current(kind, id) if id else None
            if stored is not None and stored.content is not None:
                found = reference_id(jsonio.loads(stored.content).get(element), "Organization")
                if found:
                    return found
    return None


def _resource(id: str, organization_id: str, settings: PracticeSettings) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        {"url": "onlineHorizonDays", "valueUnsignedInt": settings.online_horizon_days},
        {"url": "cancellationCutoffHours", "valueUnsignedInt": settings.cancellation_cutoff_hours},
    ]
    parts += [
        {"url": "onlineSlotType", "valueString": t} for t in sorted(settings.online_slot_types)
    ]
    return {
        "resourceType": "Basic",
        "id": id,
        "extension": [{"url": SETTINGS_URL, "extension": parts}],
        "code": {"coding": [dict(SETTINGS_CODE)], "text": "Appointment booking settings"},
        "subject": {"reference": f"Organization/{organization_id}"},
    }


def _parse(body: dict[str, Any]) -> PracticeSettings:
    values: dict[str, Any] = {}
    types: set[str] = set()
    for extension in body.get("extension") or ():
        if extension.get("url") != SETTINGS_URL:
            continue
        for part in extension.get("extension") or ():
            if part.get("url") == "onlineHorizonDays":
                values["online_horizon_days"] = int(part["valueUnsignedInt"])
            elif part.get("url") == "cancellationCutoffHours":
                values["cancellation_cutoff_hours"] = int(part["valueUnsignedInt"])
            elif part.get("url") == "onlineSlotType":
                types.add(str(part["valueString"]))
    return PracticeSettings(**values, online_slot_types=frozenset(types))
