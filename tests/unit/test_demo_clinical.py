"""Each patient's clinical record: valid, deterministic, consistent, at England's rates."""

from __future__ import annotations

from collections import Counter
from datetime import date
from functools import cache
from typing import Any

from opengp.demo.chart import Ids
from opengp.demo.clinical import patient_record
from opengp.demo.conditions import PREVALENCE, conditions_of
from opengp.demo.dates import age_on, years_before
from opengp.demo.model import DemoConfig, PatientSummary, demo_id
from opengp.demo.people import patient_summary
from opengp.fhir.validation import validate_resource
from tests.unit.test_demo_people import AS_OF, CONFIG, PRACTICE, small_practice

HISTORY_START = years_before(AS_OF, CONFIG.history_years)
PRACTICE_IDS = {
    f"Organization/{PRACTICE.organization_id}",
    *(f"Location/{s.location_id}" for s in PRACTICE.sites),
    *(f"Practitioner/{s.practitioner_id}" for s in PRACTICE.staff),
    *(f"PractitionerRole/{s.role_id}" for s in PRACTICE.staff),
}
DIABETES_DRUGS = {
    "metformin_500mg_tablets",
    "gliclazide_80mg_tablets",
    "insulin_glargine_100u_per_ml_pen",
}


@cache
def record(index: int) -> tuple[PatientSummary, list[dict[str, Any]]]:
    summary = patient_summary(CONFIG, index, PRACTICE)
    return summary, list(patient_record(CONFIG, PRACTICE, summary))


def records(count: int) -> list[tuple[PatientSummary, list[dict[str, Any]]]]:
    return [record(i) for i in range(count)]


def by_type(resources: list[dict[str, Any]], resource_type: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["resourceType"] == resource_type]


def code_of(codeable: dict[str, Any]) -> str:
    return str(codeable["coding"][0]["code"])


@cache
def codes() -> dict[str, str]:
    """starter-set key -> code, for the keys the tests look for."""
    from opengp.terminology import starter_set

    return {key: c.code for key, c in starter_set().items()}


def has_condition(resources: list[dict[str, Any]], key: str) -> bool:
    return any(code_of(c["code"]) == codes()[key] for c in by_type(resources, "Condition"))


