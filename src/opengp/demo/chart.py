"""One patient's record while it is being written: the window it may be written in, its
consultations, the staff who write it, and ids.

The record is written between `start` (the later of registration and the start of the
history window) and `end` (as_of, or the day of death): every recorded date of every entry
falls in [start, end]. Onsets may be older (a history taken on joining the list).

Codings are shared dicts, built once per key (`coded`): treat generated resources as
read-only.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from typing import Any

from opengp.demo.dates import age_on, stamp, surgery_minute, years_before
from opengp.demo.model import NAMESPACE, DemoConfig, PatientSummary, Practice, StaffMember, stream
from opengp.demo.people import GP_KINDS, Person
from opengp.terminology import concept

UCUM = "http://unitsofmeasure.org"


@cache
def coded(key: str) -> dict[str, Any]:
    """The CodeableConcept of a starter-set concept, built once (shared: do not mutate)."""
    return concept(key).codeable()


@cache
def coding(key: str) -> dict[str, str]:
    return concept(key).coding()


class Ids:
    """demo_id(config, "patient", index, kind, n), computed from a hash prefix: the same
    UUIDv5 strings at a fraction of the cost (the prefix is hashed once per patient)."""

    __slots__ = ("_counters", "_prefix")

    def __init__(self, config: DemoConfig, index: int) -> None:
        self._prefix = hashlib.sha1(  # UUIDv5 is SHA-1 by definition
            NAMESPACE.bytes + f"{config.seed}:patient:{index}:".encode(), usedforsecurity=False
        )
        self._counters: dict[str, int] = {}

    def new(self, kind: str) -> str:
        n = self._counters.get(kind, 0) + 1
        self._counters[kind] = n
        digest = self._prefix.copy()
        digest.update(f"{kind}:{n}".encode())
        value = int.from_bytes(digest.digest()[:16])
        value = (value & ~(0xF000 << 64) & ~(0xC000 << 48)) | (5 << 76) | (0x8000 << 48)
        x = f"{value:032x}"
        return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


@dataclass(frozen=True, slots=True)
class Team:
    gps: tuple[StaffMember, ...]
    nurses: tuple[StaffMember, ...]  # nurses, else GPs
    assistants: tuple[StaffMember, ...]  # healthcare assistants, else nurses
    pharmacists: tuple[StaffMember, ...]  # pharmacists, else GPs
    refs: dict[str, dict[str, str]]  # role id -> Reference to the PractitionerRole


@cache
def team_of(practice: Practice) -> Team:
    clinicians = practice.clinicians()
    gps = tuple(s for s in clinicians if s.kind in GP_KINDS)
    nurses = tuple(s for s in clinicians if s.kind == "nurse") or gps
    assistants = tuple(s for s in clinicians if s.kind == "hca") or nurses
    pharmacists = tuple(s for s in clinicians if s.kind == "pharmacist") or gps
    refs = {
        s.role_id: {"reference": f"PractitionerRole/{s.role_id}", "display": s.name}
        for s in practice.staff
    }
    return Team(gps, nurses, assistants, pharmacists, refs)


@dataclass(slots=True)
class Visit:
    """A consultation: becomes an Encounter; entries recorded in it reference it."""

    id: str
    day: date
    minute: int
    mode: str  # encounter concept key: consultation_face_to_face, telephone_consultation, ...
    staff: StaffMember
    purpose: str  # acute, review, diagnosis, vaccination, health-check, new-patient, ...
    reason: str  # why, in words (Encounter.reasonCode.text)
    conditions: tuple[str, ...] = ()  # condition keys addressed (reasonCode/reasonReference)
    minutes: int = 10
    when: str = field(init=False)
    ref: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.when = stamp(self.day, self.minute)
        self.ref = {"reference": f"Encounter/{self.id}"}


@dataclass(slots=True)
class Diagnosis:
    key: str
    id: str  # Condition id
    onset: date
    recorded: date
    visit: Visit | None  # the consultation it was diagnosed in, when in the window


class Chart:
    """The state of one patient's record being generated."""

    def __init__(
        self, config: DemoConfig, practice: Practice, summary: PatientSummary, person: Person
    ) -> None:
        self.config = config
        self.practice = practice
        self.summary = summary
        self.person = person
        self.rng: random.Random = stream(config, "record", summary.index)
        self.ids = Ids(config, summary.index)
        self.history_start = years_before(config.as_of, config.history_years)
        self.start = max(summary.registration_date, self.history_start)
        self.end = summary.death_date or config.as_of
        self.subject = {"reference": f"Patient/{summary.patient_id}"}
        self.organization = {"reference": f"Organization/{practice.organization_id}"}
        self.team = team_of(practice)
        self.usual_gp = next(s for s in self.team.gps if s.role_id == summary.usual_gp_role_id)
        self.visits: list[Visit] = []
        self.diagnoses: dict[str, Diagnosis] = {}
        self.drugs: dict[str, date] = {}  # repeat medication: drug key -> first authorised
        self.entries: list[dict[str, Any]] = []  # everything but Encounters

    def age(self, day: date) -> int:
        return age_on(self.summary.birth_date, day)

    def has(self, *keys: str) -> bool:
        return any(k in self.diagnoses for k in keys)

    def has_by(self, day: date, *keys: str) -> bool:
        """Diagnosed (onset) on or before `day`."""
        for key in keys:
            diagnosis = self.diagnoses.get(key)
            if diagnosis is not None and diagnosis.onset <= day:
                return True
        return False

    def role(self, staff: StaffMember) -> dict[str, str]:
        return self.team.refs[staff.role_id]

    def gp(self) -> StaffMember:
        """Usually the patient's own GP."""
        if self.rng.random() < 0.6:
            return self.usual_gp
        return self.rng.choice(self.team.gps)

    def visit(
        self,
        day: date,
        purpose: str,
        reason: str,
        staff: StaffMember,
        mode: str = "consultation_face_to_face",
        conditions: tuple[str, ...] = (),
        minute: int | None = None,
    ) -> Visit:
        if minute is None:
            minute = surgery_minute(self.rng)
        visit = Visit(
            self.ids.new("Encounter"), day, minute, mode, staff, purpose, reason, conditions
        )
        self.visits.append(visit)
        return visit

    def add(self, resource: dict[str, Any]) -> dict[str, Any]:
        self.entries.append(resource)
        return resource

    def new_id(self, kind: str) -> str:
        return self.ids.new(kind)
