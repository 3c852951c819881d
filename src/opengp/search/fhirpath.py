"""Evaluate search parameter expressions (FHIRPath) over a resource's JSON, fast.

Indexing runs on every write, so the expressions of the R4 search parameters are compiled
once into plain Python: almost all are paths (`Patient.name.given`), choice elements
(`Observation.effective` means effectiveDateTime, effectivePeriod, ...), type filters
(`(Observation.value as Quantity)`, `value.as(Quantity)`, `.ofType(T)`), indexing
(`Bundle.entry[0]`), `.where(resolve() is Patient)` on references and `.where(system='phone')`
style equality filters, joined with `|`. Whatever else (of the types OpenGP stores, only
Patient `deceased`: `Patient.deceased.exists() and Patient.deceased != false`) is evaluated
by the FHIRPath engine fhirpathpy; `fallback_reason` says which and why.

Every value comes with its FHIR type (an `Item`), which the indexer needs to turn it into
index rows: from the R4 element model (opengp.fhir.definitions: Patient.name is HumanName,
Patient.birthDate is date), from the JSON name of a choice element (valueQuantity is a
Quantity), or a resource's `resourceType`. Backbone elements are typed by their path
(`Observation.component`), as in the element model.

Two rewrites make the R4 expressions evaluable, by both the compiler and fhirpathpy:
- `(X as T)` is read as `X.ofType(T)`, and `X.as(T)` likewise: `as` demands a single item
  (http://hl7.org/fhirpath/N1/#as-type-specifier), yet the R4 expressions apply it to lists
  (`(Observation.component.value as Quantity)`), meaning "those that are a T". Type names
  written in FHIRPath System style (`as(DateTime)` in Observation code-value-date) are read
  as the FHIR primitive (dateTime).
- `resolve()` cannot fetch anything here; it types a reference by its text, which is all
  `resolve() is Patient` needs: `Patient/123` and `https://x/fhir/Patient/123` are Patients.
  Contained (`#id`) and logical (`urn:uuid:`) references resolve to nothing.

fhirpathpy keeps its type model in a class attribute that it sets on each evaluation; every
call here sets the same R4 model, so concurrent evaluations do not disturb each other.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any

import fhirpathpy
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models

from opengp.fhir.definitions import CHOICES, TYPES
from opengp.fhir.definitions.r4 import PRIMITIVE_TYPES
from opengp.fhir.references import parse_relative

__all__ = [
    "Accessor",
    "FhirPathError",
    "Item",
    "compile_expression",
    "fallback_reason",
    "reference_type",
    "rewrite",
    "root_names",
    "selected_types",
]

Item = tuple[Any, str]  # a value from the JSON and its FHIR type
# (focus items, the resource) -> the items the expression selects from the focus.
Accessor = Callable[[list[Item], dict[str, Any]], list[Item]]
# A step of a path: an accessor too (of the resource only a branch's start reads), so that
# a one-step expression, the commonest, is its step.
_Step = Accessor
_Lane = tuple[str, str]  # (JSON name, FHIR type) of an element


class FhirPathError(ValueError):
    """An expression that neither the compiler nor fhirpathpy can evaluate."""


class _Unsupported(Exception):
    """The compiler does not handle this expression (fhirpathpy will)."""


# Specialisations among FHIR datatypes (http://hl7.org/fhir/R4/datatypes.html): an Age is a
# Quantity, a canonical a uri, so `ofType(Quantity)` keeps Ages, as FHIRPath requires.
_SUBTYPES = {
    "Quantity": {"Age", "Count", "Distance", "Duration", "MoneyQuantity", "SimpleQuantity"},
    "uri": {"canonical", "oid", "url", "uuid"},
    "string": {"code", "id", "markdown"},
    "integer": {"positiveInt", "unsignedInt"},
}


def _is_a(type_: str, target: str) -> bool:
    return type_ == target or type_ in _SUBTYPES.get(target, ())


# --- rewriting -------------------------------------------------------------------------

_AS_OPERATOR = re.compile(r"\(\s*([^()|]+?)\s+as\s+([A-Za-z]+)\s*\)")
_TYPE_FUNCTION = re.compile(r"\.(?:as|ofType)\(\s*([A-Za-z]+)\s*\)")


def _fhir_type(name: str) -> str:
    """`DateTime` (a FHIRPath System type) read as the FHIR primitive `dateTime`."""
    lowered = name[:1].lower() + name[1:]
    if name not in PRIMITIVE_TYPES and name not in TYPES and lowered in PRIMITIVE_TYPES:
        return lowered
    return name


def rewrite(expression: str) -> str:
    """The expression with `(X as T)` and `X.as(T)` as `X.ofType(T)` (see the module doc)."""
    previous = None
    while previous != expression:
        previous, expression = expression, _AS_OPERATOR.sub(r"\1.ofType(\2)", expression)
    return _TYPE_FUNCTION.sub(lambda m: f".ofType({_fhir_type(m[1])})", expression)


def split_top_level(expression: str, separator: str) -> list[str]:
    """The parts of `expression` between `separator`s outside (), [] and quotes."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, char in enumerate(expression):
        if char == "'":
            quoted = not quoted
        elif quoted:
            continue
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == separator and depth == 0:
            parts.append(expression[start:i].strip())
            start = i + 1
    parts.append(expression[start:].strip())
    return parts


