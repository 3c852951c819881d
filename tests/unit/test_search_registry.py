"""The search parameter registry: the official R4 parameters of each type, as data."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from opengp.fhir.definitions import RESOURCE_TYPES
from opengp.search.definitions import r4
from opengp.search.model import Component, SearchParam
from opengp.search.registry import UK_ADDITIONS, param, params_for, resource_types
from tests.fhir_packages import package_dir

ROOT = Path(__file__).resolve().parents[2]
SP = "http://hl7.org/fhir/SearchParameter/"


def test_patient_birthdate_is_a_date_parameter_on_birth_date() -> None:
    assert param("Patient", "birthdate") == SearchParam(
        resource_type="Patient",
        code="birthdate",
        type="date",
        expression="Patient.birthDate",
        url=SP + "individual-birthdate",
    )


def test_observation_code_value_quantity_is_composite_of_code_and_quantity() -> None:
    found = param("Observation", "code-value-quantity")
    assert found is not None
    assert found.type == "composite"
    assert found.expression == "Observation"
    assert found.components == (
        Component("code", "token", "code"),
        Component("value-quantity", "quantity", "value.as(Quantity)"),
    )


def test_shared_definitions_keep_only_the_branches_of_the_type() -> None:
    # clinical-code covers 14 types in one expression.
    assert params_for("Condition")["code"].expression == "Condition.code"
    assert params_for("AllergyIntolerance")["code"].expression == (
        "AllergyIntolerance.code | AllergyIntolerance.reaction.substance"
    )
    medication = params_for("MedicationRequest")["code"]
    assert medication.expression == "(MedicationRequest.medication as CodeableConcept)"
    assert medication.url == SP + "clinical-code"
    # An expression with no per-type branches is kept whole.
    assert params_for("InsurancePlan")["name"].expression == "name | alias"


def test_reference_parameters_carry_their_targets() -> None:
    patient = param("Observation", "patient")
    assert patient is not None
    assert patient.type == "reference"
    assert patient.expression == "Observation.subject.where(resolve() is Patient)"
    assert patient.targets == ("Group", "Patient")
    # "Any resource": every R4 type but Parameters.
    focus = param("Observation", "focus")
    assert focus is not None
    assert {"Patient", "Condition", "Observation"} <= set(focus.targets)
    assert "Parameters" not in focus.targets


def test_every_type_inherits_the_resource_parameters() -> None:
    patient = params_for("Patient")
    for code in ("_id", "_lastUpdated", "_tag", "_profile", "_security", "_source", "_text"):
        assert code in patient
    assert patient["_tag"].resource_type == "Resource"
    assert patient["_tag"].expression == "Resource.meta.tag"
    assert patient["_text"].resource_type == "DomainResource"
    assert patient["_text"].expression is None  # full text is indexed elsewhere
    # Bundle, Binary and Parameters are not DomainResources: no _text.
    assert "_id" in params_for("Bundle")
    assert "_text" not in params_for("Bundle")
    assert set(params_for("Binary")) == {
        "_content",
        "_filter",
        "_id",
        "_lastUpdated",
        "_profile",
        "_query",
        "_security",
        "_source",
        "_tag",
    }


def test_experimental_definitions_are_left_out() -> None:
    # SearchParameter-example* and draft extension parameters (genetics, patient-extensions).
    assert "mothersMaidenName" not in params_for("Patient")
    assert "age" not in params_for("Patient")
    assert "dna-variant" not in params_for("Observation")
    assert params_for("Condition")["subject"].url == SP + "Condition-subject"
    assert params_for("Patient")["_id"].expression == "Resource.id"


def test_document_reference_relationship_components_are_corrected() -> None:
    relationship = param("DocumentReference", "relationship")
    assert relationship is not None
    assert relationship.components == (
        Component("relatesto", "reference", "target"),
        Component("relation", "token", "code"),
    )


def test_unknown_types_and_codes() -> None:
    assert param("Patient", "no-such-parameter") is None
    assert params_for("NoSuchType") == {}
    assert param("NoSuchType", "_id") is None


def test_every_stored_type_is_searchable() -> None:
    assert resource_types() >= RESOURCE_TYPES
    assert "Resource" not in resource_types()
    for resource_type in RESOURCE_TYPES:
        found = params_for(resource_type)
        assert "_id" in found
        assert all(p.code == code for code, p in found.items())


def test_gp_searches_are_r4_parameters() -> None:
    # Why UK_ADDITIONS is empty: NHS number, registered practice, ODS code, SNOMED codes.
    assert UK_ADDITIONS == {}
    assert params_for("Patient")["identifier"].type == "token"
    assert params_for("Patient")["general-practitioner"].targets == (
        "Organization",
        "Practitioner",
        "PractitionerRole",
    )
    assert params_for("Organization")["identifier"].type == "token"
    assert params_for("Immunization")["vaccine-code"].type == "token"
    assert params_for("Slot")["service-type"].type == "token"


def _generator(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))  # it imports the definitions script
    spec = importlib.util.spec_from_file_location(
        "generate_search_parameters", ROOT / "scripts" / "generate_search_parameters.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


EXAMPLES = package_dir("hl7.fhir.r4.examples")


@pytest.mark.skipif(EXAMPLES is None, reason="R4 package not unpacked (see the generator)")
def test_generated_file_is_up_to_date(monkeypatch: pytest.MonkeyPatch) -> None:
    assert EXAMPLES is not None
    generator = _generator(monkeypatch)
    text = generator.render(
        generator.generate(EXAMPLES),
        generator.referable_types(EXAMPLES),
        generator.compartments(EXAMPLES),
    )
    assert text == Path(r4.__file__).read_text(encoding="utf-8")


def test_the_patient_compartment_comes_from_its_definition() -> None:
    patient = r4.COMPARTMENTS["Patient"]
    assert patient["Observation"] == ("subject", "performer")
    assert "actor" in patient["Appointment"]
    assert "Practitioner" not in patient


def test_restricting_an_expression_to_a_type(monkeypatch: pytest.MonkeyPatch) -> None:
    restrict = _generator(monkeypatch).restrict
    shared = "Account.subject | (DeviceRequest.code as CodeableConcept) | Device.x.where(a='|')"
    assert restrict(shared, "DeviceRequest") == "(DeviceRequest.code as CodeableConcept)"
    assert restrict(shared, "Device") == "Device.x.where(a='|')"  # not Device*Request
    assert restrict("name | alias", "InsurancePlan") == "name | alias"
    with pytest.raises(SystemExit):
        restrict(shared, "Patient")
