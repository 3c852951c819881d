"""FHIR R4 definitions, precomputed at import into the lookups the validator walks with.

`r4` is generated (scripts/generate_fhir_definitions.py) and kept compact; this module
expands it once: `TYPES[type_key][json_name]` describes every JSON property of every
accepted resource, datatype and BackboneElement (keyed by its path, e.g. "Patient.contact"),
with the codes of its required binding when the ValueSet could be enumerated.
"""

from __future__ import annotations

import builtins
from decimal import Decimal
from typing import NamedTuple

from opengp.fhir.definitions.r4 import (
    ELEMENTS,
    EXCLUDED_RESOURCE_TYPES,
    FHIR_VERSION,
    OPEN_TYPES,
    PRIMITIVE_TYPES,
    R4B_DETACHED,
    REQUIRED_BINDINGS,
    RESOURCE_TYPES,
    UNCHECKED_BINDINGS,
    VALUE_SETS,
)

__all__ = [
    "DETACHED",
    "EXCLUDED_RESOURCE_TYPES",
    "FHIR_VERSION",
    "RESOURCE_TYPES",
    "TYPES",
    "UNCHECKED_BINDINGS",
    "ElementInfo",
]


# Python types a JSON parser gives for each JSON representation of a primitive; `type(v) in
# accepts` rejects True for an integer and "1" for a decimal (http://hl7.org/fhir/R4/json.html).
# Decimals may arrive as Decimal (opengp.fhir.jsonio keeps their precision) or float.
_ACCEPTS: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "decimal": (int, float, Decimal),
}


class ElementInfo(NamedTuple):
    """One JSON property. `accepts` holds the Python types allowed for a primitive and is
    empty for complex types, whose `type` is a datatype name, "Resource", or the path of a
    BackboneElement."""

    type: str
    is_list: bool
    accepts: tuple[builtins.type, ...]
    # False for FHIRPath System types (Resource.id, Element.id, Extension.url), which take
    # no `_name` companion.
    extensible: bool
    value_set: str | None  # the ValueSet of a checked required binding
    codes: frozenset[str] | None  # ... its codes, for code-like primitives
    codings: frozenset[tuple[str, str]] | None  # ... its (system, code)s, for Coding(s)


def _codes(url: str) -> frozenset[str]:
    return frozenset(code for codes in VALUE_SETS[url].values() for code in codes)


def _codings(url: str) -> frozenset[tuple[str, str]]:
    return frozenset((system, code) for system, codes in VALUE_SETS[url].items() for code in codes)


def _element(key: str, name: str, type_: str, is_list: bool, extensible: bool) -> ElementInfo:
    json = PRIMITIVE_TYPES.get(type_)
    accepts = () if json is None else _ACCEPTS[json]
    url = REQUIRED_BINDINGS.get(f"{key}.{name}")
    if url is None:
        return ElementInfo(type_, is_list, accepts, extensible, None, None, None)
    if accepts:
        return ElementInfo(type_, is_list, accepts, extensible, url, _codes(url), None)
    return ElementInfo(type_, is_list, accepts, extensible, url, None, _codings(url))


def _parse(key: str, done: dict[str, dict[str, ElementInfo]]) -> dict[str, ElementInfo]:
    """Expand one ELEMENTS entry (format described in r4.py)."""
    if key in done:
        return done[key]
    elements: dict[str, ElementInfo] = {}
    for token in ELEMENTS[key].split():
        if token.startswith("^"):
            base = _parse(token[1:], done)
            # Inherited elements re-keyed so bindings on them stay per owning type.
            for name, info in base.items():
                elements[name] = _element(key, name, info.type, info.is_list, info.extensible)
            continue
        name, type_ = token.split(":")
        if name.endswith("[x]"):
            choices = OPEN_TYPES if type_ == "@open" else tuple(type_.split("|"))
            for choice in choices:
                full = name[:-3] + choice[0].upper() + choice[1:]
                elements[full] = _element(key, full, choice, False, True)
            continue
        extensible = not type_.endswith("!")
        type_ = type_.rstrip("!")
        is_list = type_.endswith("*")
        elements[name] = _element(key, name, type_.rstrip("*"), is_list, extensible)
    done[key] = elements
    return elements


def _load() -> dict[str, dict[str, ElementInfo]]:
    done: dict[str, dict[str, ElementInfo]] = {}
    for key in ELEMENTS:
        _parse(key, done)
    return done


def _detached() -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for where, as_type in R4B_DETACHED.items():
        key, name = where.rsplit(".", 1)
        found.setdefault(key, {})[name] = as_type
    return found


TYPES: dict[str, dict[str, ElementInfo]] = _load()
# Type key -> JSON name -> R4 type, for R4 elements the R4B models lack (see r4.py).
DETACHED: dict[str, dict[str, str]] = _detached()