# --- references ------------------------------------------------------------------------

_ABSOLUTE_TAIL = re.compile(
    r".*/(?P<type>[A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[A-Za-z0-9\-.]{1,64})?"
)


def reference_type(reference: object) -> str | None:
    """The resource type a Reference.reference names (`Patient/1`, `http://x/Patient/1`)."""
    return _reference_type(reference) if isinstance(reference, str) else None


@lru_cache(maxsize=16384)  # resources refer to the same patients and practitioners
def _reference_type(reference: str) -> str | None:
    literal = parse_relative(reference)
    if literal is not None:
        return literal.resource_type
    if "://" in reference and (m := _ABSOLUTE_TAIL.fullmatch(reference)):
        return m["type"]
    return None


# --- the compiler ----------------------------------------------------------------------

_NAME = re.compile(r"([A-Za-z][A-Za-z0-9]*)(?:\[([0-9]+)\])?")
_OF_TYPE = re.compile(r"ofType\(([A-Za-z]+)\)")
_RESOLVE_IS = re.compile(r"where\(\s*resolve\(\)\s+is\s+([A-Za-z]+)\s*\)")
_EQUALS = re.compile(r"where\(\s*([a-z][A-Za-z]*)\s*=\s*'([^'\\]*)'\s*\)")


@dataclass(frozen=True, slots=True)
class _Child:
    """Step to an element: per type of the items, the lanes to read (one per choice type)."""

    lanes: dict[str, tuple[_Lane, ...]]


@dataclass(frozen=True, slots=True)
class _OfType:
    types: frozenset[str]  # the item types kept


@dataclass(frozen=True, slots=True)
class _ResolvesTo:
    type: str  # `where(resolve() is T)`


@dataclass(frozen=True, slots=True)
class _Equals:
    name: str  # `where(name = 'literal')`
    literal: str


@dataclass(frozen=True, slots=True)
class _Index:
    n: int


_Op = _Child | _OfType | _ResolvesTo | _Equals | _Index


def _lanes(type_: str, name: str) -> tuple[_Lane, ...]:
    element = TYPES.get(type_, {}).get(name)
    if element is not None:
        return ((name, element.type),)
    options = CHOICES.get(type_, {}).get(name)
    if options is None:
        raise _Unsupported(f"{type_} has no element {name!r}")
    return tuple((name + t[0].upper() + t[1:], t) for t in options)


def _parse_branch(
    branch: str, resource_type: str, focus_type: str
) -> tuple[bool, list[_Op], frozenset[str]]:
    """(starts from the resource, not the focus; the steps; the types of what it selects)
    of one `|` branch."""
    segments = split_top_level(branch, ".")
    from_root = segments[0] == "%resource"
    types = frozenset({resource_type if from_root else focus_type})
    if from_root:
        segments = segments[1:]
    elif segments[0][:1].isupper():
        # A leading type name selects the resource searched (`Patient.name`, `Resource.id`).
        if segments[0] not in (resource_type, "Resource", "DomainResource"):
            raise _Unsupported(f"{segments[0]!r} is not the resource searched")
        if focus_type != resource_type:
            raise _Unsupported(f"{segments[0]!r} applied to a {focus_type}")
        segments = segments[1:]
    steps: list[_Op] = []
    for segment in segments:
        if "Resource" in types:
            raise _Unsupported("a path into a resource of unknown type")
        if m := _OF_TYPE.fullmatch(segment):
            target = m[1]
            keep = frozenset(t for t in types if _is_a(t, target))
            if not keep:
                raise _Unsupported(f"nothing selected by {branch!r} can be a {target}")
            if steps and isinstance(last := steps[-1], _Child):  # read only those lanes
                lanes = {
                    k: tuple(ln for ln in v if _is_a(ln[1], target)) for k, v in last.lanes.items()
                }
                steps[-1] = _Child(lanes)
            else:
                steps.append(_OfType(keep))
            types = keep
        elif m := _RESOLVE_IS.fullmatch(segment):
            if types != {"Reference"}:
                raise _Unsupported("resolve() of something other than a Reference")
            steps.append(_ResolvesTo(m[1]))
        elif m := _EQUALS.fullmatch(segment):
            name, literal = m[1], m[2]
            if any(name not in TYPES.get(t, {}) for t in types):
                raise _Unsupported(f"{segment!r}: no element {name!r} to compare")
            steps.append(_Equals(name, literal))
        elif m := _NAME.fullmatch(segment):
            child = _Child({t: _lanes(t, m[1]) for t in types})
            steps.append(child)
            types = frozenset(ln[1] for found in child.lanes.values() for ln in found)
            if m[2] is not None:
                steps.append(_Index(int(m[2])))
        else:
            raise _Unsupported(f"{segment!r} is not a path step the compiler knows")
    return from_root, steps, types


