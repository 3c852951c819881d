"""The generated R4 definitions (opengp.fhir.definitions.r4) and their expanded view."""

from __future__ import annotations

import importlib.util
import sys
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest
from fhir.resources.R4B import get_fhir_model_class

from opengp.fhir.definitions import (
    DETACHED,
    EXCLUDED_RESOURCE_TYPES,
    RESOURCE_TYPES,
    TYPES,
    UNCHECKED_BINDINGS,
    r4,
)
from tests.fhir_packages import package_dir

ROOT = Path(__file__).resolve().parents[2]


def test_resource_types_are_r4_types_with_an_r4b_model() -> None:
    assert {"Patient", "Observation", "Bundle", "Encounter", "Substance"} <= RESOURCE_TYPES
    assert len(RESOURCE_TYPES) + len(EXCLUDED_RESOURCE_TYPES) == 146  # R4 resource types
    assert not RESOURCE_TYPES & EXCLUDED_RESOURCE_TYPES.keys()
    # New in R4B, so not R4 types.
    assert not {"Citation", "ClinicalUseIssue", "SubscriptionTopic"} & RESOURCE_TYPES
    for resource_type in RESOURCE_TYPES:
        assert get_fhir_model_class(resource_type).get_resource_type() == resource_type


def test_excluded_resource_types() -> None:
    medicinal = {
        f"MedicinalProduct{s}"
        for s in (
            "",
            "Authorization",
            "Contraindication",
            "Indication",
            "Ingredient",
            "Interaction",
            "Manufactured",
            "Packaged",
            "Pharmaceutical",
            "UndesirableEffect",
        )
    }
    substance = {
        f"Substance{s}"
        for s in (
            "NucleicAcid",
            "Polymer",
            "Protein",
            "ReferenceInformation",
            "SourceMaterial",
            "Specification",
        )
    }
    others = {"EffectEvidenceSynthesis", "Evidence", "EvidenceVariable", "RiskEvidenceSynthesis"}
    assert set(EXCLUDED_RESOURCE_TYPES) == medicinal | substance | others
    assert all(EXCLUDED_RESOURCE_TYPES.values())
    assert "missing in R4B" in EXCLUDED_RESOURCE_TYPES["Evidence"]


def test_every_referenced_type_is_defined() -> None:
    for key, elements in TYPES.items():
        for name, info in elements.items():
            known = info.accepts or info.type in TYPES or info.type == "Resource"
            assert known, f"{key}.{name}: {info.type}"
    assert TYPES.keys() >= RESOURCE_TYPES


def test_element_model() -> None:
    patient = TYPES["Patient"]
    assert patient["identifier"].type == "Identifier"
    assert patient["identifier"].is_list
    assert not patient["gender"].is_list
    assert patient["contact"].type == "Patient.contact"  # a BackboneElement, by path
    assert TYPES["Patient.contact"]["gender"].type == "code"
    # inherited from Resource/DomainResource and BackboneElement
    assert {"id", "meta", "text", "contained", "extension"} <= patient.keys()
    assert "modifierExtension" in TYPES["Patient.contact"]
    # choice elements, expanded
    observation = TYPES["Observation"]
    assert observation["valueQuantity"].type == "Quantity"
    assert observation["valueString"].accepts == (str,)
    assert observation["effectiveDateTime"].type == "dateTime"
    assert "value[x]" not in observation
    assert {"valueString", "valueMeta", "valueCodeableConcept"} <= TYPES["Extension"].keys()
    # contentReference: Questionnaire.item.item is another Questionnaire.item
    assert TYPES["Questionnaire.item"]["item"].type == "Questionnaire.item"
    # JSON representation of primitives
    assert patient["active"].accepts == (bool,)
    assert patient["multipleBirthInteger"].accepts == (int,)
    assert TYPES["Quantity"]["value"].accepts == (int, float, Decimal)
    # FHIRPath System types carry no `_name` companion
    assert not patient["id"].extensible
    assert not TYPES["Extension"]["url"].extensible
    assert patient["birthDate"].extensible


@pytest.mark.parametrize(
    ("key", "name", "codes"),
    [
        ("Patient", "gender", {"male", "female", "other", "unknown"}),
        ("Identifier", "use", {"usual", "official", "temp", "secondary", "old"}),
        (
            "HumanName",
            "use",
            {"usual", "official", "temp", "nickname", "anonymous", "old", "maiden"},
        ),
        ("ContactPoint", "system", {"phone", "fax", "email", "pager", "url", "sms", "other"}),
        ("Address", "use", {"home", "work", "temp", "old", "billing"}),
        ("Quantity", "comparator", {"<", "<=", ">=", ">"}),
        ("Age", "comparator", {"<", "<=", ">=", ">"}),
        ("Narrative", "status", {"generated", "extensions", "additional", "empty"}),
        (
            "Observation",
            "status",
            {
                "registered",
                "preliminary",
                "final",
                "amended",
                "corrected",
                "cancelled",
                "entered-in-error",
                "unknown",
            },
        ),
    ],
)
def test_required_bindings_on_codes(key: str, name: str, codes: set[str]) -> None:
    assert TYPES[key][name].codes == codes


def test_required_binding_on_codeable_concept() -> None:
    info = TYPES["Condition"]["clinicalStatus"]
    system = "http://terminology.hl7.org/CodeSystem/condition-clinical"
    assert info.codes is None
    assert info.codings is not None
    assert (system, "active") in info.codings
    assert ("http://example.org", "active") not in info.codings


def test_bindings_that_cannot_be_enumerated_are_marked() -> None:
    assert "mimetypes" in UNCHECKED_BINDINGS["Attachment.contentType"]
    assert "currencies" in UNCHECKED_BINDINGS["Money.currency"]
    assert TYPES["Attachment"]["contentType"].codes is None
    assert TYPES["Patient"]["language"].codes is None  # preferred, not required


def test_r4b_gaps_are_detached() -> None:
    assert DETACHED["Extension"]["_valueString"] == "Element"
    assert DETACHED["Extension"]["valueMeta"] == "Meta"
    assert DETACHED["ElementDefinition"]["fixedMeta"] == "Meta"


# --- the generator ----------------------------------------------------------------------


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "generate_fhir_definitions", ROOT / "scripts" / "generate_fhir_definitions.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


EXAMPLES = package_dir("hl7.fhir.r4.examples")
EXPANSIONS = package_dir("hl7.fhir.r4.expansions")


@pytest.mark.skipif(
    EXAMPLES is None or EXPANSIONS is None, reason="R4 packages not unpacked (see the generator)"
)
def test_generated_file_is_up_to_date() -> None:
    assert EXAMPLES is not None and EXPANSIONS is not None
    text = _generator().generate(EXAMPLES, EXPANSIONS).render()
    assert text == Path(r4.__file__).read_text(encoding="utf-8")
