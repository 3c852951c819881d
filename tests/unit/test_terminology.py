"""The terminology starter set (src/opengp/terminology/starter.csv) and SCTID checks."""

from __future__ import annotations

import csv

import pytest

from opengp.terminology import DMD, SNOMED, STARTER, Concept, concept, of_kind, starter_set
from opengp.terminology.snomed import is_concept_id, is_valid_sctid, partition, verhoeff_valid

SLOT_CATEGORY = (
    "https://www.england.nhs.uk/long-read/recording-gp-appointments-consolidated-guidance/"
)
DELIVERY_CHANNEL = "https://fhir.hl7.org.uk/CodeSystem/UKCore-DeliveryChannel"
SDS_JOB_ROLE = "https://fhir.hl7.org.uk/CodeSystem/UKCore-SDSJobRoleName"

REQUIRED: dict[str, set[str]] = {
    "condition": {
        "hypertension",
        "type2_diabetes",
        "type1_diabetes",
        "asthma",
        "copd",
        "ckd",
        "atrial_fibrillation",
        "coronary_heart_disease",
        "heart_failure",
        "stroke",
        "depression",
        "anxiety",
        "dementia",
        "hypothyroidism",
        "osteoarthritis",
        "obesity",
    },
    "observable": {
        "systolic_bp",
        "diastolic_bp",
        "blood_pressure",
        "hba1c",
        "bmi",
        "body_weight",
        "body_height",
        "total_cholesterol",
        "egfr",
        "serum_creatinine",
        "smoking_status",
        "peak_flow",
    },
    "finding": {"never_smoked", "ex_smoker", "current_smoker", "no_known_allergy"},
    "medication": {
        "amlodipine_5mg_tablets",
        "ramipril_5mg_capsules",
        "indapamide_2_5mg_tablets",
        "metformin_500mg_tablets",
        "gliclazide_80mg_tablets",
        "insulin_glargine_100u_per_ml_pen",
        "salbutamol_100mcg_inhaler",
        "beclometasone_100mcg_inhaler",
        "tiotropium_inhaler",
        "atorvastatin_20mg_tablets",
        "apixaban_5mg_tablets",
        "bisoprolol_2_5mg_tablets",
        "aspirin_75mg_dispersible_tablets",
        "clopidogrel_75mg_tablets",
        "furosemide_40mg_tablets",
        "sertraline_50mg_tablets",
        "citalopram_20mg_tablets",
        "donepezil_10mg_tablets",
        "levothyroxine_50mcg_tablets",
        "paracetamol_500mg_tablets",
    },
    "allergen": {"penicillin", "peanut", "aspirin_substance", "latex"},
    "reaction": {"rash", "anaphylaxis", "urticaria", "wheeze"},
    "vaccine": {
        "influenza_vaccine",
        "dtap_ipv_hib_hepb_vaccine",
        "menb_vaccine",
        "pneumococcal_conjugate_vaccine",
        "rotavirus_vaccine",
        "mmr_vaccine",
        "hib_menc_vaccine",
        "dtap_ipv_vaccine",
        "td_ipv_vaccine",
        "menacwy_vaccine",
        "hpv_vaccine",
        "pneumococcal_polysaccharide_vaccine",
        "shingles_vaccine",
    },
    "encounter": {
        "consultation_face_to_face",
        "telephone_consultation",
        "video_consultation",
        "home_visit",
    },
    "referral": {
        "referral_cardiology",
        "referral_diabetology",
        "referral_physiotherapy",
        "referral_dermatology",
        "referral_mental_health",
        "referral_respiratory",
    },
    "document": {"discharge_summary", "outpatient_letter", "pathology_report"},
    "slot-category": {
        "slot_general_consultation_routine",
        "slot_general_consultation_acute",
        "slot_clinical_triage",
        "slot_planned_clinics",
        "slot_planned_clinical_procedure",
        "slot_unplanned_clinical_activity",
        "slot_home_visit",
        "slot_care_home_visit",
        "slot_structured_medication_review",
        "slot_group_consultation",
        "slot_walk_in",
        "slot_social_prescribing",
    },
    "delivery-channel": {"channel_in_person", "channel_telephone", "channel_video"},
    "sds-role": {
        "sds_R8000",
        "sds_R8001",
        "sds_R8003",
        "sds_R8006",
        "sds_R8008",
        "sds_R8009",
        "sds_R8015",
        "sds_R0001",
    },
}

# The code system each kind must use.
SYSTEM_OF_KIND = {
    "condition": SNOMED,
    "observable": SNOMED,
    "finding": SNOMED,
    "medication": DMD,
    "allergen": SNOMED,
    "reaction": SNOMED,
    "vaccine": DMD,
    "encounter": SNOMED,
    "referral": SNOMED,
    "document": SNOMED,
    "slot-category": SLOT_CATEGORY,
    "delivery-channel": DELIVERY_CHANNEL,
    "sds-role": SDS_JOB_ROLE,
}


