"""Index rows of resources (search/extract.py) and the expression compiler (search/fhirpath.py)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import fhirpathpy
import pytest

from opengp.fhir.definitions import RESOURCE_TYPES
from opengp.search import fhirpath
from opengp.search.extract import CONVERTED, SKIPPED, index_rows, problems
from opengp.search.fhirpath import (
    Item,
    compile_expression,
    fallback_reason,
    reference_type,
    rewrite,
    selected_types,
)
from opengp.search.model import (
    DateRow,
    IndexRow,
    NumberRow,
    QuantityRow,
    ReferenceRow,
    StringRow,
    TokenRow,
    UriRow,
)
from opengp.search.ranges import MAX_INSTANT
from opengp.search.registry import params_for
from tests.fhir_packages import package_dir

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
NHS = "https://fhir.nhs.uk/Id/nhs-number"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def mm_hg(value: int) -> dict[str, Any]:
    return {"value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}


def blood_pressure() -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "bp",
        "meta": {"lastUpdated": "2024-03-01T10:00:00Z"},
        "status": "final",
        "category": [{"coding": [{"system": "http://x/cat", "code": "vital-signs"}]}],
        "code": {
            "coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"}],
            "text": "Blood pressure",
        },
        "subject": {"reference": "Patient/123"},
        "encounter": {"reference": "Encounter/5/_history/2"},
        "performer": [{"reference": "https://example.org/fhir/Practitioner/9"}],
        "effectiveDateTime": "2024-03-01T09:30:00Z",
        "component": [
            {
                "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                "valueQuantity": mm_hg(120),
            },
            {
                "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                "valueQuantity": mm_hg(80),
            },
        ],
    }


def rows_of(resource: dict[str, Any], param: str) -> list[IndexRow]:
    return [row for row in index_rows(resource) if row.param == param]


def quantity(param: str, value: int, low: str, high: str) -> QuantityRow:
    return QuantityRow(param, Decimal(value), Decimal(low), Decimal(high), UCUM, "mm[Hg]", "mmhg")


def test_blood_pressure_observation() -> None:
    rows = index_rows(blood_pressure())
    assert len(rows) == len(set(rows))
    expected = [
        TokenRow("status", "http://hl7.org/fhir/observation-status", "final", None),
        TokenRow("category", "http://x/cat", "vital-signs", None),
        # The concept's text is the text of each of its codings (for :text) ...
        TokenRow("code", LOINC, "85354-9", "blood pressure"),
        # ... and the display it hides gets a text-only row.
        TokenRow("code", None, None, "blood pressure panel"),
        TokenRow("component-code", LOINC, "8480-6", None),
        quantity("component-value-quantity", 120, "119.5", "120.5"),
        quantity("combo-value-quantity", 80, "79.5", "80.5"),
        DateRow("date", utc(2024, 3, 1, 9, 30), utc(2024, 3, 1, 9, 30, 1)),
        ReferenceRow("subject", "Patient", "123", None),
        ReferenceRow("patient", "Patient", "123", None),
        ReferenceRow("encounter", "Encounter", "5", None),  # history dropped
        ReferenceRow("performer", None, None, "https://example.org/fhir/Practitioner/9"),
    ]
    for row in expected:
        assert row in rows
    # _id and _lastUpdated are columns of the resource table, not rows.
    assert not {"_id", "_lastUpdated"} & {row.param for row in rows}
    # No value: no value-quantity row.
    assert not [row for row in rows if row.param == "value-quantity"]


def test_composite_pairs_values_from_the_same_component() -> None:
    rows = index_rows(blood_pressure())
    for key in (f"{LOINC}|8480-6", "*|8480-6"):
        param = f"component-code-value-quantity${key}"
        assert [row for row in rows if row.param == param] == [
            quantity(param, 120, "119.5", "120.5")
        ]
    combo = [row for row in rows if row.param == "combo-code-value-quantity$|8462-4"]
    assert combo == []  # LOINC codes have a system: no "no system" key
    combo = [row for row in rows if row.param == "combo-code-value-quantity$*|8462-4"]
    assert combo == [quantity("combo-code-value-quantity$*|8462-4", 80, "79.5", "80.5")]


def test_composite_of_a_code_without_system_and_a_string() -> None:
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"code": "smoking"}]},
        "valueString": "Never smoked",
    }
    rows = index_rows(observation)
    for key in ("|smoking", "*|smoking"):
        param = f"code-value-string${key}"
        assert rows_of(observation, param) == [StringRow(param, "never smoked", "Never smoked")]
    assert StringRow("value-string", "never smoked", "Never smoked") in rows


def patient(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": "p", **elements}


@pytest.mark.parametrize(
    ("birth_date", "low", "high"),
    [
        # A date has no zone: the day in England, so BST days start at 23:00 UTC.
        ("1990-07-01", utc(1990, 6, 30, 23), utc(1990, 7, 1, 23)),
        ("1990-01-15", utc(1990, 1, 15), utc(1990, 1, 16)),
        ("1990", utc(1990, 1, 1), utc(1991, 1, 1)),
    ],
)
def test_birth_date_is_the_london_day(birth_date: str, low: datetime, high: datetime) -> None:
    assert rows_of(patient(birthDate=birth_date), "birthdate") == [DateRow("birthdate", low, high)]


def test_human_name_gives_a_row_per_part() -> None:
    name = {"family": "Šimůnek", "given": ["Jane", "Ann"], "prefix": ["Mrs"], "text": "Jane"}
    found = patient(name=[name])
    assert rows_of(found, "family") == [StringRow("family", "simunek", "Šimůnek")]
    assert rows_of(found, "given") == [
        StringRow("given", "jane", "Jane"),
        StringRow("given", "ann", "Ann"),
    ]
    assert rows_of(found, "name") == [
        StringRow("name", "simunek", "Šimůnek"),
        StringRow("name", "jane", "Jane"),  # given and text, once
        StringRow("name", "ann", "Ann"),
        StringRow("name", "mrs", "Mrs"),
    ]


def test_address_gives_a_row_per_part() -> None:
    address = {"line": ["1 High St", "Flat 2"], "city": "Leeds", "postalCode": "LS1 1AA"}
    found = patient(address=[address])
    assert rows_of(found, "address") == [
        StringRow("address", "1 high st", "1 High St"),
        StringRow("address", "flat 2", "Flat 2"),
        StringRow("address", "leeds", "Leeds"),
        StringRow("address", "ls1 1aa", "LS1 1AA"),
    ]
    assert rows_of(found, "address-postalcode") == [
        StringRow("address-postalcode", "ls1 1aa", "LS1 1AA")
    ]


def test_identifiers_and_of_type() -> None:
    medical_record = {
        "system": "urn:x",
        "value": "123",
        "type": {"coding": [{"system": V2_0203, "code": "MR"}], "text": "Medical  Record"},
    }
    found = patient(identifier=[{"system": NHS, "value": "9000000009"}, medical_record])
    assert rows_of(found, "identifier") == [
        TokenRow("identifier", NHS, "9000000009", None),
        TokenRow("identifier", "urn:x", "123", "medical record"),
    ]
    assert rows_of(found, "identifier:of-type") == [
        TokenRow("identifier:of-type", V2_0203, "MR|123", None)
    ]


def test_telecom_filters_by_system() -> None:
    telecom = [
        {"system": "phone", "value": "01234 567890"},
        {"system": "email", "value": "jane@example.org"},
    ]
    found = patient(telecom=telecom)
    assert rows_of(found, "phone") == [TokenRow("phone", None, "01234 567890", None)]
    assert rows_of(found, "email") == [TokenRow("email", None, "jane@example.org", None)]
    assert len(rows_of(found, "telecom")) == 2


def test_deceased_is_evaluated_by_fhirpathpy() -> None:
    assert fallback_reason(params_for("Patient")["deceased"].expression or "", "Patient")
    assert rows_of(patient(), "deceased") == [TokenRow("deceased", None, "false", None)]
    dead = patient(deceasedDateTime="2020-02-03")
    assert rows_of(dead, "deceased") == [TokenRow("deceased", None, "true", None)]
    assert rows_of(dead, "death-date") == [DateRow("death-date", utc(2020, 2, 3), utc(2020, 2, 4))]
    alive = patient(deceasedBoolean=False)
    assert rows_of(alive, "deceased") == [TokenRow("deceased", None, "false", None)]


def test_meta_parameters() -> None:
    profile = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"
    source = "urn:uuid:0f5b2d4c-9e0e-4a3f-8f8a-3c3c3c3c3c3c"
    meta = {
        "lastUpdated": "2024-01-01T00:00:00Z",
        "profile": [profile],
        "tag": [{"system": "urn:t", "code": "demo", "display": "Demo"}],
        "security": [{"system": "urn:s", "code": "R"}],
        "source": source,
    }
    rows = index_rows(patient(meta=meta))
    assert UriRow("_profile", profile) in rows
    assert TokenRow("_tag", "urn:t", "demo", "demo") in rows
    assert TokenRow("_security", "urn:s", "R", None) in rows
    assert UriRow("_source", source) in rows


def test_codeable_concept_with_text_only() -> None:
    condition = {
        "resourceType": "Condition",
        "subject": {"reference": "Patient/1"},
        "code": {"text": "Back  pain"},
    }
    assert rows_of(condition, "code") == [TokenRow("code", None, None, "back pain")]


def test_period_with_an_open_end() -> None:
    encounter = {
        "resourceType": "Encounter",
        "status": "in-progress",
        "class": {"code": "AMB"},
        "period": {"start": "2024-03-01T09:00:00+00:00"},
    }
    assert rows_of(encounter, "date") == [DateRow("date", utc(2024, 3, 1, 9), MAX_INSTANT)]


def test_timing_events() -> None:
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "effectiveTiming": {"event": ["2024-03-01", "2024-03-02"]},
    }
    assert rows_of(observation, "date") == [
        DateRow("date", utc(2024, 3, 1), utc(2024, 3, 2)),
        DateRow("date", utc(2024, 3, 2), utc(2024, 3, 3)),
    ]


def test_references_by_identifier_contained_and_canonical() -> None:
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"identifier": {"system": NHS, "value": "9000000009"}},
        "performer": [{"reference": "#p1"}],
    }
    assert rows_of(observation, "subject") == []
    assert rows_of(observation, "subject:identifier") == [
        TokenRow("subject:identifier", NHS, "9000000009", None)
    ]
    assert rows_of(observation, "performer") == []
    response = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "questionnaire": "https://example.org/Questionnaire/phq9|2.0",
    }
    assert rows_of(response, "questionnaire") == [
        ReferenceRow("questionnaire", None, None, "https://example.org/Questionnaire/phq9", "2.0")
    ]


def test_money_and_numbers() -> None:
    invoice = {
        "resourceType": "Invoice",
        "status": "issued",
        "totalGross": {"value": Decimal("10.50"), "currency": "GBP"},
    }
    assert rows_of(invoice, "totalgross") == [
        QuantityRow(
            "totalgross",
            Decimal("10.50"),
            Decimal("10.495"),
            Decimal("10.505"),
            "urn:iso:std:iso:4217",
            "GBP",
            None,
        )
    ]
    risk = {
        "resourceType": "RiskAssessment",
        "status": "final",
        "subject": {"reference": "Patient/1"},
        "prediction": [{"probabilityDecimal": Decimal("0.25")}, {"probabilityRange": {}}],
    }
    assert rows_of(risk, "probability") == [
        NumberRow("probability", Decimal("0.25"), Decimal("0.245"), Decimal("0.255"))
    ]


def test_uri() -> None:
    value_set = {"resourceType": "ValueSet", "status": "active", "url": "https://x.org/vs"}
    assert rows_of(value_set, "url") == [UriRow("url", "https://x.org/vs")]


# --- the compiler ------------------------------------------------------------------------


def test_rewrite_reads_as_as_of_type() -> None:
    assert rewrite("(Observation.value as Quantity) | (A.b as CodeableConcept).text") == (
        "Observation.value.ofType(Quantity) | A.b.ofType(CodeableConcept).text"
    )
    assert rewrite("value.as(DateTime)") == "value.ofType(dateTime)"


@pytest.mark.parametrize(
    ("reference", "type_"),
    [
        ("Patient/1", "Patient"),
        ("Patient/1/_history/2", "Patient"),
        ("https://x.org/fhir/Practitioner/a.b", "Practitioner"),
        ("#p1", None),
        ("urn:uuid:0f5b2d4c-9e0e-4a3f-8f8a-3c3c3c3c3c3c", None),
        (None, None),
    ],
)
def test_reference_type(reference: str | None, type_: str | None) -> None:
    assert reference_type(reference) == type_


def test_choice_elements_are_typed_by_their_json_name() -> None:
    observation = blood_pressure() | {"valuePeriod": {"start": "2024"}}
    select = compile_expression("Observation.value | Observation.effective", "Observation")
    assert select([(observation, "Observation")], observation) == [
        ({"start": "2024"}, "Period"),
        ("2024-03-01T09:30:00Z", "dateTime"),
    ]
    assert selected_types("(Condition.onset as Quantity)", "Condition") == {"Age"}


def test_every_expression_of_the_stored_types_is_evaluable() -> None:
    by_fhirpathpy = {}
    for resource_type in sorted(RESOURCE_TYPES):
        assert problems(resource_type) == {}
        for code, param in params_for(resource_type).items():
            if param.expression is None:
                continue
            reason = fallback_reason(param.expression, resource_type)
            if reason is not None:
                by_fhirpathpy[(resource_type, code)] = reason
                continue
            focus_types = selected_types(param.expression, resource_type)
            kinds = [(param.type, focus_types)]
            if param.type == "composite":
                kinds = [
                    (c.type, selected_types(c.expression, resource_type, focus))
                    for c in param.components
                    for focus in focus_types
                ]
            # Every type selected is either turned into rows or knowingly skipped.
            for kind, types in kinds:
                if kind in CONVERTED:
                    # A resource (e.g. Bundle.entry[0].resource) counts as "Resource".
                    named = {"Resource" if t in RESOURCE_TYPES else t for t in types}
                    unknown = named - CONVERTED[kind] - SKIPPED[kind]
                    assert not unknown, (resource_type, code, kind, unknown)
    assert list(by_fhirpathpy) == [("Patient", "deceased")]


# --- the official examples ------------------------------------------------------------------

EXAMPLES = package_dir("hl7.fhir.r4.examples")
_R4 = fhirpath._R4


def _canonical(items: list[Item | None]) -> Counter[tuple[str, str]]:
    return Counter((json.dumps(i[0], sort_keys=True, default=str), i[1]) for i in items if i)


def _by_fhirpathpy(expression: str, resource: dict[str, Any]) -> list[Item | None]:
    """fhirpathpy's reading of the original expression, a `|` branch at a time (it loses the
    types of a union's items); with the rewrites only where the original fails (`as` on
    several items) and the resource's own type for `Resource.`, which fhirpathpy needs."""
    found: list[Item | None] = []
    for branch in fhirpath.split_top_level(expression, "|"):
        if branch.startswith("Resource."):
            branch = resource["resourceType"] + branch[8:]
        try:
            results = fhirpathpy.evaluate(resource, branch, model=_R4, options=fhirpath._OPTIONS)
        except Exception:
            rewritten = rewrite(branch)
            results = fhirpathpy.evaluate(resource, rewritten, model=_R4, options=fhirpath._OPTIONS)
        found += [fhirpath._typed(result) for result in results]
    return found


