"""The generated R4 definitions (opengp.fhir.definitions.r4) and their expanded view."""

from __future__ import annotations

import importlib.util
import sys
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest

from opengp.fhir.definitions import (
    EXCLUDED_RESOURCE_TYPES,
    FORMATS,
    RESOURCE_TYPES,
    RULES,
    TYPES,
    UNCHECKED_BINDINGS,
    r4,
)
from tests.fhir_packages import package_dir

ROOT = Path(__file__).resolve().parents[2]


def test_resource_types_are_r4_types() -> None:
    assert {"Patient", "Observation", "Bundle", "Encounter", "Substance"} <= RESOURCE_TYPES
    assert len(RESOURCE_TYPES) == 126
    assert len(RESOURCE_TYPES) + len(EXCLUDED_RESOURCE_TYPES) == 146  # R4 resource types
    assert not RESOURCE_TYPES & EXCLUDED_RESOURCE_TYPES.keys()
    # New in R4B, so not R4 types.
    assert not {"Citation", "ClinicalUseIssue", "SubscriptionTopic"} & RESOURCE_TYPES


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
    assert set(EXCLUDED_RESOURCE_TYPES.values()) == {"not yet accepted by OpenGP"}


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


def test_required_elements() -> None:
    assert RULES["Observation"].required == {"status", "code"}
    assert RULES["Extension"].required == {"url"}
    assert RULES["Observation.component"].required == {"code"}
    assert RULES["Questionnaire.item"].required == {"linkId", "type"}
    assert RULES["SearchParameter"].required >= {"base", "status", "code"}
    assert "Patient" not in RULES or not RULES["Patient"].required
    assert not {"Coding", "Reference", "Identifier", "Element", "Resource"} & RULES.keys()


def test_choice_elements() -> None:
    patient = RULES["Patient"]
    assert patient.choices["deceasedBoolean"] == "deceased"
    assert patient.choices["_deceasedDateTime"] == "deceased"  # primitive companions count
    assert patient.required_choices == ()
    extension = RULES["Extension"]
    assert extension.choices["valueMeta"] == "value"
    assert "_valueQuantity" not in extension.choices  # complex types have no companion
    assert extension.required_choices == ()
    assert RULES["MedicationRequest"].required_choices == ("medication",)
    assert RULES["Immunization"].required_choices == ("occurrence",)
    assert RULES["Observation.component"].required_choices == ()


def test_primitive_regexes_come_from_the_definitions() -> None:
    assert r4.PRIMITIVE_REGEXES["id"] == "[A-Za-z0-9\\-\\.]{1,64}"
    assert r4.PRIMITIVE_REGEXES["base64Binary"] == "(\\s*([0-9a-zA-Z\\+/=]){4}\\s*)+"
    assert "xhtml" not in r4.PRIMITIVE_REGEXES
    assert set(FORMATS) == set(r4.PRIMITIVE_TYPES)
    assert FORMATS["boolean"] is None


@pytest.mark.parametrize(
    ("type_", "good", "bad"),
    [
        ("id", ["a", "A-1.b", "a" * 64], ["a_b", "a" * 65, "a b", "", "é"]),
        ("code", ["a", "a b", "x-1"], [" a", "a ", "a  b", "a\u00a0", ""]),
        ("uri", ["urn:x", "http://x/y?z#w", "foo"], ["a b", " http://x", "http://x\u00a0", ""]),
        ("url", ["http://x"], ["http://a b"]),
        ("canonical", ["http://x|1.0"], ["http://x |1.0"]),
        ("oid", ["urn:oid:1.2.3", "urn:oid:2.16.840"], ["urn:oid:1.02", "1.2.3", "urn:oid:3.1"]),
        (
            "uuid",
            ["urn:uuid:c757873d-ec9a-4326-a141-556f43239520"],
            [
                "urn:uuid:C757873D-EC9A-4326-A141-556F43239520",
                "c757873d-ec9a-4326-a141-556f43239520",
            ],
        ),
        (
            "base64Binary",
            ["abcd", "ab==", "abc=", " abcd\n efgh ", "a+/="],
            ["abc", "ab=c", "a==="],
        ),
        ("base64Binary", [], ["ab cd", "abcd=", "ab==cd==", "abc!"]),
        ("date", ["2023", "2023-02", "2024-02-29", "2000-02-29"], ["2023-02-29", "1900-02-29"]),
        (
            "date",
            [],
            ["2023-02-30", "2023-04-31", "2023-13", "2023-1-1", "0000", "2023-01-01T00:00:00Z"],
        ),
        (
            "dateTime",
            ["2023", "2023-01-01", "2023-01-01T10:00:00Z", "2023-01-01T10:00:00.5+14:00"],
            ["2023-01-01T10:00:00", "2023-01-01T10:00Z", "2023-01-01T24:00:00Z", "2023-02-30"],
        ),
        ("dateTime", ["2016-12-31T23:59:60Z"], ["2023-01-01T10:00:00+14:30", "2023-01-01T"]),
        (
            "instant",
            ["2023-01-01T10:00:00Z", "2023-01-01T10:00:00.123-05:00"],
            ["2023-01-01", "2023-01-01T10:00Z", "2023-01-01T10:00:00", "2023-02-30T00:00:00Z"],
        ),
        ("time", ["00:00:00", "23:59:59.999"], ["24:00:00", "10:00", "10:00:00Z", "9:00:00"]),
        ("integer", [0, -(2**31), 2**31 - 1], [2**31, -(2**31) - 1]),
        ("unsignedInt", [0, 2**31 - 1], [-1, 2**31]),
        ("positiveInt", [1, 2**31 - 1], [0, -5, 2**31]),
        (
            "decimal",
            [0, -1.5, Decimal("7.10"), 1e300],
            [float("nan"), float("inf"), Decimal("NaN")],
        ),
        ("string", ["a", "  ", "a\u00a0b", "tab\there\r\n"], ["", "a\u0000", "\u001f"]),
        ("markdown", ["*a*"], ["", "a\u0001"]),
    ],
)
def test_primitive_formats(type_: str, good: list[object], bad: list[object]) -> None:
    valid = FORMATS[type_]
    assert valid is not None
    assert [v for v in good if not valid(v)] == []
    assert [v for v in bad if valid(v)] == []


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
