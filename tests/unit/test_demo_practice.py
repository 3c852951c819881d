"""The synthetic practice: UK Core-shaped, valid, deterministic, staffed to its list size."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date
from typing import Any

import pytest

from opengp.demo.model import ODS_SYSTEM, SDS_ROLE_SYSTEM, DemoConfig
from opengp.demo.practice import STAFF_NUMBER_SYSTEM, build_practice, site_of
from opengp.fhir.validation import validate_resource

AS_OF = date(2025, 3, 12)


def _config(patients: int = 1000, seed: int = 1) -> DemoConfig:
    return DemoConfig(patients=patients, seed=seed, as_of=AS_OF)


def _by_type(resources: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for resource in resources:
        found.setdefault(resource["resourceType"], []).append(resource)
    return found


@pytest.mark.parametrize("patients", [300, 10_000])
def test_every_resource_is_valid(patients: int) -> None:
    _, resources = build_practice(_config(patients))
    for resource in resources:
        validate_resource(resource)


def test_same_seed_same_practice_other_seed_other_practice() -> None:
    assert build_practice(_config()) == build_practice(_config())
    one, _ = build_practice(_config(seed=1))
    two, _ = build_practice(_config(seed=2))
    assert one.organization_id != two.organization_id
    assert {s.role_id for s in one.staff}.isdisjoint(s.role_id for s in two.staff)


def test_ids_are_unique_and_references_resolve() -> None:
    _, resources = build_practice(_config(10_000))
    keys = [f"{r['resourceType']}/{r['id']}" for r in resources]
    assert len(keys) == len(set(keys))
    for reference in _references(resources):
        assert reference in keys


def _references(value: Any) -> list[str]:
    if isinstance(value, dict):
        own = [value["reference"]] if isinstance(value.get("reference"), str) else []
        return own + [r for v in value.values() for r in _references(v)]
    if isinstance(value, list):
        return [r for v in value for r in _references(v)]
    return []


def test_organization_is_a_fictional_gp_practice() -> None:
    practice, resources = build_practice(_config())
    (organization,) = _by_type(resources)["Organization"]
    assert organization["id"] == practice.organization_id
    assert organization["name"] == practice.name
    assert organization["identifier"] == [{"system": ODS_SYSTEM, "value": practice.ods_code}]
    assert re.fullmatch(r"Y\d{5}", practice.ods_code)
    assert organization["type"][0]["text"] == "GP practice"
    phones = [t["value"] for r in resources for t in r.get("telecom", []) if t["system"] == "phone"]
    assert phones
    assert all(re.fullmatch(r"01632 960\d{3}", p) for p in phones)  # Ofcom drama numbers


def test_sites_are_buildings_managed_by_the_practice() -> None:
    practice, resources = build_practice(_config(10_000))
    locations = _by_type(resources)["Location"]
    assert 1 <= len(locations) <= 2
    assert [(loc["id"], loc["name"]) for loc in locations] == [
        (s.location_id, s.name) for s in practice.sites
    ]
    for location in locations:
        assert location["managingOrganization"]["reference"] == (
            f"Organization/{practice.organization_id}"
        )
        assert location["physicalType"]["coding"][0]["code"] == "bu"
        assert location["address"]["line"]


def test_services_are_provided_by_the_practice_at_its_sites() -> None:
    practice, resources = build_practice(_config())
    services = _by_type(resources)["HealthcareService"]
    assert {s["name"] for s in services} >= {"GP appointments", "Practice nurse clinics"}
    site_refs = {f"Location/{s.location_id}" for s in practice.sites}
    for service in services:
        assert service["providedBy"]["reference"] == f"Organization/{practice.organization_id}"
        assert {loc["reference"] for loc in service["location"]} == site_refs


EXPECTED_ROLE = {
    "gp-partner": "R8000",
    "salaried-gp": "R8000",
    "nurse": "R8001",
    "hca": "R8008",
    "pharmacist": "R8003",
    "receptionist": "R8009",
    "practice-manager": "R8008",
}


def test_staff_are_practitioners_with_roles() -> None:
    practice, resources = build_practice(_config(10_000))
    found = _by_type(resources)
    practitioners = {p["id"]: p for p in found["Practitioner"]}
    roles = {r["id"]: r for r in found["PractitionerRole"]}
    assert len(practitioners) == len(roles) == len(practice.staff)
    names = set()
    for member in practice.staff:
        practitioner = practitioners[member.practitioner_id]
        role = roles[member.role_id]
        assert member.sds_role == EXPECTED_ROLE[member.kind]
        assert member.clinical == (member.kind not in {"receptionist", "practice-manager"})
        (code,) = role["code"]
        assert code["coding"][0]["system"] == SDS_ROLE_SYSTEM
        assert code["coding"][0]["code"] == member.sds_role
        assert code["text"]  # the local job title
        assert role["practitioner"]["reference"] == f"Practitioner/{member.practitioner_id}"
        assert role["organization"]["reference"] == f"Organization/{practice.organization_id}"
        site = site_of(practice, member)
        assert role["location"][0]["reference"] == f"Location/{site.location_id}"
        (name,) = practitioner["name"]
        doctor = member.kind in {"gp-partner", "salaried-gp"}
        assert (name.get("prefix") == ["Dr"]) == doctor
        assert member.name.startswith("Dr ") == doctor
        (identifier,) = practitioner["identifier"]
        assert identifier["system"] == STAFF_NUMBER_SYSTEM
        names.add(member.name)
    assert len(names) == len(practice.staff)


@pytest.mark.parametrize(
    ("patients", "expected"),
    [
        (
            300,
            {"gp-partner": 1, "salaried-gp": 1, "nurse": 1, "hca": 1, "pharmacist": 1,
             "receptionist": 1, "practice-manager": 1},
        ),
        (
            10_000,
            {"gp-partner": 3, "salaried-gp": 3, "nurse": 3, "hca": 2, "pharmacist": 1,
             "receptionist": 6, "practice-manager": 1},
        ),
        (
            20_000,
            {"gp-partner": 6, "salaried-gp": 6, "nurse": 6, "hca": 4, "pharmacist": 2,
             "receptionist": 12, "practice-manager": 2},
        ),
    ],
)  # fmt: skip
def test_staff_scale_with_the_list(patients: int, expected: dict[str, int]) -> None:
    practice, _ = build_practice(_config(patients))
    assert Counter(s.kind for s in practice.staff) == expected
    assert len(practice.clinicians()) == sum(
        n for kind, n in expected.items() if kind not in {"receptionist", "practice-manager"}
    )