def _rows() -> list[dict[str, str]]:
    with STARTER.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_csv_has_the_expected_columns_and_no_blank_fields() -> None:
    rows = _rows()
    assert rows
    assert list(rows[0]) == ["key", "kind", "system", "code", "display"]
    for row in rows:
        assert None not in row, row  # no surplus (unquoted comma) fields
        assert all(value and value == value.strip() for value in row.values()), row


def test_keys_are_unique() -> None:
    keys = [row["key"] for row in _rows()]
    assert len(keys) == len(set(keys))


def test_rows_are_sorted_by_kind_then_key() -> None:
    order = [(row["kind"], row["key"]) for row in _rows()]
    assert order == sorted(order)


@pytest.mark.parametrize("kind", sorted(REQUIRED))
def test_every_required_key_is_present_with_its_kind(kind: str) -> None:
    present = {c.key for c in of_kind(kind)}
    assert REQUIRED[kind] <= present, sorted(REQUIRED[kind] - present)


def test_every_kind_is_known_and_uses_its_code_system() -> None:
    for item in starter_set().values():
        assert item.kind in SYSTEM_OF_KIND, item
        assert item.system == SYSTEM_OF_KIND[item.kind], item


@pytest.mark.parametrize(
    "item",
    [c for c in starter_set().values() if c.system in (SNOMED, DMD)],
    ids=lambda c: c.key,
)
def test_snomed_and_dmd_codes_are_valid_concept_sctids(item: Concept) -> None:
    assert is_valid_sctid(item.code), item
    assert is_concept_id(item.code), item
    assert partition(item.code) in {"00", "10"}


def test_dmd_codes_are_long_format_or_legacy_international_ids() -> None:
    # dm+d ids are SCTIDs from the UK drug extension (long format, partition 10) or, for older
    # products, International-release ids (short format, partition 00).
    for item in starter_set().values():
        if item.system == DMD:
            assert partition(item.code) in {"00", "10"}, item


def test_no_code_has_two_different_displays() -> None:
    seen: dict[tuple[str, str], str] = {}
    for item in starter_set().values():
        previous = seen.setdefault((item.system, item.code), item.display)
        assert previous == item.display, item


def test_no_code_is_reused_for_two_keys() -> None:
    codes = [(c.system, c.code) for c in starter_set().values()]
    assert len(codes) == len(set(codes))


def test_delivery_channel_and_sds_codes() -> None:
    assert {c.code for c in of_kind("delivery-channel")} == {"In-person", "Telephone", "Video"}
    for item in of_kind("sds-role"):
        assert item.key == f"sds_{item.code}"
    assert concept("sds_R8000").display == "Clinical Practitioner Access Role"
    assert concept("sds_R0001").display == "Privacy Officer"


def test_slot_categories_use_their_official_names_as_code() -> None:
    for item in of_kind("slot-category"):
        assert item.code == item.display
        assert item.key.startswith("slot_")


def test_concept_coding_shape() -> None:
    coding = concept("hypertension").coding()
    assert coding == {
        "system": "http://snomed.info/sct",
        "code": "38341003",
        "display": "Hypertensive disorder, systemic arterial",
    }
    assert concept("hypertension").codeable() == {
        "coding": [coding],
        "text": "Hypertensive disorder, systemic arterial",
    }


def test_unknown_key_raises_key_error() -> None:
    with pytest.raises(KeyError, match="not in the terminology starter set"):
        concept("no_such_concept")


@pytest.mark.parametrize(
    "code",
    [
        "38341003",  # Hypertensive disorder, systemic arterial (International, concept)
        "999791000000106",  # HbA1c IFCC (UK extension, concept)
        "42206511000001102",  # Apixaban 5mg tablets (UK drug extension, concept)
        "100005",  # smallest well-formed id
    ],
)
def test_is_valid_sctid_accepts_well_formed_ids(code: str) -> None:
    assert is_valid_sctid(code)


@pytest.mark.parametrize(
    "code",
    [
        "38341004",  # wrong check digit
        "42206511000001103",  # wrong check digit
        "038341003",  # leading zero
        "12345",  # too short
        "1234567890123456789",  # too long
        "3834100A",  # not digits
        "",
        "٣٨٣٤١٠٠٣",  # non-ASCII digits
    ],
)
def test_is_valid_sctid_rejects_malformed_ids(code: str) -> None:
    assert not is_valid_sctid(code)


def test_description_ids_are_sctids_but_not_concept_ids() -> None:
    # 37443015 is a description id (partition 01) used in NHS examples for "Heart attack".
    assert verhoeff_valid("37443015")
    assert is_valid_sctid("37443015")
    assert not is_concept_id("37443015")