def _child_step(lanes: dict[str, tuple[_Lane, ...]]) -> _Step:
    """Each item's value (or values) under the lanes' JSON names, typed; a contained
    resource (element type Resource) is typed by its resourceType."""

    def step(items: list[Item], _resource: dict[str, Any]) -> list[Item]:
        out: list[Item] = []
        for value, item_type in items:
            for key, type_ in lanes[item_type]:
                found = value.get(key)
                if found is None:
                    continue
                for v in found if type(found) is list else (found,):
                    if v is not None:
                        out.append((v, v["resourceType"] if type_ == "Resource" else type_))
        return out

    if len(lanes) != 1 or len(next(iter(lanes.values()))) != 1:
        return step
    (((key, type_),),) = lanes.values()
    if type_ == "Resource":
        return step

    def one_lane(items: list[Item], _resource: dict[str, Any]) -> list[Item]:  # the common case
        out: list[Item] = []
        for value, _ in items:
            found = value.get(key)
            if found is None:
                continue
            if type(found) is list:
                out += [(v, type_) for v in found if v is not None]
            else:
                out.append((found, type_))
        return out

    return one_lane


def _build(op: _Op) -> _Step:
    if isinstance(op, _Child):
        return _child_step(op.lanes)
    if isinstance(op, _OfType):
        types = op.types
        return lambda items, _: [i for i in items if i[1] in types]
    if isinstance(op, _ResolvesTo):
        target = op.type
        return lambda items, _: [
            i for i in items if reference_type(i[0].get("reference")) == target
        ]
    if isinstance(op, _Equals):
        name, literal = op.name, op.literal
        return lambda items, _: [i for i in items if i[0].get(name) == literal]
    n = op.n
    return lambda items, _: items[n : n + 1]


def _compile_branch(branch: str, resource_type: str, focus_type: str) -> Accessor:
    from_root, parsed, _ = _parse_branch(branch, resource_type, focus_type)
    steps = [_build(s) for s in parsed]
    # Most expressions are one or two steps from the focus (`Observation.code`,
    # `Observation.subject.where(resolve() is Patient)`): those without the loop below.
    if not from_root and len(steps) == 1:
        return steps[0]
    if not from_root and len(steps) == 2:
        first, second = steps

        def two(items: list[Item], resource: dict[str, Any]) -> list[Item]:
            items = first(items, resource)
            return second(items, resource) if items else items

        return two

    def run(items: list[Item], resource: dict[str, Any]) -> list[Item]:
        if from_root:
            items = [(resource, resource_type)]
        for step in steps:
            if not items:
                break
            items = step(items, resource)
        return items

    return run


def _compile(expression: str, resource_type: str, focus_type: str) -> Accessor:
    branches = [
        _compile_branch(b, resource_type, focus_type)
        for b in split_top_level(rewrite(expression), "|")
    ]
    if len(branches) == 1:
        return branches[0]

    def union(items: list[Item], resource: dict[str, Any]) -> list[Item]:
        out: list[Item] = []
        for branch in branches:
            out += branch(items, resource)
        return out

    return union


# --- fhirpathpy, for the rest -----------------------------------------------------------

_R4 = models["r4"]
_SYSTEM_TYPES = {"Boolean": "boolean", "String": "string", "Integer": "integer"}
_SYSTEM_TYPES |= {"Decimal": "decimal", "Date": "date", "DateTime": "dateTime"}
_PYTHON_TYPES = {bool: "boolean", str: "string", int: "integer", Decimal: "decimal"}


def _node(data: Any, type_: str) -> Any:
    """An fhirpathpy node: the value with its type, or its element path for a backbone."""
    return ResourceNode(data, type_)  # type: ignore[no-untyped-call]


def _resolve(references: Sequence[Any]) -> list[Any]:
    """fhirpathpy `resolve()`: a stand-in resource of the type each reference names."""
    found = []
    for reference in references:
        type_ = reference_type(reference.get("reference")) if isinstance(reference, dict) else None
        if type_ is not None:
            found.append(_node({"resourceType": type_}, type_))
    return found


_OPTIONS = {
    "returnRawData": True,
    "userInvocationTable": {"resolve": {"fn": _resolve, "arity": {0: []}}},
}


