"""Validation of every resource written: FHIR R4 JSON, structure, required bindings, UK Core.

`validate_resource` walks the JSON once with the R4 element model generated from the official
definitions (opengp.fhir.definitions) and reports every problem found (up to MAX_ISSUES),
each naming its element as a FHIRPath (`Patient.identifier[0].value`; a choice element by its
base name, `Patient.deceased`). It enforces:
- the JSON rules of http://hl7.org/fhir/R4/json.html: no nulls, no empty strings, arrays or
  objects; booleans and numbers as JSON booleans and numbers, not strings; arrays exactly for
  elements that repeat; `_name` companions only for primitives;
- R4 (not R4B) element names and resource types;
- required elements (min >= 1) of every resource, datatype and BackboneElement, in contained
  resources, Bundle entries and extensions too; a required primitive may be present as its
  `_name` companion with extensions only (http://hl7.org/fhir/R4/extensibility.html#Special-Case);
- choice elements (http://hl7.org/fhir/R4/formats.html#choice): at most one type present,
  exactly one when required;
- primitive formats (http://hl7.org/fhir/R4/datatypes.html#primitive): the regex of each type
  from its StructureDefinition, real calendar dates, 32-bit integers, finite decimals,
  base64 padding (RFC 4648); strings without control characters;
- required bindings (http://hl7.org/fhir/R4/terminologies.html#required);
- Reference.reference syntax (http://hl7.org/fhir/R4/references.html);
- the UK Core NHS number check digit.
Invariants (FHIRPath constraints such as ele-1 or ext-1) are not checked.

Status is 400 for structural, datatype and reference-syntax problems; 422 when the only
problems are required bindings and business rules (http://hl7.org/fhir/R4/http.html#update).

All 5,306 official examples (hl7.fhir.r4.examples@4.0.1) go through `validate_resource`;
the only ones rejected are genuinely invalid R4 or of a type OpenGP does not accept:
- Questionnaire-qs1: nested items without linkId (Questionnaire.item.linkId is 1..1);
- ten SearchParameter-{codesystem,valueset}-extensions-*: no base (1..*);
- CodeSystem-v2-0550 (and Bundle-v2-valuesets, which contains it): codes holding
  non-breaking spaces, which the `code` regex forbids;
- SearchParameter-questionnaireresponse-extensions-QuestionnaireResponse-item-subject: an id
  longer than the 64 characters an id allows (as are the references to it in the manifest of
  ImplementationGuide-fhir and ig-r4, which also lack name and status, 1..1);
- the 15 examples of the types OpenGP does not yet accept (r4.EXCLUDED_RESOURCE_TYPES).
No official example breaks a required binding or the reference syntax otherwise.
tests/unit/test_validation.py checks this whenever the package is unpacked.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from opengp.fhir.definitions import (
    EXCLUDED_RESOURCE_TYPES,
    RESOURCE_TYPES,
    RULES,
    TYPES,
    ElementInfo,
    Rules,
)
from opengp.fhir.errors import InvalidResource, Issue
from opengp.fhir.nhs_number import NHS_NUMBER_SYSTEM, is_valid_nhs_number
from opengp.fhir.references import syntax_problem

MAX_ISSUES = 50

# Issue codes (http://hl7.org/fhir/R4/valueset-issue-type.html) that alone give 422.
_UNPROCESSABLE = frozenset({"code-invalid", "business-rule"})

# References may name any R4 type, including ones OpenGP does not store (official examples
# do): that is valid syntax; whether the target exists is for the store to decide.
_R4_RESOURCE_TYPES = RESOURCE_TYPES | frozenset(EXCLUDED_RESOURCE_TYPES)

_JSON_TYPE_NAMES = {
    (str,): "a JSON string",
    (bool,): "a JSON boolean",
    (int,): "a JSON number without a fraction",
    (int, float, Decimal): "a JSON number",
}


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")

# What a value of each primitive type looks like, for the diagnostics of a bad one.
_FORMATS = {
    "base64Binary": "base64 (RFC 4648) in groups of four characters",
    "canonical": "a URI without whitespace",
    "code": "no leading, trailing or double whitespace",
    "date": "YYYY, YYYY-MM or YYYY-MM-DD, a real date",
    "dateTime": "YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss(.s)+zz:zz (a time needs a"
    " time zone), a real date",
    "decimal": "a finite number",
    "id": "1-64 characters A-Z a-z 0-9 - .",
    "instant": "YYYY-MM-DDThh:mm:ss(.s)+zz:zz or Z, a real date",
    "integer": "from -2147483648 to 2147483647",
    "oid": "urn:oid: and an OID",
    "positiveInt": "from 1 to 2147483647",
    "time": "hh:mm:ss(.s), before 24:00",
    "unsignedInt": "from 0 to 2147483647",
    "uri": "no whitespace",
    "url": "no whitespace",
    "uuid": "urn:uuid: and a lower-case UUID",
}


class _Walk:
    """State of one walk: the issues found, by expression."""

    __slots__ = ("issues",)

    def __init__(self) -> None:
        self.issues: dict[str, Issue] = {}

    def add(self, code: str, expression: str, diagnostics: str) -> None:
        if len(self.issues) < MAX_ISSUES and expression not in self.issues:
            self.issues[expression] = Issue(code, f"{expression}: {diagnostics}", (expression,))

    def resource(self, resource: Any, path: str) -> None:
        """Walk a resource found at `path` (the root, contained, Bundle.entry.resource)."""
        if type(resource) is not dict:
            self.add("structure", path or "Resource", "a resource must be a JSON object")
            return
        resource_type = resource.get("resourceType")
        if type(resource_type) is not str:
            self.add("structure", path or "resourceType", "resourceType is missing")
        elif resource_type not in RESOURCE_TYPES:
            self.add("not-supported", path or "resourceType", _unknown_type(resource_type))
        else:
            self.object(resource, resource_type, path or resource_type)

    def object(self, obj: dict[str, Any], key: str, path: str) -> None:
        """Walk the JSON object `obj`, an instance of type key `key`.

        Hot path: valid primitives cost a type check and no string building."""
        elements = TYPES[key]
        for name, value in obj.items():
            info = elements.get(name)
            if info is None:
                self.unmodelled(obj, key, name, value, path)
                continue
            accepts = info.accepts
            if accepts:  # a primitive
                # `valid` (None for booleans) rejects empty strings and control characters.
                valid = info.valid
                codes = info.codes
                if not info.is_list:
                    if (
                        type(value) not in accepts
                        or (valid is not None and not valid(value))
                        or (codes is not None and value not in codes)
                    ):
                        self.primitive(value, info, f"{path}.{name}")
                elif type(value) is not list or not value:
                    self.shape(value, info, f"{path}.{name}")
                else:
                    for item in value:
                        if (
                            type(item) not in accepts
                            or (valid is not None and not valid(item))
                            or (codes is not None and item not in codes)
                        ):
                            self.primitives(obj, name, value, info, f"{path}.{name}")
                            break
            elif not info.is_list:
                self.value(value, info, f"{path}.{name}")
            elif type(value) is list and value:
                for index, item in enumerate(value):
                    self.value(item, info, f"{path}.{name}[{index}]")
            else:
                self.shape(value, info, f"{path}.{name}")
        rules = RULES.get(key)
        if rules is not None:
            required = rules.required
            choice_names = rules.choice_names
            if (
                (required and not obj.keys() >= required)
                or (choice_names is not None and len(choice_names.intersection(obj)) > 1)
                or rules.required_choices
            ):
                self.cardinality(obj, key, rules, path)

    def cardinality(self, obj: dict[str, Any], key: str, rules: Rules, path: str) -> None:
        """Report missing required elements and choices with more than one type present."""
        elements = TYPES[key]
        for name in sorted(rules.required):
            if name not in obj and not (elements[name].accepts and _extended(obj, f"_{name}")):
                self.add("required", f"{path}.{name}", "is required (minimum cardinality 1)")
        present: dict[str, list[str]] = {}
        for name in obj:
            base = rules.choices.get(name)
            if base is not None:
                type_name = name[1:] if name[0] == "_" else name
                names = present.setdefault(base, [])
                if type_name not in names:
                    names.append(type_name)
        for base, names in present.items():
            if len(names) > 1:
                self.add(
                    "structure",
                    f"{path}.{base}",
                    f"{base}[x] takes one type, found {', '.join(names)}",
                )
        for base in rules.required_choices:
            if base not in present:
                self.add("required", f"{path}.{base}", f"{base}[x] is required (one type)")

    def shape(self, value: Any, info: ElementInfo, where: str) -> None:
        """Report `value` having the wrong shape for its cardinality."""
        if info.is_list:
            if type(value) is not list:
                self.add("structure", where, "must be a JSON array")
            else:
                self.add("structure", where, "arrays must not be empty")
        elif type(value) is list:
            self.add("structure", where, "must not be a JSON array")
        else:
            self.add("structure", where, "null is not allowed")

    def primitives(
        self, obj: dict[str, Any], name: str, value: list[Any], info: ElementInfo, where: str
    ) -> None:
        """Report the bad items of an array of primitives."""
        for index, item in enumerate(value):
            at = f"{where}[{index}]"
            if item is None:
                # null is allowed in an array of primitives only as a placeholder where the
                # `_name` array has the id/extensions (http://hl7.org/fhir/R4/json.html#primitive).
                companion = obj.get(f"_{name}")
                if type(companion) is not list or len(companion) <= index or not companion[index]:
                    self.add("structure", at, "null is not allowed")
            else:
                self.primitive(item, info, at)

    def primitive(self, value: Any, info: ElementInfo, where: str) -> None:
        """Report what is wrong, if anything, with one primitive value."""
        if value is None or type(value) is list:
            self.shape(value, info, where)
        elif type(value) not in info.accepts:
            self.add("value", where, f"{info.type} must be {_JSON_TYPE_NAMES[info.accepts]}")
        elif value == "":
            self.add("value", where, "empty strings are not allowed")
        elif type(value) is str and _CONTROL.search(value):
            # http://hl7.org/fhir/R4/datatypes.html#string: no characters below U+0020 but
            # tab, carriage return and line feed.
            self.add("value", where, "control characters are not allowed in strings")
        elif info.codes is not None and value not in info.codes:
            self.add("code-invalid", where, _not_in(repr(value), info))
        elif info.valid is not None and not info.valid(value):
            shown = repr(value) if len(str(value)) <= 80 else f"{str(value)[:80]!r}..."
            self.add(
                "value",
                where,
                f"{shown} is not a valid {info.type} ({_FORMATS.get(info.type, 'R4 format')})",
            )

    def value(self, value: Any, info: ElementInfo, where: str) -> None:
        """Walk one instance of a complex type (datatype, BackboneElement or resource)."""
        if type(value) is not dict:
            if value is None or type(value) is list:
                self.shape(value, info, where)
            else:
                self.add("structure", where, f"{info.type} must be a JSON object")
            return
        if not value:
            self.add("structure", where, "empty objects are not allowed")
            return
        type_ = info.type
        if type_ == "Resource":
            self.resource(value, where)
            return
        self.object(value, type_, where)
        if info.codings is not None:
            self.coded(value, info, where)
        elif type_ == "Reference":
            reference = value.get("reference")
            if type(reference) is str and reference:
                problem = syntax_problem(reference, _R4_RESOURCE_TYPES)
                if problem is not None:
                    self.add("value", f"{where}.reference", f"{reference!r}: {problem}")
        elif type_ == "Identifier" and value.get("system") == NHS_NUMBER_SYSTEM:
            number = value.get("value")
            if type(number) is not str or not is_valid_nhs_number(number):
                self.add(
                    "business-rule",
                    f"{where}.value",
                    f"{number!r} is not a valid NHS number (ten digits, modulus 11 check digit)",
                )

    def coded(self, value: dict[str, Any], info: ElementInfo, where: str) -> None:
        """A required binding on a Coding or CodeableConcept: the Coding, or one of the
        CodeableConcept's codings, must be in the value set (system and code)."""
        assert info.codings is not None
        codings = [value] if info.type == "Coding" else value.get("coding", [])
        if type(codings) is not list:
            return  # reported by the walk
        for coding in codings:
            if type(coding) is dict and (coding.get("system"), coding.get("code")) in info.codings:
                return
        self.add("code-invalid", where, _not_in("no coding", info))

    def unmodelled(self, obj: dict[str, Any], key: str, name: str, value: Any, path: str) -> None:
        """A property not in the element model: `resourceType`, a `_name` companion of a
        primitive, or an error."""
        if name == "resourceType" and key in RESOURCE_TYPES:
            return
        info = TYPES[key].get(name[1:]) if name.startswith("_") else None
        if info is None or not info.accepts or not info.extensible:
            self.add("structure", f"{path}.{name}", "unknown element")
            return
        where = f"{path}.{name[1:]}"
        if not info.is_list:
            self.companion(value, where)
        elif type(value) is not list:
            self.add("structure", where, f"{name} must be a JSON array")
        else:
            primitives = obj.get(name[1:])
            if primitives is not None and (
                type(primitives) is not list or len(primitives) != len(value)
            ):
                self.add("structure", where, f"{name} must align with {name[1:]}")
            for index, item in enumerate(value):
                if item is not None:
                    self.companion(item, f"{where}[{index}]")

    def companion(self, value: Any, where: str) -> None:
        """The id and extensions of a primitive (an Element)."""
        if type(value) is not dict or not value:
            self.add("structure", where, "a primitive's id/extension must be a JSON object")
        else:
            self.object(value, "Element", where)


def _not_in(what: str, info: ElementInfo) -> str:
    return f"{what} is not in the required value set {info.value_set}"


def _unknown_type(resource_type: str) -> str:
    reason = EXCLUDED_RESOURCE_TYPES.get(resource_type)
    if reason is not None:
        return f"resource type {resource_type} is not supported ({reason})"
    return f"unknown resource type {resource_type!r}"


def _extended(obj: dict[str, Any], companion: str) -> bool:
    """Whether the `_name` companion of a required primitive stands in for its value: an
    array (checked item by item), or an object with extensions
    (http://hl7.org/fhir/R4/json.html#primitive)."""
    value = obj.get(companion)
    if type(value) is list:
        return True
    return type(value) is dict and bool(value.get("extension"))


def validate_resource(resource: dict[str, Any]) -> None:
    """Raise InvalidResource listing every problem found in `resource`; return if valid."""
    walk = _Walk()
    walk.resource(resource, "")
    if walk.issues:
        issues = list(walk.issues.values())
        status = 422 if all(i.code in _UNPROCESSABLE for i in issues) else 400
        raise InvalidResource(issues=issues, status=status)
