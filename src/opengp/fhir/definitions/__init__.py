"""FHIR R4 definitions, precomputed at import into the lookups the validator walks with.

`r4` is generated (scripts/generate_fhir_definitions.py) and kept compact; this module
expands it once: `TYPES[type_key][json_name]` describes every JSON property of every
accepted resource, datatype and BackboneElement (keyed by its path, e.g. "Patient.contact"),
with the check of its primitive format and the codes of its required binding when the
ValueSet could be enumerated; `RULES[type_key]` holds its required elements and choices.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any, NamedTuple

from opengp.fhir.definitions.r4 import (
    ELEMENTS,
    EXCLUDED_RESOURCE_TYPES,
    FHIR_VERSION,
    OPEN_TYPES,
    PRIMITIVE_REGEXES,
    PRIMITIVE_TYPES,
    REQUIRED_BINDINGS,
    RESOURCE_TYPES,
    UNCHECKED_BINDINGS,
    VALUE_SETS,
)

__all__ = [
    "CHOICES",
    "EXCLUDED_RESOURCE_TYPES",
    "FHIR_VERSION",
    "FORMATS",
    "RESOURCE_TYPES",
    "RULES",
    "TYPES",
    "UNCHECKED_BINDINGS",
    "ElementInfo",
    "Rules",
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
    # For a primitive other than boolean, given a value of an accepted Python type: truthy
    # when the value has the type's format (FORMATS).
    valid: Callable[[Any], object] | None = None


class Rules(NamedTuple):
    """Cardinality and choices of one type key, for the elements present in a JSON object.

    Valid input costs one subset test and, with choices, one intersection: `required` holds
    the JSON names of required non-choice elements, which valid objects usually have as such
    (a required primitive may instead have only its `_name` companion with extensions);
    `choices` maps every JSON name of a choice element, `_name` companions of primitive
    choices included, to its base name (value for valueString); `choice_names` is its key
    set; `required_choices` the base names of required choices."""

    required: frozenset[str]
    choices: dict[str, str]
    choice_names: frozenset[str] | None
    required_choices: tuple[str, ...]


# --- primitive formats ------------------------------------------------------------------

# Characters a string may hold: none below U+0020 but tab, carriage return and line feed
# (http://hl7.org/fhir/R4/datatypes.html#string); FHIR JSON allows no empty strings.
_TEXT = "[^\x00-\x08\x0b\x0c\x0e-\x1f]"
# Types whose R4 regex (`[ \r\n\t\S]+`, an XML Schema regex) only says "not empty": read
# with Python's Unicode \s it would also forbid no-break spaces, which R4 allows. The other
# regexes are read with Python's Unicode \s: codes and URIs hold no no-break spaces either.
_FREE_TEXT = frozenset({"string", "markdown"})
# Value ranges of the integer types (http://hl7.org/fhir/R4/datatypes.html#integer): 32-bit.
_INTEGER_RANGES = {
    "integer": range(-(2**31), 2**31),
    "unsignedInt": range(0, 2**31),
    "positiveInt": range(1, 2**31),
}
# Days in each month of a non-leap year (index 1-12).
_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_WHITESPACE = re.compile(r"\s+")
_BASE64 = re.compile("[A-Za-z0-9+/]*={0,2}")


def _real_date(value: str) -> bool:
    """Whether the day of a YYYY-MM-DD... value (days 29-31 only) exists in its month."""
    year, month, day = int(value[:4]), int(value[5:7]), int(value[8:10])
    if month == 2:
        return day <= (29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28)
    return day <= _DAYS[month]


def _finite(value: Any) -> bool:
    """A decimal's JSON number: no NaN or infinity (the R4 decimal regex has digits only)."""
    if type(value) is int:
        return True
    if type(value) is float:
        return value - value == 0
    return bool(value.is_finite())


def _format(type_: str) -> Callable[[Any], object] | None:
    """The check of a primitive's format, given a value of an accepted Python type."""
    json = PRIMITIVE_TYPES[type_]
    if json == "boolean":
        return None  # true or false: the JSON type says it all
    if json == "integer":
        return _INTEGER_RANGES[type_].__contains__
    if json == "decimal":
        return _finite
    regex = None if type_ in _FREE_TEXT else PRIMITIVE_REGEXES.get(type_)
    if regex is None:
        return re.compile(f"{_TEXT}+").fullmatch
    match = re.compile(f"(?={_TEXT}+\\Z)(?:{regex})").fullmatch
    if type_ in ("date", "dateTime", "instant"):
        # Dates SHALL be valid dates (http://hl7.org/fhir/R4/datatypes.html#date): the regex
        # allows days up to 31 in every month.

        def valid_date(value: str) -> bool:
            return match(value) is not None and (
                len(value) < 10 or value[8:10] < "29" or _real_date(value)
            )

        return valid_date
    if type_ == "base64Binary":
        # RFC 4648 (http://hl7.org/fhir/R4/datatypes.html#base64Binary): the regex allows
        # padding anywhere in a group of four.

        def valid_base64(value: str) -> bool:
            return match(value) is not None and (
                _BASE64.fullmatch(_WHITESPACE.sub("", value)) is not None
            )

        return valid_base64
    return match


