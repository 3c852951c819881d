"""Validation of every resource written: FHIR R4 JSON, structure, required bindings, UK Core.

`validate_resource` runs two passes and reports every problem found (up to MAX_ISSUES), each
naming its element as a FHIRPath (`Patient.identifier[0].value`):

1. One walk of the JSON with the R4 element model generated from the official definitions
   (opengp.fhir.definitions). It enforces what the fhir.resources models do not: the JSON
   rules of http://hl7.org/fhir/R4/json.html (no nulls, no empty strings, arrays or
   objects; booleans and numbers as JSON booleans and numbers, not strings); R4 (not R4B)
   element names and resource types; required bindings
   (http://hl7.org/fhir/R4/terminologies.html#required); Reference.reference syntax
   (http://hl7.org/fhir/R4/references.html); and the UK Core NHS number check digit.
2. The fhir.resources R4B pydantic model of the resource, for cardinality, required elements,
   choice exclusivity and primitive formats (dates, ids, ...). The generator accepts only
   resource types whose R4B model takes every R4 element (see r4.EXCLUDED_RESOURCE_TYPES).

Status is 400 for structural, datatype and reference-syntax problems; 422 when the only
problems are required bindings and business rules (http://hl7.org/fhir/R4/http.html#update).

False rejections of valid R4 by the R4B models, found by comparing the R4 definitions with
the models (scripts/generate_fhir_definitions.py) and confirmed on the official examples,
are worked around by taking those elements out before model validation and validating each
on its own against the R4B model of its type (r4.R4B_DETACHED):
- primitive extensions on Extension.value[x] (`"_valueString": {"extension": [...]}`): the
  R4B Extension model has no `_value[x]` fields, yet R4 allows them (47 official v2
  CodeSystem examples, e.g. CodeSystem-v2-0003, and Bundle-v2-valuesets have them);
- Extension.valueMeta and ElementDefinition.{defaultValue,fixed,pattern,example.value}Meta:
  Meta is an R4 open type (http://hl7.org/fhir/R4/datatypes.html#open) but not an R4B one.
The models' false acceptances are caught by the walk: "true" for a boolean, 2.0 for an
integer, "1.5" for a decimal, nulls and empty arrays/objects, R4B-only elements (e.g.
Extension.valueCodeableReference) and resource types (Citation, ...).

All 5,306 official examples (hl7.fhir.r4.examples@4.0.1) go through `validate_resource`;
the only ones rejected are genuinely invalid R4 or of a type OpenGP does not accept:
- Questionnaire-qs1: nested items without linkId (Questionnaire.item.linkId is 1..1);
- ten SearchParameter-{codesystem,valueset}-extensions-*: no base (1..*);
- CodeSystem-v2-0550 (and Bundle-v2-valuesets, which contains it): codes holding
  non-breaking spaces, which the `code` regex forbids;
- ImplementationGuide-fhir and ig-r4: no name or status (1..1), and a manifest reference to
  SearchParameter/questionnaireresponse-extensions-QuestionnaireResponse-item-subject, whose
  id is longer than the 64 characters an id allows;
- the 15 examples of the excluded types (r4.EXCLUDED_RESOURCE_TYPES).
No official example breaks a required binding or the reference syntax otherwise.
tests/unit/test_validation.py checks this whenever the package is unpacked.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from opengp.fhir.definitions import (
    DETACHED,
    EXCLUDED_RESOURCE_TYPES,
    RESOURCE_TYPES,
    TYPES,
    ElementInfo,
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


class _Walk:
    """State of one walk: issues by expression, and the elements to take out for R4B."""

    __slots__ = ("detached", "drop", "issues")

    def __init__(self) -> None:
        self.issues: dict[str, Issue] = {}
        # id(parent object) -> names to remove before model validation
        self.drop: dict[int, set[str]] = {}
        # (FHIRPath, R4 type, value) validated separately against the R4B models
        self.detached: list[tuple[str, str, Any]] = []

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
                codes = info.codes
                if not info.is_list:
                    if (
                        type(value) not in accepts
                        or value == ""
                        or (codes is not None and value not in codes)
                        or (type(value) is str and _CONTROL.search(value))
                    ):
                        self.primitive(value, info, f"{path}.{name}")
                elif type(value) is not list or not value:
                    self.shape(value, info, f"{path}.{name}")
                else:
                    for item in value:
                        if (
                            type(item) not in accepts
                            or item == ""
                            or (codes is not None and item not in codes)
                            or (type(item) is str and _CONTROL.search(item))
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
        detach = DETACHED.get(key)
        if detach is not None:
            for name in obj.keys() & detach.keys():
                self.drop.setdefault(id(obj), set()).add(name)
                self.detached.append((f"{path}.{name.lstrip('_')}", detach[name], obj[name]))

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


# pydantic error types -> issue codes; anything else is a bad value.
_ERROR_CODES = {
    "missing": "required",
    "model_field_validation.missing": "required",
    "extra_forbidden": "structure",
    "list_type": "structure",
    "model_type": "structure",
    "dict_type": "structure",
}


def _fhirpath(path: str, loc: tuple[int | str, ...], unknown: bool = False) -> str:
    """('name', 0, '_given', 1) under Patient -> Patient.name[0].given[1]: a `_given`
    companion holds the id/extensions of `given`, so FHIRPath names it `given`, unless
    `unknown` says the last name is itself the problem."""
    parts = [path]
    last = len(loc) - 1
    for index, part in enumerate(loc):
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(f".{part if unknown and index == last else part.lstrip('_')}")
    return "".join(parts)


def _without(node: Any, drop: dict[int, set[str]]) -> Any:
    """A copy of `node` without the properties `drop` names (by id of their object)."""
    if isinstance(node, dict):
        names = drop.get(id(node), ())
        return {k: _without(v, drop) for k, v in node.items() if k not in names}
    if isinstance(node, list):
        return [_without(item, drop) for item in node]
    return node


def _model_check(walk: _Walk, model_name: str, value: Any, path: str) -> None:
    try:
        get_fhir_model_class(model_name).model_validate(value)
    except ValidationError as error:
        reported = tuple(walk.issues)
        for e in error.errors(include_url=False):
            where = _fhirpath(path, e["loc"], unknown=e["type"] == "extra_forbidden")
            # The model only repeats the walk below an element the walk rejected, and about
            # an array whose item (a null) the walk rejected.
            if not any(
                where.startswith((f"{r}.", f"{r}[")) or r.startswith(f"{where}[") for r in reported
            ):
                walk.add(_ERROR_CODES.get(e["type"], "value"), where, e["msg"])
    except Exception as error:  # the models fail with KeyError etc. on some bad input
        # Nested data the walk already rejected (e.g. an unknown contained resourceType)
        # can break the model itself; only a failure on data the walk accepted is news.
        if not walk.issues:
            walk.add("exception", path, f"could not validate: {error!r}")


def validate_resource(resource: dict[str, Any]) -> None:
    """Raise InvalidResource listing every problem found in `resource`; return if valid."""
    walk = _Walk()
    walk.resource(resource, "")
    resource_type = resource.get("resourceType") if type(resource) is dict else None
    if type(resource_type) is str and resource_type in RESOURCE_TYPES:
        target = _without(resource, walk.drop) if walk.drop else resource
        _model_check(walk, resource_type, target, resource_type)
        for path, as_type, value in walk.detached:
            model_name = "FHIRPrimitiveExtension" if as_type == "Element" else as_type
            _model_check(walk, model_name, value, path)
    if walk.issues:
        issues = list(walk.issues.values())
        status = 422 if all(i.code in _UNPROCESSABLE for i in issues) else 400
        raise InvalidResource(issues=issues, status=status)
