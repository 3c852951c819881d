"""What the parts of the generator share: settings, the practice, ids and random streams.

Determinism: every patient draws from its own random stream, seeded from (seed, index), so a
patient's record is the same whichever other patients are generated, and any part of the
generator can recompute a patient's summary from its index without holding the list.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import date

# All demo ids are UUIDv5 in this namespace: stable across runs for the same seed.
NAMESPACE = uuid.UUID("2f0c6b1e-8d1a-4c53-9a3e-6f1e0b7d4c21")
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
SDS_ROLE_SYSTEM = "https://fhir.hl7.org.uk/CodeSystem/UKCore-SDSJobRoleName"


@dataclass(frozen=True, slots=True)
class DemoConfig:
    patients: int = 1000
    seed: int = 1
    # "Today" for the practice: history runs up to it, future appointments after it.
    as_of: date = field(default_factory=date.today)
    history_years: int = 5  # how far back observations, issues and consultations go
    appointment_weeks_past: int = 8
    appointment_weeks_ahead: int = 6


def demo_id(config: DemoConfig, *parts: object) -> str:
    """A stable id for one generated thing, e.g. demo_id(config, "patient", 12)."""
    return str(uuid.uuid5(NAMESPACE, ":".join(str(p) for p in (config.seed, *parts))))


def stream(config: DemoConfig, *parts: object) -> random.Random:
    """An independent, reproducible random stream for one part of the practice."""
    # Synthetic data, not secrets: a seeded PRNG is what makes the practice reproducible.
    return random.Random(":".join(str(p) for p in (config.seed, *parts)))  # noqa: S311


@dataclass(frozen=True, slots=True)
class StaffMember:
    practitioner_id: str
    role_id: str  # PractitionerRole id
    name: str  # "Dr Amira Shah"
    kind: str  # gp-partner, salaried-gp, nurse, hca, pharmacist, receptionist, practice-manager
    sds_role: str  # national RBAC role code, e.g. R8000
    clinical: bool  # holds appointment sessions


@dataclass(frozen=True, slots=True)
class Site:
    location_id: str
    name: str


@dataclass(frozen=True, slots=True)
class Practice:
    organization_id: str
    ods_code: str
    name: str
    sites: tuple[Site, ...]
    staff: tuple[StaffMember, ...]

    def clinicians(self) -> tuple[StaffMember, ...]:
        return tuple(s for s in self.staff if s.clinical)


@dataclass(frozen=True, slots=True)
class PatientSummary:
    """What other parts need to know of a patient without generating the whole record."""

    index: int
    patient_id: str
    birth_date: date
    sex: str  # FHIR administrative gender: female | male
    registration_date: date
    death_date: date | None
    usual_gp_role_id: str
