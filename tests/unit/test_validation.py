"""validate_resource: R4 JSON, structure, datatypes, required bindings, references, UK Core."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from opengp.fhir.definitions import EXCLUDED_RESOURCE_TYPES
from opengp.fhir.errors import InvalidResource
from opengp.fhir.validation import MAX_ISSUES, validate_resource
from tests.fhir_packages import package_dir

FIXTURES = Path(__file__).parent / "fixtures" / "r4-examples"
VALID_FIXTURES = sorted(
    p.name for p in FIXTURES.glob("*.json") if p.name != "Questionnaire-qs1.json"
)
NHS = "https://fhir.nhs.uk/Id/nhs-number"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


def rejection(resource: dict[str, Any]) -> InvalidResource:
    with pytest.raises(InvalidResource) as caught:
        validate_resource(resource)
    return caught.value


def expressions(error: InvalidResource) -> list[str]:
    return [e for issue in error.issues for e in issue.expression]


def patient(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", **elements}


def observation(**elements: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "weight"},
        **elements,
    }


# --- official examples ------------------------------------------------------------------


@pytest.mark.parametrize("name", VALID_FIXTURES)
def test_official_examples_are_valid(name: str) -> None:
    resource = load(name)
    before = copy.deepcopy(resource)
    validate_resource(resource)
    assert resource == before  # validation never changes its input


def test_primitive_extension_in_extension_is_accepted() -> None:
    # CodeSystem-v2-0061 has `_valueString` inside an Extension (valid R4).
    resource = load("CodeSystem-v2-0061.json")
    assert "_valueString" in json.dumps(resource)
    validate_resource(resource)


def test_questionnaire_items_without_link_id_are_rejected() -> None:
    error = rejection(load("Questionnaire-qs1.json"))
    assert error.status == 400
    assert "Questionnaire.item[0].item[0].linkId" in expressions(error)
    assert all(e.endswith(".linkId") for e in expressions(error))


# --- structure and datatypes ------------------------------------------------------------


def test_datatype_error_names_the_element() -> None:
    error = rejection(patient(birthDate="1980-13-45"))
    assert error.status == 400
    assert expressions(error) == ["Patient.birthDate"]
    assert error.issues[0].code == "value"


def test_unknown_element_is_rejected() -> None:
    error = rejection(patient(foo=1, name=[{"family": "Smith", "nickname": "Smithy"}]))
    assert error.status == 400
    assert expressions(error) == ["Patient.foo", "Patient.name[0].nickname"]
    assert {i.code for i in error.issues} == {"structure"}


def test_r4b_only_elements_are_rejected() -> None:
    # Extension.valueCodeableReference exists in R4B, not R4.
    extension = {
        "url": "http://example.org/x",
        "valueCodeableReference": {"concept": {"text": "x"}},
    }
    error = rejection(patient(extension=[extension]))
    assert expressions(error) == ["Patient.extension[0].valueCodeableReference"]


def test_missing_required_element() -> None:
    resource = observation()
    del resource["status"]
    error = rejection(resource)
    assert error.status == 400
    assert expressions(error) == ["Observation.status"]
    assert error.issues[0].code == "required"


def test_cardinality() -> None:
    error = rejection(patient(name={"family": "Smith"}, gender=["male"]))
    assert expressions(error) == ["Patient.name", "Patient.gender"]
    error = rejection(patient(name=[{"given": "Jo"}]))
    assert expressions(error) == ["Patient.name[0].given"]
    assert "array" in error.issues[0].diagnostics  # from the walk, not the model


def test_two_values_for_one_choice_element() -> None:
    error = rejection(patient(deceasedBoolean=True, deceasedDateTime="2020-01-01"))
    assert error.status == 400
    assert expressions(error) == ["Patient.deceased"]
    assert error.issues[0].code == "structure"
    assert "deceasedBoolean, deceasedDateTime" in error.issues[0].diagnostics


@pytest.mark.parametrize(
    ("resource", "expression"),
    [
        (patient(name=[{"family": ""}]), "Patient.name[0].family"),
        (patient(id=""), "Patient.id"),
        (patient(name=[{"given": ["Jo", ""]}]), "Patient.name[0].given[1]"),
    ],
)
def test_empty_strings_are_rejected(resource: dict[str, Any], expression: str) -> None:
    # http://hl7.org/fhir/R4/json.html: "string property values can never be empty"
    error = rejection(resource)
    assert error.status == 400
    assert expressions(error) == [expression]


@pytest.mark.parametrize(
    ("resource", "expression"),
    [
        (patient(active=None), "Patient.active"),
        (patient(name=[]), "Patient.name"),
        (patient(maritalStatus={}), "Patient.maritalStatus"),
        (patient(name=[None]), "Patient.name[0]"),
        (patient(name=[{"given": [None]}]), "Patient.name[0].given[0]"),
    ],
)
def test_nulls_and_empty_containers_are_rejected(resource: dict[str, Any], expression: str) -> None:
    assert expressions(rejection(resource)) == [expression]


def test_null_is_a_placeholder_in_primitive_arrays_with_extensions() -> None:
    # http://hl7.org/fhir/R4/json.html#primitive
    extension = {"extension": [{"url": "http://example.org/x", "valueString": "y"}]}
    validate_resource(patient(name=[{"given": [None, "Jo"], "_given": [extension, None]}]))


@pytest.mark.parametrize(
    ("resource", "expression"),
    [
        (patient(active="true"), "Patient.active"),
        (patient(multipleBirthInteger=True), "Patient.multipleBirthInteger"),
        (patient(multipleBirthInteger=2.0), "Patient.multipleBirthInteger"),
        (observation(valueQuantity={"value": "72.5"}), "Observation.valueQuantity.value"),
        (patient(gender=1), "Patient.gender"),
    ],
)
def test_primitives_have_their_json_type(resource: dict[str, Any], expression: str) -> None:
    # The models coerce "true" and 2.0; FHIR JSON does not allow it.
    error = rejection(resource)
    assert error.status == 400
    assert expressions(error) == [expression]


def test_decimals_parsed_as_decimal_are_numbers() -> None:
    # opengp.fhir.jsonio parses JSON numbers with a fraction as Decimal, keeping precision.
    body = b'{"resourceType": "Observation", "status": "final", "code": {"text": "HbA1c"},'
    body += b' "valueQuantity": {"value": 7.10}, "component": [{"code": {"text": "x"},'
    body += b' "valueQuantity": {"value": 1.0E+2}}], "subject": {"reference": "Patient/1"}}'
    resource = json.loads(body, parse_float=Decimal)
    assert type(resource["valueQuantity"]["value"]) is Decimal
    validate_resource(resource)
    error = rejection(patient(multipleBirthInteger=Decimal("2.0")))  # integers have no fraction
    assert expressions(error) == ["Patient.multipleBirthInteger"]


def test_system_typed_ids_take_no_extensions() -> None:
    error = rejection(
        patient(id="a", _id={"extension": [{"url": "http://x", "valueBoolean": True}]})
    )
    assert expressions(error) == ["Patient._id"]


def test_extension_value_meta_is_validated() -> None:
    # Meta is an R4 Extension.value[x] type (not an R4B one).
    ok = {"url": "http://example.org/x", "valueMeta": {"lastUpdated": "2020-01-01T00:00:00Z"}}
    validate_resource(patient(extension=[ok]))
    bad = {"url": "http://example.org/x", "valueMeta": {"lastUpdated": "yesterday"}}
    error = rejection(patient(extension=[bad]))
    assert expressions(error) == ["Patient.extension[0].valueMeta.lastUpdated"]


def test_primitive_extension_in_extension_is_still_validated() -> None:
    inner = {"extension": [{"url": "http://example.org/y", "valueDate": "2020-02-30"}]}
    extension = {"url": "http://example.org/x", "valueString": "a", "_valueString": inner}
    error = rejection(patient(extension=[extension]))
    assert expressions(error) == ["Patient.extension[0].valueString.extension[0].valueDate"]


# --- required elements, choices and primitive formats ------------------------------------

EXT = "http://example.org/x"


def extension(**value: Any) -> dict[str, Any]:
    return {"url": EXT, **value}


def with_extension(**value: Any) -> dict[str, Any]:
    return patient(extension=[extension(**value)])


def medication_request(**elements: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/1"},
        **elements,
    }


def without(resource: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k != name}


LEAVES_ONLY_ID = {"id": "s1"}
NULL_FLAVOUR = {"extension": [extension(valueCode="unknown")]}

# (resource, expression, issue code): each a valid resource with one thing broken.
INVALID = {
    # required elements (min >= 1), wherever the type occurs
    "missing status": (without(observation(), "status"), "Observation.status", "required"),
    "missing code": (without(observation(), "code"), "Observation.code", "required"),
    "status with only an id": (
        without(observation(_status=LEAVES_ONLY_ID), "status"),
        "Observation.status",
        "required",
    ),
    "backbone element": (
        observation(component=[{"valueString": "x"}]),
        "Observation.component[0].code",
        "required",
    ),
    "extension url": (
        patient(extension=[{"valueString": "x"}]),
        "Patient.extension[0].url",
        "required",
    ),
    "extension in an extension": (
        with_extension(extension=[{"valueString": "x"}]),
        "Patient.extension[0].extension[0].url",
        "required",
    ),
    "extension of a primitive": (
        patient(birthDate="2000", _birthDate={"extension": [{"valueString": "x"}]}),
        "Patient.birthDate.extension[0].url",
        "required",
    ),
    "contained resource": (
        patient(contained=[without(observation(id="o"), "code")]),
        "Patient.contained[0].code",
        "required",
    ),
    "bundle entry": (
        {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": patient()}, {"resource": without(observation(), "status")}],
        },
        "Bundle.entry[1].resource.status",
        "required",
    ),
    "bundle type": ({"resourceType": "Bundle"}, "Bundle.type", "required"),
    "required choice": (
        medication_request(),
        "MedicationRequest.medication",
        "required",
    ),
    # choice elements: one type at most
    "two types": (
        patient(deceasedBoolean=True, deceasedDateTime="2020-01-01"),
        "Patient.deceased",
        "structure",
    ),
    "two extension values": (
        with_extension(valueString="x", valueBoolean=True),
        "Patient.extension[0].value",
        "structure",
    ),
    "a value and another type's extensions": (
        with_extension(valueString="x", _valueBoolean=NULL_FLAVOUR),
        "Patient.extension[0].value",
        "structure",
    ),
    "two component values": (
        observation(component=[{"code": {"text": "a"}, "valueString": "x", "valueInteger": 1}]),
        "Observation.component[0].value",
        "structure",
    ),
    "two medications": (
        medication_request(
            medicationCodeableConcept={"text": "x"},
            medicationReference={"reference": "Medication/1"},
        ),
        "MedicationRequest.medication",
        "structure",
    ),
    # primitive formats
    "date: no such day": (patient(birthDate="2023-02-30"), "Patient.birthDate", "value"),
    "date: not a leap year": (patient(birthDate="1900-02-29"), "Patient.birthDate", "value"),
    "date: month 13": (patient(birthDate="2023-13-01"), "Patient.birthDate", "value"),
    "date: no zero padding": (patient(birthDate="2023-1-1"), "Patient.birthDate", "value"),
    "date: year 0": (patient(birthDate="0000"), "Patient.birthDate", "value"),
    "date: with a time": (patient(birthDate="2023-01-01T00:00:00Z"), "Patient.birthDate", "value"),
    "dateTime: time without zone": (
        observation(effectiveDateTime="2023-01-01T10:00:00"),
        "Observation.effectiveDateTime",
        "value",
    ),
    "dateTime: no such day": (
        observation(effectiveDateTime="2023-02-30T10:00:00Z"),
        "Observation.effectiveDateTime",
        "value",
    ),
    "dateTime: 24:00": (
        observation(effectiveDateTime="2023-01-01T24:00:00Z"),
        "Observation.effectiveDateTime",
        "value",
    ),
    "dateTime: zone beyond 14:00": (
        observation(effectiveDateTime="2023-01-01T10:00:00+14:30"),
        "Observation.effectiveDateTime",
        "value",
    ),
    "instant: no seconds": (
        observation(issued="2023-01-01T10:00Z"),
        "Observation.issued",
        "value",
    ),
    "instant: no time": (observation(issued="2023-01-01"), "Observation.issued", "value"),
    "instant: no zone": (observation(issued="2023-01-01T10:00:00"), "Observation.issued", "value"),
    "time: 24:00": (observation(valueTime="24:00:00"), "Observation.valueTime", "value"),
    "time: no seconds": (observation(valueTime="10:00"), "Observation.valueTime", "value"),
    "id: underscore": (patient(id="a_b"), "Patient.id", "value"),
    "id: 65 characters": (patient(id="a" * 65), "Patient.id", "value"),
    "id: of a contained resource": (
        patient(contained=[patient(id="a b")]),
        "Patient.contained[0].id",
        "value",
    ),
    "code: leading space": (
        observation(valueQuantity={"value": 1, "code": " kg"}),
        "Observation.valueQuantity.code",
        "value",
    ),
    "code: double space": (
        with_extension(valueCode="a  b"),
        "Patient.extension[0].valueCode",
        "value",
    ),
    "uri: space": (
        observation(valueQuantity={"value": 1, "system": "http://unitsofmeasure.org /"}),
        "Observation.valueQuantity.system",
        "value",
    ),
    "url: space": (with_extension(valueUrl="http://a b"), "Patient.extension[0].valueUrl", "value"),
    "canonical in a list: space": (
        patient(meta={"profile": ["http://x", "http://a b"]}),
        "Patient.meta.profile[1]",
        "value",
    ),
    "integer: 2**31": (
        patient(multipleBirthInteger=2**31),
        "Patient.multipleBirthInteger",
        "value",
    ),
    "integer: below -2**31": (
        patient(multipleBirthInteger=-(2**31) - 1),
        "Patient.multipleBirthInteger",
        "value",
    ),
    "unsignedInt: negative": (patient(photo=[{"size": -1}]), "Patient.photo[0].size", "value"),
    "positiveInt: 0": (
        with_extension(valuePositiveInt=0),
        "Patient.extension[0].valuePositiveInt",
        "value",
    ),
    "decimal: NaN": (
        observation(valueQuantity={"value": float("nan")}),
        "Observation.valueQuantity.value",
        "value",
    ),
    "base64Binary: not groups of four": (
        patient(photo=[{"data": "abc"}]),
        "Patient.photo[0].data",
        "value",
    ),
    "base64Binary: padding inside": (
        patient(photo=[{"data": "ab=c"}]),
        "Patient.photo[0].data",
        "value",
    ),
    "oid: no urn:oid:": (
        with_extension(valueOid="1.2.3"),
        "Patient.extension[0].valueOid",
        "value",
    ),
    "oid: leading zero": (
        with_extension(valueOid="urn:oid:1.02"),
        "Patient.extension[0].valueOid",
        "value",
    ),
    "uuid: upper case": (
        with_extension(valueUuid="urn:uuid:C757873D-EC9A-4326-A141-556F43239520"),
        "Patient.extension[0].valueUuid",
        "value",
    ),
    "uuid: no urn:uuid:": (
        with_extension(valueUuid="c757873d-ec9a-4326-a141-556f43239520"),
        "Patient.extension[0].valueUuid",
        "value",
    ),
    "meta lastUpdated": (
        patient(meta={"lastUpdated": "2023-01-01T10:00:00"}),
        "Patient.meta.lastUpdated",
        "value",
    ),
}


@pytest.mark.parametrize(("resource", "expression", "code"), INVALID.values(), ids=INVALID)
def test_invalid_r4_is_rejected(resource: dict[str, Any], expression: str, code: str) -> None:
    error = rejection(resource)
    assert error.status == 400
    assert expressions(error) == [expression]
    assert error.issues[0].code == code


VALID = {
    "required primitive with only extensions": without(observation(_status=NULL_FLAVOUR), "status"),
    "required choice": medication_request(medicationCodeableConcept={"text": "x"}),
    "choice value with its own extensions": with_extension(
        valueString="x", _valueString=NULL_FLAVOUR
    ),
    "partial dates": patient(birthDate="2023-02", deceasedDateTime="2024"),
    "leap day": patient(birthDate="2024-02-29"),
    # http://hl7.org/fhir/R4/datatypes.html#dateTime: "Leap Seconds are allowed".
    "leap second": observation(issued="2016-12-31T23:59:60Z"),
    "fractional seconds and zones": observation(
        effectiveDateTime="2023-01-01T10:00:00.123+14:00", issued="2023-01-01T10:00:00.5-05:00"
    ),
    "id of 64 characters": patient(id="A-z.0" + "a" * 59),
    "no-break space in a string": patient(name=[{"family": "van\u00a0Dyke"}]),
    "integer limits": patient(multipleBirthInteger=-(2**31), photo=[{"size": 0}]),
    "base64 with whitespace between groups": patient(photo=[{"data": "abcd\n efg= "}]),
    "any UUID version": with_extension(valueUuid="urn:uuid:c757873d-ec9a-1326-a141-556f43239520"),
    "relative url": with_extension(valueUrl="Patient/1"),
}


@pytest.mark.parametrize("resource", VALID.values(), ids=VALID)
def test_valid_r4_is_accepted(resource: dict[str, Any]) -> None:
    validate_resource(resource)


# --- resource types ---------------------------------------------------------------------


def test_unknown_resource_type() -> None:
    error = rejection({"resourceType": "Citation", "status": "active"})  # R4B only
    assert error.status == 400
    assert error.issues[0].code == "not-supported"


def test_excluded_resource_type_says_why() -> None:
    assert "Evidence" in EXCLUDED_RESOURCE_TYPES
    error = rejection({"resourceType": "Evidence", "status": "active"})
    assert "not supported" in error.issues[0].diagnostics


@pytest.mark.parametrize("resource", [{"id": "x"}, {"resourceType": 7}, {"resourceType": []}])
def test_resource_type_is_required(resource: dict[str, Any]) -> None:
    error = rejection(resource)
    assert error.status == 400
    assert expressions(error) == ["resourceType"]


def test_a_resource_is_a_json_object() -> None:
    error = rejection(["not", "a", "resource"])  # type: ignore[arg-type]
    assert error.status == 400


def test_nested_resources_are_walked() -> None:
    contained = [{"resourceType": "Organization", "id": "o", "name": "", "bogus": 1}]
    error = rejection(patient(contained=contained))
    assert expressions(error) == ["Patient.contained[0].name", "Patient.contained[0].bogus"]
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": patient()}, {"resource": patient(gender="bogus")}],
    }
    assert expressions(rejection(bundle)) == ["Bundle.entry[1].resource.gender"]


def test_unknown_contained_resource_type() -> None:
    error = rejection(patient(contained=[{"resourceType": "Citation", "id": "c"}]))
    assert expressions(error) == ["Patient.contained[0]"]


# --- required bindings ------------------------------------------------------------------


def test_bogus_gender_is_rejected() -> None:
    error = rejection(patient(gender="bogus"))
    assert error.status == 422
    assert expressions(error) == ["Patient.gender"]
    assert error.issues[0].code == "code-invalid"
    assert "administrative-gender" in error.issues[0].diagnostics


@pytest.mark.parametrize(
    ("resource", "expression"),
    [
        (patient(identifier=[{"use": "primary"}]), "Patient.identifier[0].use"),
        (patient(name=[{"use": "nick"}]), "Patient.name[0].use"),
        (patient(telecom=[{"system": "pigeon", "value": "1"}]), "Patient.telecom[0].system"),
        (patient(address=[{"use": "holiday"}]), "Patient.address[0].use"),
        (patient(text={"status": "done", "div": "<div>x</div>"}), "Patient.text.status"),
        (observation(status="done"), "Observation.status"),
        (
            observation(
                component=[
                    {"code": {"text": "a"}},
                    {"code": {"text": "b"}, "valueQuantity": {"comparator": "~"}},
                ]
            ),
            "Observation.component[1].valueQuantity.comparator",
        ),
    ],
)
def test_required_bindings_in_datatypes_and_resources(
    resource: dict[str, Any], expression: str
) -> None:
    error = rejection(resource)
    assert error.status == 422
    assert expressions(error) == [expression]


def condition(clinical_status: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "clinicalStatus": clinical_status,
        "subject": {"reference": "Patient/1"},
    }


def test_required_binding_on_codeable_concept() -> None:
    system = "http://terminology.hl7.org/CodeSystem/condition-clinical"
    validate_resource(
        condition(
            {"coding": [{"system": "http://x", "code": "a"}, {"system": system, "code": "active"}]}
        )
    )
    for wrong in (
        {"coding": [{"system": system, "code": "bogus"}]},
        {"coding": [{"system": "http://example.org", "code": "active"}]},  # the system matters
        {"coding": [{"code": "active"}]},
        {"text": "active"},  # a required binding needs a code
    ):
        error = rejection(condition(wrong))
        assert error.status == 422
        assert expressions(error) == ["Condition.clinicalStatus"]


def test_structural_and_binding_problems_together_give_400() -> None:
    error = rejection(patient(gender="bogus", birthDate="1980-13-45"))
    assert error.status == 400
    assert expressions(error) == ["Patient.gender", "Patient.birthDate"]


# --- references -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reference",
    [
        "Patient/123",
        "Patient/123/_history/2",
        "Evidence/1",  # an R4 type OpenGP does not store is still valid syntax
        "http://example.org/fhir/Patient/123",
        "urn:uuid:04121321-4af5-424c-a0e1-ed3aab1c349d",  # rewritten by transactions later
        "urn:oid:1.2.3.4",
        "#p1",
    ],
)
def test_valid_reference_syntax(reference: str) -> None:
    validate_resource(observation(subject={"reference": reference}))


@pytest.mark.parametrize(
    "reference",
    ["Patient/", "Patient/a b", "patient/1", "Foo/1", "urn:uuid:not-a-uuid", "#a b", "Patient"],
)
def test_invalid_reference_syntax(reference: str) -> None:
    error = rejection(observation(subject={"reference": reference}))
    assert error.status == 400
    assert expressions(error) == ["Observation.subject.reference"]


# --- UK Core ----------------------------------------------------------------------------


def nhs_patient(value: Any) -> dict[str, Any]:
    other = {"system": "http://example.org/mrn", "value": "123"}
    return patient(identifier=[other, {"system": NHS, "value": value}])


def test_valid_nhs_number() -> None:
    validate_resource(nhs_patient("9434765919"))


@pytest.mark.parametrize(
    "value",
    ["9434765918", "943476591", "94347659190", "943476591X", "0000000060", "943 476 5919"],
)
def test_invalid_nhs_number_is_a_business_rule(value: str) -> None:
    error = rejection(nhs_patient(value))
    assert error.status == 422
    assert expressions(error) == ["Patient.identifier[1].value"]
    assert error.issues[0].code == "business-rule"


def test_nhs_number_identifier_needs_a_value() -> None:
    error = rejection(patient(identifier=[{"system": NHS}]))
    assert expressions(error) == ["Patient.identifier[0].value"]


def test_other_identifier_systems_are_not_checked() -> None:
    validate_resource(patient(identifier=[{"system": "http://example.org", "value": "12"}]))


# --- limits -----------------------------------------------------------------------------


def test_issues_are_capped() -> None:
    error = rejection(patient(**{f"bogus{i}": 1 for i in range(MAX_ISSUES + 20)}))
    assert len(error.issues) == MAX_ISSUES


# --- every official example -------------------------------------------------------------


def _examples_dir() -> Path | None:
    return package_dir("hl7.fhir.r4.examples")


# Official examples that are genuinely invalid R4.
INVALID_EXAMPLES = {
    "Questionnaire-qs1.json": "Questionnaire.item[0].item[0].linkId",  # linkId is 1..1
    "CodeSystem-v2-0550.json": "CodeSystem.concept[74].code",  # non-breaking space in a code
    # An id of 67 characters; an id has at most 64.
    "SearchParameter-questionnaireresponse-extensions-QuestionnaireResponse-item-subject.json": (
        "SearchParameter.id"
    ),
    **{
        f"SearchParameter-{vs}-extensions-{rt}-{name}.json": "SearchParameter.base"  # 1..*
        for vs, rt in (("codesystem", "CodeSystem"), ("valueset", "ValueSet"))
        for name in ("author", "effective", "end", "keyword", "workflow")
    },
}
# Aggregates of the individual conformance resources (or of the whole package), 1-35 MB
# each: skipped to keep this test under ~15 s.
AGGREGATE_LIMIT = 1_000_000


@pytest.mark.skipif(_examples_dir() is None, reason="hl7.fhir.r4.examples not unpacked")
def test_all_official_examples() -> None:
    directory = _examples_dir()
    assert directory is not None
    rejected: dict[str, InvalidResource] = {}
    unsupported: set[str] = set()
    for path in sorted(directory.glob("*.json")):
        if path.name == "package.json" or path.stat().st_size > AGGREGATE_LIMIT:
            continue
        resource = json.loads(path.read_text(encoding="utf-8"))
        if resource["resourceType"] in EXCLUDED_RESOURCE_TYPES:
            unsupported.add(path.name)
        try:
            validate_resource(resource)
        except InvalidResource as error:
            rejected[path.name] = error
    assert len(rejected) > 0 and len(unsupported) == 15
    assert all(rejected[n].issues[0].code == "not-supported" for n in unsupported)
    found = {n: expressions(rejected[n])[0] for n in rejected.keys() - unsupported}
    assert found == INVALID_EXAMPLES


@pytest.mark.parametrize("bad", ["a\u0000b", "a\u0001", "x\u001fy"])
def test_control_characters_in_strings_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidResource) as caught:
        validate_resource({"resourceType": "Patient", "name": [{"family": bad, "given": ["ok"]}]})
    assert caught.value.issues[0].expression == ("Patient.name[0].family",)
    validate_resource({"resourceType": "Patient", "name": [{"text": "tab\there\r\nline"}]})