FORMATS: dict[str, Callable[[Any], object] | None] = {t: _format(t) for t in PRIMITIVE_TYPES}


def _codes(url: str) -> frozenset[str]:
    return frozenset(code for codes in VALUE_SETS[url].values() for code in codes)


def _codings(url: str) -> frozenset[tuple[str, str]]:
    return frozenset((system, code) for system, codes in VALUE_SETS[url].items() for code in codes)


def _element(key: str, name: str, type_: str, is_list: bool, extensible: bool) -> ElementInfo:
    json = PRIMITIVE_TYPES.get(type_)
    accepts = () if json is None else _ACCEPTS[json]
    valid = None if json is None else FORMATS[type_]
    url = REQUIRED_BINDINGS.get(f"{key}.{name}")
    if url is None:
        return ElementInfo(type_, is_list, accepts, extensible, None, None, None, valid)
    if accepts:
        return ElementInfo(type_, is_list, accepts, extensible, url, _codes(url), None, valid)
    return ElementInfo(type_, is_list, accepts, extensible, url, None, _codings(url), valid)


def _parse(
    key: str,
    done: dict[str, tuple[dict[str, ElementInfo], Rules]],
    done_choices: dict[str, dict[str, tuple[str, ...]]],
) -> None:
    """Expand one ELEMENTS entry (format described in r4.py) into its elements and rules."""
    if key in done:
        return
    elements: dict[str, ElementInfo] = {}
    required: set[str] = set()
    choices: dict[str, str] = {}
    required_choices: list[str] = []
    for token in ELEMENTS[key].split():
        if token.startswith("^"):
            _parse(token[1:], done, done_choices)
            base, rules = done[token[1:]]
            # Inherited elements re-keyed so bindings on them stay per owning type.
            for name, info in base.items():
                elements[name] = _element(key, name, info.type, info.is_list, info.extensible)
            required |= rules.required
            choices |= rules.choices
            required_choices += rules.required_choices
            continue
        is_required = token.endswith("+")
        name, type_ = token.rstrip("+").split(":")
        if name.endswith("[x]"):
            base_name = name[:-3]
            if is_required:
                required_choices.append(base_name)
            options = OPEN_TYPES if type_ == "@open" else tuple(type_.split("|"))
            done_choices.setdefault(key, {})[base_name] = options
            for choice in options:
                full = base_name + choice[0].upper() + choice[1:]
                elements[full] = info = _element(key, full, choice, False, True)
                choices[full] = base_name
                if info.accepts:
                    choices[f"_{full}"] = base_name
            continue
        extensible = not type_.endswith("!")
        type_ = type_.rstrip("!")
        is_list = type_.endswith("*")
        elements[name] = _element(key, name, type_.rstrip("*"), is_list, extensible)
        if is_required:
            required.add(name)
    rules = Rules(frozenset(required), choices, frozenset(choices) or None, tuple(required_choices))
    done[key] = (elements, rules)


def _load() -> tuple[
    dict[str, dict[str, ElementInfo]], dict[str, Rules], dict[str, dict[str, tuple[str, ...]]]
]:
    done: dict[str, tuple[dict[str, ElementInfo], Rules]] = {}
    choices: dict[str, dict[str, tuple[str, ...]]] = {}
    for key in ELEMENTS:
        _parse(key, done, choices)
    types = {key: elements for key, (elements, _) in done.items()}
    # Only types with something to check: most datatypes have neither.
    rules = {
        key: r
        for key, (_, r) in done.items()
        if r.required or r.choice_names is not None or r.required_choices
    }
    return types, rules, choices


TYPES: dict[str, dict[str, ElementInfo]]
# Type key -> its required elements and choices, for the types that have any.
RULES: dict[str, Rules]
# Type key -> choice element's base name (value) -> its types, of the type's own elements.
CHOICES: dict[str, dict[str, tuple[str, ...]]]
TYPES, RULES, CHOICES = _load()
