"""The synthetic patients: summaries, NHS numbers, age/sex mix, demographics."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest

from opengp.demo.dates import age_on, years_before
from opengp.demo.model import DemoConfig, Practice, Site, StaffMember, demo_id
from opengp.demo.people import (
    GP_KINDS,
    OUTWARD_CODE,
    demographics,
    nhs_number,
    patient_summary,
)
from opengp.fhir.nhs_number import is_valid_nhs_number
from opengp.fhir.validation import validate_resource

AS_OF = date(2025, 6, 30)
CONFIG = DemoConfig(patients=3000, seed=7, as_of=AS_OF)


def small_practice(config: DemoConfig) -> Practice:
    """A practice built inline (the real builder lives in demo/practice.py)."""
    kinds = [
        ("gp-partner", "R8000", True),
        ("gp-partner", "R8000", True),
        ("salaried-gp", "R8000", True),
        ("nurse", "R8001", True),
        ("hca", "R8008", True),
        ("pharmacist", "R8003", True),
        ("receptionist", "R8009", False),
    ]
    staff = tuple(
        StaffMember(
            demo_id(config, "practitioner", i),
            demo_id(config, "practitioner-role", i),
            f"Dr Test {i}",
            kind,
            role,
            clinical,
        )
        for i, (kind, role, clinical) in enumerate(kinds)
    )
    sites = (Site(demo_id(config, "location", "main"), "Test Surgery"),)
    return Practice(demo_id(config, "organization"), "Y99999", "Test Surgery", sites, staff)


PRACTICE = small_practice(CONFIG)


def test_nhs_numbers_are_valid_test_numbers_unique_per_index() -> None:
    numbers = [nhs_number(CONFIG, i) for i in range(2000)]
    assert all(n.startswith("999") and is_valid_nhs_number(n) for n in numbers)
    assert len(set(numbers)) == len(numbers)
    assert nhs_number(CONFIG, 5) == nhs_number(CONFIG, 5)


def test_nhs_numbers_are_unique_over_the_whole_test_range_mapping() -> None:
    # Every block of ten stems is used by nine consecutive indexes: check a stretch of
    # indexes far apart, and the limit.
    sample = [nhs_number(CONFIG, i) for i in range(0, 900_000, 97)]
    assert len(set(sample)) == len(sample)
    with pytest.raises(ValueError):
        nhs_number(CONFIG, 900_000)


def test_summary_is_deterministic_and_depends_on_the_seed() -> None:
    first = [patient_summary(CONFIG, i, PRACTICE) for i in range(50)]
    again = [patient_summary(CONFIG, i, PRACTICE) for i in range(50)]
    assert first == again
    other = DemoConfig(patients=50, seed=8, as_of=AS_OF)
    different = [patient_summary(other, i, small_practice(other)) for i in range(50)]
    assert [s.birth_date for s in first] != [s.birth_date for s in different]


def test_summary_dates_are_consistent() -> None:
    gp_roles = {s.role_id for s in PRACTICE.staff if s.kind in GP_KINDS}
    history_start = years_before(AS_OF, CONFIG.history_years)
    for i in range(3000):
        s = patient_summary(CONFIG, i, PRACTICE)
        assert s.patient_id == demo_id(CONFIG, "patient", i)
        assert s.birth_date <= s.registration_date <= AS_OF
        assert s.usual_gp_role_id in gp_roles
        assert s.sex in ("female", "male")
        if s.death_date is not None:
            assert s.registration_date < s.death_date < AS_OF
            assert s.death_date >= history_start


def test_age_and_sex_mix_is_shaped_like_england() -> None:
    """Of the living on as_of: 0-15 18.9%, 16-64 62.5%, 65+ 18.6% (ONS mid-2022,
    rounded), women 50.6%; each within 2.5 percentage points. Deaths about 0.8% a year."""
    summaries = [patient_summary(CONFIG, i, PRACTICE) for i in range(3000)]
    living = [s for s in summaries if s.death_date is None]
    ages = Counter(
        "child" if a < 16 else "adult" if a < 65 else "old"
        for a in (age_on(s.birth_date, AS_OF) for s in living)
    )
    n = len(living)
    assert ages["child"] / n == pytest.approx(0.189, abs=0.025)
    assert ages["adult"] / n == pytest.approx(0.625, abs=0.025)
    assert ages["old"] / n == pytest.approx(0.186, abs=0.025)
    women = sum(s.sex == "female" for s in living) / n
    assert women == pytest.approx(0.506, abs=0.025)
    deaths_a_year = (len(summaries) - n) / len(summaries) / CONFIG.history_years
    assert 0.005 < deaths_a_year < 0.011
    # The dead are mostly old.
    dead_ages = [age_on(s.birth_date, s.death_date) for s in summaries if s.death_date]
    assert sum(a >= 75 for a in dead_ages) / len(dead_ages) > 0.5
    # Some joined recently, most long ago.
    recent = sum((AS_OF - s.registration_date).days < 365 for s in summaries) / len(summaries)
    assert 0.05 < recent < 0.2


def test_demographics_are_valid_and_synthetic() -> None:
    related = 0
    for i in range(200):
        summary = patient_summary(CONFIG, i, PRACTICE)
        person, resources = demographics(CONFIG, PRACTICE, summary)
        for resource in resources:
            validate_resource(resource)
        patient = resources[0]
        assert patient["resourceType"] == "Patient"
        assert patient["id"] == summary.patient_id
        assert patient["identifier"][0]["value"] == person.nhs_number == nhs_number(CONFIG, i)
        assert patient["birthDate"] == summary.birth_date.isoformat()
        assert patient["gender"] == summary.sex
        assert ("deceasedDateTime" in patient) == (summary.death_date is not None)
        assert patient["generalPractitioner"][0]["reference"] == (
            f"PractitionerRole/{summary.usual_gp_role_id}"
        )
        assert patient["managingOrganization"]["reference"] == (
            f"Organization/{PRACTICE.organization_id}"
        )
        assert patient["address"][0]["postalCode"].startswith(f"{OUTWARD_CODE} ")
        for point in patient.get("telecom", []):
            if point["system"] == "phone":
                assert point["value"].startswith(("07700 900", "01632 960"))
            else:
                assert point["value"].endswith("@example.com")
        assert [p["rank"] for p in patient.get("telecom", [])] == list(
            range(1, len(patient.get("telecom", [])) + 1)
        )
        episode = resources[1]
        assert episode["resourceType"] == "EpisodeOfCare"
        assert episode["period"]["start"] == summary.registration_date.isoformat()
        for proxy in resources[2:]:
            assert proxy["resourceType"] == "RelatedPerson"
            assert proxy["patient"]["reference"] == f"Patient/{summary.patient_id}"
            assert summary.registration_date.isoformat() <= proxy["period"]["start"]
            related += 1
    assert related > 0


def test_demographics_are_deterministic() -> None:
    summary = patient_summary(CONFIG, 11, PRACTICE)
    assert demographics(CONFIG, PRACTICE, summary) == demographics(CONFIG, PRACTICE, summary)


def test_a_practice_without_gps_cannot_register_patients() -> None:
    nurses_only = Practice(
        PRACTICE.organization_id,
        PRACTICE.ods_code,
        PRACTICE.name,
        PRACTICE.sites,
        tuple(s for s in PRACTICE.staff if s.kind not in GP_KINDS),
    )
    with pytest.raises(ValueError):
        patient_summary(CONFIG, 0, nurses_only)
