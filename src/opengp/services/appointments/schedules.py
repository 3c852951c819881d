"""Practice admin: the appointment books (Schedules) and their rotas."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from opengp.access.principal import Principal
from opengp.fhir import jsonio
from opengp.fhir.errors import NotFound
from opengp.fhir.validation import validate_resource
from opengp.services.appointments import recording
from opengp.services.appointments.codes import reference_id
from opengp.services.appointments.reads import find, live_resource
from opengp.services.appointments.rota import Session, check_rota, sessions_of, with_sessions
from opengp.store import ReadTransaction, ResourceStore, WriteTransaction

SERVICE_CATEGORY = "http://terminology.hl7.org/CodeSystem/service-category"


@dataclass(frozen=True, slots=True)
class ScheduleSummary:
    id: str
    clinician: str  # PractitionerRole display
    practitioner_role_id: str | None
    location_id: str | None
    healthcare_service_id: str | None
    slot_types: tuple[str, ...]
    sessions: tuple[Session, ...]
    active: bool


def summary(body: dict[str, Any]) -> ScheduleSummary:
    actors = body.get("actor") or []
    role: dict[str, Any] = next((a for a in actors if reference_id(a, "PractitionerRole")), {})
    return ScheduleSummary(
        id=body["id"],
        clinician=str(role.get("display") or body.get("comment") or body["id"]),
        practitioner_role_id=reference_id(role, "PractitionerRole"),
        location_id=next((i for a in actors if (i := reference_id(a, "Location"))), None),
        healthcare_service_id=next(
            (i for a in actors if (i := reference_id(a, "HealthcareService"))), None
        ),
        slot_types=tuple(t["text"] for t in body.get("serviceType") or () if t.get("text")),
        sessions=tuple(sessions_of(body)),
        active=body.get("active", True) is not False,
    )


def create_schedule(
    store: ResourceStore,
    principal: Principal,
    *,
    practitioner_role_id: str,
    location_id: str,
    healthcare_service_id: str | None = None,
    sessions: tuple[Session, ...] = (),
) -> ScheduleSummary:
    """A new appointment book for a clinician at a site, with its rota."""
    check_rota(list(sessions))

    def work(tx: WriteTransaction) -> ScheduleSummary:
        recording.authorise(tx, principal, "create", "Schedule")
        role = live_resource(tx, "PractitionerRole", practitioner_role_id)
        live_resource(tx, "Location", location_id)
        actors: list[dict[str, Any]] = [
            {"reference": f"PractitionerRole/{practitioner_role_id}", **_display(role)},
            {"reference": f"Location/{location_id}"},
        ]
        if healthcare_service_id is not None:
            live_resource(tx, "HealthcareService", healthcare_service_id)
            actors.append({"reference": f"HealthcareService/{healthcare_service_id}"})
        id = str(uuid.uuid4())
        category = {"system": SERVICE_CATEGORY, "code": "17", "display": "General Practice"}
        body = {
            "resourceType": "Schedule",
            "id": id,
            "active": True,
            "serviceCategory": [{"coding": [category]}],
            "actor": actors,
        }
        body = with_sessions(body, list(sessions))
        validate_resource(body)
        stored = tx.save("Schedule", id, body, method="POST", previous=None)
        recording.recorded(tx, principal, "create", stored, use_case="create-schedule")
        return summary(body)

    return recording.writing(store, principal, "Schedule", work, action="create")


def set_rota(
    store: ResourceStore, principal: Principal, schedule_id: str, sessions: tuple[Session, ...]
) -> ScheduleSummary:
    """Replace a book's sessions. Slots already made are kept (block those no longer wanted);
    the next `generate_slots` makes them from the new rota."""
    check_rota(list(sessions))

    def work(tx: WriteTransaction) -> ScheduleSummary:
        recording.authorise(tx, principal, "update", "Schedule")
        previous = tx.current("Schedule", schedule_id, for_update=True)
        if previous is None or previous.content is None:
            raise NotFound(f"Schedule/{schedule_id} is not known")
        body = with_sessions(jsonio.loads(previous.content), list(sessions))
        body.pop("meta", None)
        validate_resource(body)
        stored = tx.save("Schedule", schedule_id, body, method="PUT", previous=previous)
        recording.recorded(tx, principal, "update", stored, use_case="set-rota")
        return summary(body)

    return recording.writing(store, principal, "Schedule", work)


def list_schedules(
    store: ResourceStore, principal: Principal, *, practitioner_role_id: str | None = None
) -> list[ScheduleSummary]:
    """Active appointment books (all, or one clinician's)."""
    pairs = [("active", "true"), ("_count", "1000")]
    if practitioner_role_id is not None:
        pairs.append(("actor", f"PractitionerRole/{practitioner_role_id}"))

    def work(tx: ReadTransaction) -> list[ScheduleSummary]:
        recording.authorise(tx, principal, "search", "Schedule")
        found = [summary(body) for body in find(tx, "Schedule", pairs, limit=1000)]
        return sorted(found, key=lambda s: s.clinician)

    return recording.reading(store, principal, "Schedule", work)


def get_schedule(store: ResourceStore, principal: Principal, schedule_id: str) -> ScheduleSummary:
    def work(tx: ReadTransaction) -> ScheduleSummary:
        recording.authorise(tx, principal, "read", "Schedule")
        return summary(live_resource(tx, "Schedule", schedule_id))

    return recording.reading(store, principal, "Schedule", work)


def _display(role: dict[str, Any]) -> dict[str, str]:
    display = (role.get("practitioner") or {}).get("display")
    if isinstance(display, str):
        return {"display": display}
    return {}