def observations(resources: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return [o for o in by_type(resources, "Observation") if code_of(o["code"]) == codes()[key]]


def walk_references(node: Any) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        reference = node.get("reference")
        if isinstance(reference, str):
            found.append(reference)
        for value in node.values():
            found += walk_references(value)
    elif isinstance(node, list):
        for item in node:
            found += walk_references(item)
    return found


# --- validity, determinism, ids, references --------------------------------------------


def test_every_resource_of_forty_patients_is_valid_r4() -> None:
    for _, resources in records(40):
        for resource in resources:
            validate_resource(resource)


def test_records_are_deterministic_and_depend_on_the_seed() -> None:
    summary = patient_summary(CONFIG, 3, PRACTICE)
    first = list(patient_record(CONFIG, PRACTICE, summary))
    assert first == list(patient_record(CONFIG, PRACTICE, summary))
    other = DemoConfig(patients=10, seed=CONFIG.seed + 1, as_of=AS_OF)
    other_practice = small_practice(other)
    other_summary = patient_summary(other, 3, other_practice)
    second = list(patient_record(other, other_practice, other_summary))
    assert {r["id"] for r in first}.isdisjoint({r["id"] for r in second})
    assert [r["resourceType"] for r in first] != [r["resourceType"] for r in second]


def test_fast_ids_are_demo_ids() -> None:
    ids = Ids(CONFIG, 42)
    assert ids.new("Observation") == demo_id(CONFIG, "patient", 42, "Observation", 1)
    assert ids.new("Observation") == demo_id(CONFIG, "patient", 42, "Observation", 2)
    assert ids.new("Encounter") == demo_id(CONFIG, "patient", 42, "Encounter", 1)


def test_ids_are_unique_and_references_resolve_within_patient_and_practice() -> None:
    seen: set[str] = set()
    for _, resources in records(100):
        local = {f"{r['resourceType']}/{r['id']}" for r in resources}
        assert len(local) == len(resources)
        assert seen.isdisjoint(local)
        seen |= local
        for resource in resources:
            for reference in walk_references(resource):
                assert reference in local or reference in PRACTICE_IDS, reference


# --- dates ------------------------------------------------------------------------------

RECORDED = (
    "recordedDate",
    "effectiveDateTime",
    "issued",
    "authoredOn",
    "occurrenceDateTime",
    "recorded",
    "date",
)


def test_nothing_is_recorded_before_registration_or_after_death_or_as_of() -> None:
    for summary, resources in records(300):
        first = summary.registration_date.isoformat()
        last = (summary.death_date or AS_OF).isoformat()
        birth = summary.birth_date.isoformat()
        for resource in resources:
            kind = resource["resourceType"]
            if kind in ("Patient", "EpisodeOfCare", "RelatedPerson"):
                continue
            stamps = [resource[k] for k in RECORDED if k in resource]
            if kind == "Encounter":
                stamps += [resource["period"]["start"], resource["period"]["end"]]
            assert stamps, resource
            for stamp in stamps:
                assert first <= stamp[:10] <= last, (kind, stamp, first, last)
            # Consultations, results, issues and immunisations are in the history window.
            if kind in ("Encounter", "Observation", "Immunization", "DocumentReference"):
                assert all(s[:10] >= HISTORY_START.isoformat() for s in stamps)
            if "basedOn" in resource:
                assert all(s[:10] >= HISTORY_START.isoformat() for s in stamps)
            for onset in (resource.get("onsetDateTime"),):
                if onset:
                    assert birth <= onset[:10] <= last


def test_the_dead_have_nothing_after_death() -> None:
    dead = 0
    for summary, resources in records(300):
        if summary.death_date is None:
            continue
        dead += 1
        templates = [m for m in by_type(resources, "MedicationRequest") if "extension" in m]
        assert all(t["status"] == "stopped" for t in templates)
        assert resources[0]["deceasedDateTime"] == summary.death_date.isoformat()
    assert dead > 0


# --- consistency ------------------------------------------------------------------------


def test_diabetics_have_hba1c_and_diabetes_medication() -> None:
    diabetics = 0
    for _, resources in records(400):
        if not (
            has_condition(resources, "type2_diabetes") or has_condition(resources, "type1_diabetes")
        ):
            continue
        diabetics += 1
        assert observations(resources, "hba1c")
        drugs = {
            code_of(m["medicationCodeableConcept"]) for m in by_type(resources, "MedicationRequest")
        }
        assert drugs & {codes()[d] for d in DIABETES_DRUGS}
    assert diabetics >= 10


def test_only_diabetics_get_diabetes_drugs_and_hba1c_in_the_diabetic_range_at_diagnosis() -> None:
    for _, resources in records(400):
        diabetic = has_condition(resources, "type2_diabetes") or has_condition(
            resources, "type1_diabetes"
        )
        drugs = {
            code_of(m["medicationCodeableConcept"]) for m in by_type(resources, "MedicationRequest")
        }
        if not diabetic:
            assert not drugs & {codes()[d] for d in DIABETES_DRUGS}
            assert all(o["valueQuantity"]["value"] < 48 for o in observations(resources, "hba1c"))


def test_hypertensives_have_blood_pressure_at_least_yearly() -> None:
    hypertensives = 0
    for summary, resources in records(400):
        if not has_condition(resources, "hypertension"):
            continue
        hypertensives += 1
        readings = observations(resources, "blood_pressure")
        assert readings
        (condition,) = [
            c
            for c in by_type(resources, "Condition")
            if code_of(c["code"]) == codes()["hypertension"]
        ]
        onset = date.fromisoformat(condition["onsetDateTime"])
        start = max(summary.registration_date, HISTORY_START, onset)
        years = ((summary.death_date or AS_OF) - start).days / 365.25
        assert len(readings) >= int(years) - 1
        for reading in readings:
            systolic, diastolic = (c["valueQuantity"] for c in reading["component"])
            assert systolic["code"] == diastolic["code"] == "mm[Hg]"
            assert 45 <= diastolic["value"] < systolic["value"] <= 220
    assert hypertensives >= 30


def test_bmi_agrees_with_obesity_and_egfr_with_ckd() -> None:
    for _, resources in records(400):
        bmis = [o["valueQuantity"]["value"] for o in observations(resources, "bmi")]
        if has_condition(resources, "obesity"):
            assert all(b >= 30 for b in bmis)
        else:
            assert all(b < 30 for b in bmis)
        egfrs = observations(resources, "egfr")
        if has_condition(resources, "ckd"):
            assert egfrs
            assert all(o["valueQuantity"]["value"] < 60 for o in egfrs)
        else:
            assert all(o["valueQuantity"]["value"] >= 60 for o in egfrs)


def test_units_are_ucum() -> None:
    expected = {
        "hba1c": "mmol/mol",
        "bmi": "kg/m2",
        "body_weight": "kg",
        "body_height": "cm",
        "total_cholesterol": "mmol/L",
        "egfr": "mL/min/{1.73_m2}",
        "serum_creatinine": "umol/L",
        "peak_flow": "L/min",
    }
    seen: Counter[str] = Counter()
    for _, resources in records(200):
        for key, unit in expected.items():
            for o in observations(resources, key):
                assert o["valueQuantity"]["system"] == "http://unitsofmeasure.org"
                assert o["valueQuantity"]["code"] == unit
                seen[key] += 1
    assert set(seen) == set(expected)


def test_repeat_templates_and_issues() -> None:
    issued = 0
    for summary, resources in records(300):
        requests = by_type(resources, "MedicationRequest")
        templates = {m["id"]: m for m in requests if "extension" in m}
        for template in templates.values():
            assert template["intent"] == "order"
            assert template["courseOfTherapyType"]["coding"][0]["code"] == "continuous"
            assert template["dosageInstruction"][0]["text"]
            assert template["dispenseRequest"]["quantity"]["value"] > 0
            assert template["reasonReference"][0]["reference"].startswith("Condition/")
        count: Counter[str] = Counter()
        for issue in (m for m in requests if "basedOn" in m):
            template = templates[issue["basedOn"][0]["reference"].split("/")[1]]
            assert issue["medicationCodeableConcept"] == template["medicationCodeableConcept"]
            assert issue["authoredOn"][:10] >= template["authoredOn"][:10]
            last = (summary.death_date or AS_OF).toordinal()
            assert last - date.fromisoformat(issue["authoredOn"][:10]).toordinal() <= 366
            count[template["id"]] += 1
            issued += 1
        for template in templates.values():
            repeat = template["extension"][0]["extension"][0]
            assert repeat == {
                "url": "numberOfPrescriptionsIssued",
                "valueUnsignedInt": count[template["id"]],
            }
        acute = [m for m in requests if m["courseOfTherapyType"]["coding"][0]["code"] == "acute"]
        assert all("encounter" in m for m in acute)
    assert issued > 0


def test_entries_made_in_consultations_point_at_them() -> None:
    for _, resources in records(100):
        encounters = {e["id"]: e for e in by_type(resources, "Encounter")}
        for resource in resources:
            encounter = resource.get("encounter")
            if encounter is None:
                continue
            visit = encounters[encounter["reference"].split("/")[1]]
            when = (
                resource.get("effectiveDateTime")
                or resource.get("recordedDate")
                or (resource.get("authoredOn") or resource.get("occurrenceDateTime"))
            )
            assert when == visit["period"]["start"]


def test_encounter_classes_match_their_types() -> None:
    classes = {
        "consultation_face_to_face": "AMB",
        "telephone_consultation": "VR",
        "video_consultation": "VR",
        "home_visit": "HH",
    }
    by_code = {codes()[k]: v for k, v in classes.items()}
    seen: Counter[str] = Counter()
    for _, resources in records(300):
        for encounter in by_type(resources, "Encounter"):
            code = by_code[code_of(encounter["type"][0])]
            assert encounter["class"]["code"] == code
            seen[code] += 1
            assert encounter["participant"][0]["individual"]["reference"].startswith(
                "PractitionerRole/"
            )
    assert set(seen) == {"AMB", "VR", "HH"}


def test_childhood_immunisations_at_the_right_ages() -> None:
    schedule = {
        "dtap_ipv_hib_hepb_vaccine": (56, 200),
        "rotavirus_vaccine": (56, 160),
        "mmr_vaccine": (365, 1400),
        "hib_menc_vaccine": (365, 460),
    }
    by_code = {codes()[k]: v for k, v in schedule.items()}
    checked = 0
    for summary, resources in records(400):
        for immunization in by_type(resources, "Immunization"):
            ages = by_code.get(code_of(immunization["vaccineCode"]))
            if ages is None:
                continue
            given = date.fromisoformat(immunization["occurrenceDateTime"][:10])
            assert ages[0] <= (given - summary.birth_date).days <= ages[1]
            checked += 1
    assert checked > 0


def test_flu_vaccines_in_autumn_for_the_eligible() -> None:
    flu = codes()["influenza_vaccine"]
    given = 0
    for summary, resources in records(300):
        for immunization in by_type(resources, "Immunization"):
            if code_of(immunization["vaccineCode"]) != flu:
                continue
            day = date.fromisoformat(immunization["occurrenceDateTime"][:10])
            assert day.month in (9, 10, 11, 12, 1)
            age = age_on(summary.birth_date, day)
            assert age >= 18 or age in (2, 3)
            given += 1
    assert given > 0


def test_documents_are_short_plain_text() -> None:
    import base64

    seen: Counter[str] = Counter()
    for _, resources in records(200):
        for document in by_type(resources, "DocumentReference"):
            attachment = document["content"][0]["attachment"]
            assert attachment["contentType"] == "text/plain"
            text = base64.b64decode(attachment["data"]).decode()
            assert "NHS number 999" in text
            assert len(text) < 1000
            seen[code_of(document["type"])] += 1
    assert set(seen) == {
        codes()["discharge_summary"],
        codes()["outpatient_letter"],
        codes()["pathology_report"],
    }


def test_volume_per_patient_is_sane() -> None:
    counts: Counter[str] = Counter()
    patients = 300
    for _, resources in records(patients):
        counts.update(r["resourceType"] for r in resources)
    per_patient = sum(counts.values()) / patients
    assert 35 <= per_patient <= 130
    assert counts["Encounter"] / patients >= 10


# --- prevalence -------------------------------------------------------------------------


def test_prevalence_lands_near_england_targets() -> None:
    """Over 3,000 patients, each register (the living of its ages on as_of) is within 30%
    of its target or 1 percentage point, whichever is wider."""
    summaries = [patient_summary(CONFIG, i, PRACTICE) for i in range(3000)]
    living = [s for s in summaries if s.death_date is None]
    have: Counter[str] = Counter()
    denominators: Counter[str] = Counter()
    for summary in living:
        age = age_on(summary.birth_date, AS_OF)
        conditions = conditions_of(CONFIG, summary)
        for key, prevalence in PREVALENCE.items():
            if age >= prevalence.min_age:
                denominators[key] += 1
                have[key] += key in conditions
    for key, prevalence in PREVALENCE.items():
        achieved = have[key] / denominators[key]
        tolerance = max(0.3 * prevalence.target, 0.01)
        assert abs(achieved - prevalence.target) <= tolerance, (key, achieved, prevalence.target)


def test_records_carry_the_conditions_drawn() -> None:
    for summary, resources in records(100):
        drawn = conditions_of(CONFIG, summary)
        recorded = {code_of(c["code"]) for c in by_type(resources, "Condition")}
        assert recorded == {codes()[k] for k in drawn}
        for condition in by_type(resources, "Condition"):
            assert condition["recordedDate"][:10] >= summary.registration_date.isoformat()


def test_diabetes_types_are_exclusive() -> None:
    for i in range(2000):
        drawn = conditions_of(CONFIG, patient_summary(CONFIG, i, PRACTICE))
        assert not ("type1_diabetes" in drawn and "type2_diabetes" in drawn)