def _examples() -> list[dict[str, Any]]:
    assert EXAMPLES is not None
    found = []
    for path in sorted(EXAMPLES.glob("*.json")):
        resource = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
        if isinstance(resource, dict) and resource.get("resourceType") in RESOURCE_TYPES:
            found.append(resource)
    return found


@pytest.mark.skipif(EXAMPLES is None, reason="R4 package not unpacked (see the generator)")
def test_official_examples_index_and_agree_with_fhirpathpy() -> None:
    examples = _examples()
    assert len(examples) > 5000
    compared = 0
    for index, resource in enumerate(examples):
        rows = index_rows(resource)
        assert len(rows) == len(set(rows))
        resource_type = resource["resourceType"]
        # Compare every compiled expression on a sample: every example of the GP types, and
        # every 25th of the rest (large conformance resources, most of the package).
        if resource_type not in GP_TYPES and index % 25:
            continue
        for param in params_for(resource_type).values():
            expression = param.expression
            if (
                param.code == "_id"
                or expression is None
                or fallback_reason(expression, resource_type)
            ):
                continue
            ours = compile_expression(expression, resource_type)
            found = ours([(resource, resource_type)], resource)
            expected = _by_fhirpathpy(expression, resource)
            assert _canonical(list(found)) == _canonical(expected), (resource.get("id"), expression)
            compared += 1
    assert compared > 8000


GP_TYPES = frozenset(
    {
        "AllergyIntolerance",
        "Appointment",
        "Condition",
        "Encounter",
        "Immunization",
        "MedicationRequest",
        "MedicationStatement",
        "Observation",
        "Organization",
        "Patient",
        "Practitioner",
        "PractitionerRole",
        "Procedure",
        "Schedule",
        "Slot",
    }
)
