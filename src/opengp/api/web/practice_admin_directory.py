"""The practice's clinicians (PractitionerRoles at its Organization) and sites (Locations it
manages), for the practice admin screens' choices, and its appointment books by name.

Read through the appointment services' own authorisation and audit (a search of
PractitionerRole and Location, as the FHIR API would record it), never the store directly.
"""

from __future__ import annotations

from dataclasses import dataclass

from opengp.access.principal import Principal
from opengp.services import appointments as booking
from opengp.services.appointments import recording
from opengp.services.appointments.reads import find
from opengp.store import ReadTransaction, ResourceStore

MAX_ENTRIES = 500  # far more clinicians and sites than a practice has


@dataclass(frozen=True, slots=True)
class Directory:
    clinicians: dict[str, str]  # PractitionerRole id -> name, sorted by name
    sites: dict[str, str]  # Location id -> name, sorted by name


@dataclass(frozen=True, slots=True)
class Book:
    """An appointment book of the practice, with its clinician's and site's names."""

    summary: booking.ScheduleSummary
    clinician: str
    site: str

    @property
    def id(self) -> str:
        return self.summary.id


def directory(store: ResourceStore, principal: Principal, organization_id: str) -> Directory:
    org = [("organization", f"Organization/{organization_id}")]

    def work(tx: ReadTransaction) -> Directory:
        recording.authorise(tx, principal, "search", "PractitionerRole")
        recording.authorise(tx, principal, "search", "Location")
        roles = find(tx, "PractitionerRole", org, MAX_ENTRIES)
        sites = find(tx, "Location", org, MAX_ENTRIES)
        names = {r["id"]: _role_name(r) for r in roles if r.get("active") is not False}
        places = {
            s["id"]: str(s.get("name") or s["id"]) for s in sites if s.get("status") != "inactive"
        }
        return Directory(_by_name(names), _by_name(places))

    return recording.reading(store, principal, "PractitionerRole", work)


def books(store: ResourceStore, principal: Principal, organization_id: str) -> list[Book]:
    """The practice's active books: those of its clinicians or at its sites."""
    known = directory(store, principal, organization_id)
    found = booking.list_schedules(store, principal)
    return [
        _book(s, known)
        for s in found
        if s.practitioner_role_id in known.clinicians or s.location_id in known.sites
    ]


def book(
    store: ResourceStore, principal: Principal, organization_id: str, schedule_id: str
) -> Book | None:
    """One of the practice's books; None when it is not the practice's."""
    known = directory(store, principal, organization_id)
    found = booking.get_schedule(store, principal, schedule_id)
    if found.practitioner_role_id in known.clinicians or found.location_id in known.sites:
        return _book(found, known)
    return None


def _book(schedule: booking.ScheduleSummary, known: Directory) -> Book:
    clinician = known.clinicians.get(schedule.practitioner_role_id or "", schedule.clinician)
    site = known.sites.get(schedule.location_id or "", "Another site")
    return Book(schedule, clinician, site)


def _role_name(role: dict[str, object]) -> str:
    practitioner = role.get("practitioner")
    display = practitioner.get("display") if isinstance(practitioner, dict) else None
    specialty = role.get("code")
    job = ""
    if isinstance(specialty, list) and specialty and isinstance(specialty[0], dict):
        job = str(specialty[0].get("text") or "")
    name = str(display or role["id"])
    return f"{name} ({job})" if job else name


def _by_name(names: dict[str, str]) -> dict[str, str]:
    return dict(sorted(names.items(), key=lambda item: (item[1].lower(), item[0])))