def _typed(found: Any) -> Item | None:
    """An fhirpathpy result as an Item: nodes carry their type (or element path)."""
    if not isinstance(found, ResourceNode):
        type_ = _PYTHON_TYPES.get(type(found), "decimal" if isinstance(found, float) else "")
        return (found, type_) if type_ else None
    data, path = found.data, found.path or ""
    if isinstance(data, dict) and "resourceType" in data:
        return data, data["resourceType"]
    if path.startswith("System."):
        return data, _SYSTEM_TYPES.get(path[7:], path)
    declared = _R4["path2Type"].get(path, path)
    return data, path if declared in ("BackboneElement", "Element") else declared


def _fallback(expression: str, resource_type: str, focus_type: str) -> Accessor:
    """fhirpathpy's evaluation of each `|` branch (fhirpathpy forgets the types of what a
    union selects). A leading `Resource.` is named as the resource's own type, as
    fhirpathpy only matches the latter."""
    evaluators = []
    for branch in split_top_level(rewrite(expression), "|"):
        for base in ("Resource.", "DomainResource."):
            if branch.startswith(base) and focus_type == resource_type:
                branch = resource_type + branch[len(base) - 1 :]
        try:
            evaluators.append(fhirpathpy.compile(branch, model=_R4, options=_OPTIONS))
        except Exception as exc:  # fhirpathpy raises bare Exceptions for syntax errors
            raise FhirPathError(f"{expression!r} cannot be parsed: {exc}") from None

    def run(items: list[Item], resource: dict[str, Any]) -> list[Item]:
        out: list[Item] = []
        context = {"resource": resource, "rootResource": resource}
        for value, type_ in items:
            # A resource goes in as it is: fhirpathpy matches a leading type name
            # (`Patient.deceased`) only against a plain resource's resourceType.
            is_resource = isinstance(value, dict) and "resourceType" in value
            node = value if is_resource else _node(value, type_)
            for evaluate in evaluators:
                try:
                    found = evaluate(node, context)
                except Exception as exc:
                    raise FhirPathError(f"{expression!r} on a {focus_type}: {exc}") from None
                out += [item for result in found if (item := _typed(result)) is not None]
        return out

    return run


# --- entry points ----------------------------------------------------------------------


@cache
def compile_expression(expression: str, resource_type: str, focus_type: str = "") -> Accessor:
    """The accessor of `expression` over items of `focus_type` (default: the resource),
    compiled to plain Python when it can be, else evaluated by fhirpathpy.

    Raises FhirPathError when even fhirpathpy cannot parse it."""
    focus_type = focus_type or resource_type
    try:
        return _compile(expression, resource_type, focus_type)
    except _Unsupported:
        return _fallback(expression, resource_type, focus_type)


@cache
def root_names(expression: str, resource_type: str, within: str = "") -> frozenset[str] | None:
    """The JSON names a compiled expression over the resource first reads, one of which a
    resource must have for it to select anything (`Observation.value as Quantity`: the
    valueQuantity); None when that is not known (evaluated by fhirpathpy, or a branch that
    starts elsewhere than at an element of the resource). Indexing skips the parameters
    whose names a resource lacks: most of any type's parameters, in any one resource.

    With `within`, a name the expression first reads: the names its branches that start
    there read next, in that element (`Resource.meta.profile` within meta: profile)."""
    names: set[str] = set()
    for branch in split_top_level(rewrite(expression), "|"):
        try:
            _, steps, _ = _parse_branch(branch, resource_type, resource_type)
        except _Unsupported:
            return None
        if not steps or not isinstance(steps[0], _Child):
            return None
        first = [key for key, _ in steps[0].lanes.get(resource_type, ())]
        if not within:
            names.update(first)
        elif within in first:
            if first != [within] or len(steps) < 2 or not isinstance(steps[1], _Child):
                return None
            names.update(key for lanes in steps[1].lanes.values() for key, _ in lanes)
    return frozenset(names)


def selected_types(expression: str, resource_type: str, focus_type: str = "") -> frozenset[str]:
    """The FHIR types of what a compiled expression can select ("Resource": any resource).

    Raises ValueError for an expression left to fhirpathpy (see fallback_reason)."""
    found: set[str] = set()
    for branch in split_top_level(rewrite(expression), "|"):
        try:
            found |= _parse_branch(branch, resource_type, focus_type or resource_type)[2]
        except _Unsupported as reason:
            raise ValueError(f"{expression!r} is not compiled: {reason}") from None
    return frozenset(found)


@cache
def fallback_reason(expression: str, resource_type: str, focus_type: str = "") -> str | None:
    """Why `expression` is left to fhirpathpy, or None when it is compiled."""
    try:
        _compile(expression, resource_type, focus_type or resource_type)
    except _Unsupported as reason:
        return str(reason)
    return None
