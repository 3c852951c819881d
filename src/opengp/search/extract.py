"""The search index rows of a resource: every search parameter of its type, evaluated.

`index_rows(resource)` runs on every write, so each type's parameters are turned once into
a plan (compiled accessor + converter per parameter, see fhirpath.py) and the plan is
memoised. Values become rows by parameter kind, as http://hl7.org/fhir/R4/search.html
defines matching for each FHIR type:

- string: string/markdown (and other text primitives) as one row; HumanName one row each
  for family, given, prefix, suffix and text; Address each line, city, district, state,
  postalCode, country and text. `value` is normalised, `exact` as written.
- token: Coding (system, code, display); CodeableConcept each coding, with the concept's
  text (else the coding's display) as `text`, and rows with code None carrying any other
  text (the concept's text when it has no coding, displays overridden by it), so `:text`
  can match all of them; Identifier (system, value, type.text; without a value, its
  type.text only), plus `{code}:of-type` rows (type system, `{type code}|{value}`);
  ContactPoint (None, value); boolean ("true", "false"); code/string/id/uri primitives
  (None, value).
- date: date/dateTime/instant by their implied range (ranges.date_range, England time
  for dates without a zone); Period from start to end (open ends: MIN_/MAX_INSTANT); each
  Timing.event, and Timing.repeat.boundsPeriod as a Period (R4: a Timing's outer limits).
- number: decimal/integer by significant figures (ranges.number_range).
- quantity: Quantity and its kinds (Age, Duration, ...) as value/system/code/unit; Money
  with system urn:iso:std:iso:4217 and the currency as code.
- reference: `Type/id` (history dropped) as target type and id; an absolute URL or URN
  as url; canonical and uri values as url and |version. Reference.identifier also gives a
  `{code}:identifier` token row. Contained references (`#id`) give nothing.
- uri: uri/url/canonical/oid/uuid.
- composite: for each item the composite selects, the rows of its last component, named
  `{code}${key}` where key joins (with `$`) one key per earlier component taken from the
  same item, every combination: for a token `system|code` (`|code` without a system) and
  also `*|code` for "any system"; for a reference `Type/id` (or the URL); for a string its
  normalised value; for a number its value; for a uri the uri.

Not indexed here: `_id` and `_lastUpdated` (columns of the resource table), special
parameters (`_text`, `_content`, `near`: full text and geography are indexed elsewhere),
parameters without an expression (`_query`, `_filter`). SKIPPED lists, per kind, the FHIR
types that R4 expressions select but that have no row of that kind (e.g. Range for
quantity, Reference for token, Age for date); anything else unknown is skipped too.
Expressions that cannot be evaluated are left out of the plan and listed by `problems`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from typing import Any

from opengp.fhir.definitions import TYPES
from opengp.fhir.definitions.r4 import REQUIRED_BINDINGS, VALUE_SETS
from opengp.fhir.references import LiteralReference, parse_relative
from opengp.search.definitions.r4 import COMPARTMENTS
from opengp.search.fhirpath import (
    Accessor,
    FhirPathError,
    Item,
    compile_expression,
    root_names,
)
from opengp.search.model import (
    Component,
    DateRow,
    IndexRow,
    NumberRow,
    QuantityRow,
    ReferenceRow,
    SearchParam,
    StringRow,
    TokenRow,
    UriRow,
    normalise,
)
from opengp.search.ranges import MAX_INSTANT, MIN_INSTANT, number_range
from opengp.search.ranges import date_range as _date_range
from opengp.search.registry import params_for

__all__ = ["CONVERTED", "SKIPPED", "index_rows", "problems"]

Rows = list[IndexRow]
# (param, value, FHIR type, rows to append to)
Converter = Callable[[str, Any, str, Rows], None]

_NOT_INDEXED = frozenset({"_id", "_lastUpdated"})
_TEXTS = frozenset({"string", "markdown", "code", "id", "uri", "url", "canonical", "oid", "uuid"})
_TOKEN_PRIMITIVES = _TEXTS - {"markdown"}
_DATES = frozenset({"date", "dateTime", "instant"})
_NUMBERS = frozenset({"decimal", "integer", "positiveInt", "unsignedInt"})
_QUANTITIES = frozenset(
    {"Quantity", "Age", "Count", "Distance", "Duration", "MoneyQuantity", "SimpleQuantity"}
)
_URIS = frozenset({"uri", "url", "canonical", "oid", "uuid"})
_PARTS = {
    "HumanName": ("family", "given", "prefix", "suffix", "text"),
    "Address": ("line", "city", "district", "state", "postalCode", "country", "text"),
}
ISO_4217 = "urn:iso:std:iso:4217"


@lru_cache(maxsize=65536)  # codes' displays, units and names recur
def _normalise(text: str) -> str:
    """model.normalise, with a shortcut for ASCII text (most codes' displays and names),
    where decomposing and dropping accents change nothing: a third of indexing time."""
    return " ".join(text.lower().split()) if text.isascii() else normalise(text)


# A practice's resources name the same patients, practitioners and days over and over:
# both are pure, of text (numbers are not memoised: 1.0 and 1.00 are equal keys).
@lru_cache(maxsize=16384)
def date_range(text: str) -> tuple[datetime, datetime]:
    return _date_range(text)


@lru_cache(maxsize=16384)
def _literal(reference: str) -> LiteralReference | None:
    return parse_relative(reference)


def _text(value: Any) -> str | None:
    return _normalise(value) if isinstance(value, str) else None


# --- string ----------------------------------------------------------------------------


def _string_row(param: str, text: Any, rows: Rows) -> None:
    if isinstance(text, str):
        rows.append(StringRow(param, _normalise(text), text))


def _string(param: str, value: Any, type_: str, rows: Rows) -> None:
    if type_ in _TEXTS:
        _string_row(param, value, rows)
        return
    for part in _PARTS.get(type_, ()):
        found = value.get(part)
        for text in found if isinstance(found, list) else (found,):
            _string_row(param, text, rows)


# --- token -----------------------------------------------------------------------------


def _coding(param: str, coding: dict[str, Any], text: str | None, rows: Rows) -> None:
    code, display = coding.get("code"), _text(coding.get("display"))
    if code is not None or display is not None:
        rows.append(TokenRow(param, coding.get("system") or None, code, text or display))
    if text is not None and display is not None and display != text:
        rows.append(TokenRow(param, None, None, display))


def _identifier(param: str, value: dict[str, Any], rows: Rows, of_type: bool = True) -> None:
    code = value.get("value")
    type_ = value.get("type") or {}
    if code is None:  # nothing to match but its type's text (`:text`)
        if (text := _text(type_.get("text"))) is not None:
            rows.append(TokenRow(param, None, None, text))
        return
    rows.append(TokenRow(param, value.get("system") or None, code, _text(type_.get("text"))))
    for coding in type_.get("coding", ()) if of_type else ():
        if coding.get("code") is not None:
            key = f"{coding['code']}|{code}"
            rows.append(TokenRow(f"{param}:of-type", coding.get("system") or None, key, None))


def _token(param: str, value: Any, type_: str, rows: Rows) -> None:
    if type_ == "CodeableConcept":
        text, codings = _text(value.get("text")), value.get("coding", ())
        for coding in codings:
            _coding(param, coding, text, rows)
        if text is not None and not codings:
            rows.append(TokenRow(param, None, None, text))
    elif type_ == "Coding":
        _coding(param, value, None, rows)
    elif type_ == "Identifier":
        _identifier(param, value, rows)
    elif type_ == "ContactPoint":
        if value.get("value") is not None:
            rows.append(TokenRow(param, None, value["value"], None))
    elif type_ == "boolean":
        rows.append(TokenRow(param, None, "true" if value else "false", None))
    elif type_ in _TOKEN_PRIMITIVES:
        rows.append(TokenRow(param, None, value, None))


# --- date, number, quantity ------------------------------------------------------------


def _date(param: str, value: Any, type_: str, rows: Rows) -> None:
    if type_ in _DATES:
        rows.append(DateRow(param, *date_range(value)))
    elif type_ == "Period":
        start, end = value.get("start"), value.get("end")
        if start is not None or end is not None:
            low = MIN_INSTANT if start is None else date_range(start)[0]
            high = MAX_INSTANT if end is None else date_range(end)[1]
            rows.append(DateRow(param, low, high))
    elif type_ == "Timing":
        rows += [DateRow(param, *date_range(event)) for event in value.get("event", ())]
        bounds = (value.get("repeat") or {}).get("boundsPeriod")
        if isinstance(bounds, dict):  # a schedule without events: its outer limits
            _date(param, bounds, "Period", rows)


def _number(param: str, value: Any, type_: str, rows: Rows) -> None:
    if type_ in _NUMBERS:
        rows.append(NumberRow(param, *number_range(value)))


def _quantity(param: str, value: Any, type_: str, rows: Rows) -> None:
    amount = value.get("value")
    if amount is None:
        return
    if type_ == "Money":
        currency = value.get("currency")
        rows.append(QuantityRow(param, *number_range(amount), ISO_4217, currency, None))
    elif type_ in _QUANTITIES:
        system, code, unit = value.get("system"), value.get("code"), _text(value.get("unit"))
        rows.append(QuantityRow(param, *number_range(amount), system, code, unit))


# --- reference, uri --------------------------------------------------------------------


def _reference(param: str, value: Any, type_: str, rows: Rows) -> None:
    if type_ in _URIS:
        url, _, version = value.partition("|")
        rows.append(ReferenceRow(param, None, None, url, version or None))
        return
    if type_ != "Reference":
        return
    reference = value.get("reference")
    if isinstance(reference, str) and not reference.startswith("#"):
        literal = _literal(reference)
        if literal is None:
            rows.append(ReferenceRow(param, None, None, reference))
        else:
            rows.append(ReferenceRow(param, literal.resource_type, literal.id, None))
    if isinstance(value.get("identifier"), dict):
        _identifier(f"{param}:identifier", value["identifier"], rows, of_type=False)


def _uri(param: str, value: Any, type_: str, rows: Rows) -> None:
    if type_ in _URIS:
        rows.append(UriRow(param, value))


CONVERTERS: dict[str, Converter] = {
    "string": _string,
    "token": _token,
    "date": _date,
    "number": _number,
    "quantity": _quantity,
    "reference": _reference,
    "uri": _uri,
}
# The FHIR types each kind turns into rows...
CONVERTED: Mapping[str, frozenset[str]] = {
    "string": _TEXTS | _PARTS.keys(),
    "token": _TOKEN_PRIMITIVES
    | {"CodeableConcept", "Coding", "Identifier", "ContactPoint", "boolean"},
    "date": _DATES | {"Period", "Timing"},
    "number": _NUMBERS,
    "quantity": _QUANTITIES | {"Money"},
    "reference": _URIS | {"Reference"},
    "uri": _URIS,
}
# ... and those R4 expressions select that have no row of that kind (see the module doc).
SKIPPED: Mapping[str, frozenset[str]] = {
    "string": frozenset(),
    "token": frozenset({"Reference", "Quantity", "Range"}),
    "date": frozenset({"Age", "Range", "string"}),
    "number": frozenset({"Range"}),
    "quantity": frozenset({"Range", "SampledData"}),
    # Resource: Bundle composition/message select the first entry's resource itself.
    "reference": frozenset({"Attachment", "Resource"}),
    "uri": frozenset(),
}


# --- composite -------------------------------------------------------------------------


def _keys(component: Component, values: list[Item], focus_type: str) -> list[str]:
    """The keys by which an earlier component of a composite is matched: its rows (made
    with an empty param name, so that auxiliary rows such as `:of-type` stand out), keyed."""
    rows: Rows = []
    convert = _converter(component.type, component.expression, focus_type)
    for value, type_ in values:
        convert("", value, type_, rows)
    keys: list[str] = []
    for row in rows:
        if row.param:
            continue
        if isinstance(row, TokenRow) and row.code is not None:
            keys += [f"{row.system or ''}|{row.code}", f"*|{row.code}"]
        elif isinstance(row, ReferenceRow):
            local = row.target_type is not None
            keys.append(f"{row.target_type}/{row.target_id}" if local else str(row.url))
        elif isinstance(row, StringRow):
            keys.append(row.value)
        elif isinstance(row, NumberRow):
            keys.append(str(row.value))
        elif isinstance(row, UriRow):
            keys.append(row.uri)
    return list(dict.fromkeys(keys))


@dataclass(frozen=True, slots=True)
class _Composite:
    """Rows of a composite parameter, from the items its own expression selects. `keys`
    memoises an earlier component's keys per item for one resource: Observation's eleven
    composites share their `code` components."""

    param: SearchParam

    def __call__(
        self, items: list[Item], resource: dict[str, Any], keys: dict[Any, list[str]], rows: Rows
    ) -> None:
        *earlier, last = self.param.components
        resource_type = self.param.resource_type
        for item in items:
            focus = [item]
            convert = _converter(last.type, last.expression, item[1])
            values = compile_expression(last.expression, resource_type, item[1])(focus, resource)
            if not values:
                continue
            found = []
            for c in earlier:
                memo = (id(item[0]), c.type, c.expression)
                if memo not in keys:
                    selected = compile_expression(c.expression, resource_type, item[1])
                    keys[memo] = _keys(c, selected(focus, resource), item[1])
                found.append(keys[memo])
            for combination in itertools.product(*found):
                name = "$".join((self.param.code, *combination))
                for value, type_ in values:
                    convert(name, value, type_, rows)


# --- plans -----------------------------------------------------------------------------


@cache
def _converter(kind: str, expression: str, focus_type: str) -> Converter:
    """How values of a parameter (or a composite's component) of `kind` become rows: bound
    codes of a token get their code system (see _code_systems)."""
    if kind == "token" and (systems := _code_systems(expression, focus_type)):
        return _coded(systems)
    return CONVERTERS[kind]


# The JSON names of the resource an accessor starts from (None: not known, always run).
Names = frozenset[str] | None


@dataclass(frozen=True, slots=True)
class _Plan:
    """A type's indexable parameters (code, accessor, converter, root names) and its
    composites (accessor, composite, root names)."""

    simple: tuple[tuple[str, Accessor, Converter, Names], ...]
    composites: tuple[tuple[Accessor, _Composite, Names], ...]
    problems: Mapping[str, str]


@cache
def _code_systems(expression: str, focus_type: str) -> dict[str, str]:
    """code -> its code system, for a `code` element bound (required) to a value set:
    `Patient.gender` holds "male", which is http://hl7.org/fhir/administrative-gender|male.
    Each path is followed through the element model from `focus_type`, so that
    `Patient.address.use` finds the binding of Address.use, and a composite's `code` that
    of its item's type (DocumentReference.relatesTo.code)."""
    systems: dict[str, str] = {}
    for branch in expression.split("|"):
        owner: str | None = focus_type
        names = branch.strip().split(".")
        if names[0] in (focus_type, "Resource", "DomainResource"):
            names = names[1:]
        for name in names[:-1]:
            element = TYPES.get(owner or "", {}).get(name)
            owner = None if element is None else element.type
        value_set = REQUIRED_BINDINGS.get(f"{owner}.{names[-1]}") if owner and names else None
        for system, codes in VALUE_SETS.get(value_set or "", {}).items():
            systems.update(dict.fromkeys(codes, system))
    return systems


def _coded(systems: dict[str, str]) -> Converter:
    def convert(param: str, value: Any, type_: str, rows: Rows) -> None:
        if type_ == "code" and value in systems:
            rows.append(TokenRow(param, systems[value], value, None))
        else:
            _token(param, value, type_, rows)

    return convert


@cache
def _plan(resource_type: str) -> _Plan:
    simple, composites, found = [], [], {}
    for code, param in params_for(resource_type).items():
        indexed = param.type == "composite" or param.type in CONVERTERS
        if param.expression is None or code in _NOT_INDEXED or not indexed:
            continue
        try:
            accessor = compile_expression(param.expression, resource_type)
        except FhirPathError as exc:
            found[code] = str(exc)
            continue
        names = root_names(param.expression, resource_type)
        if param.type == "composite":
            composites.append((accessor, _Composite(param), names))
        else:
            convert = _converter(param.type, param.expression, resource_type)
            simple.append((code, accessor, convert, names))
    return _Plan(tuple(simple), tuple(composites), found)


def problems(resource_type: str) -> Mapping[str, str]:
    """Parameters of the type whose expression cannot be evaluated, with the reason."""
    return _plan(resource_type).problems


def index_rows(resource: dict[str, Any]) -> list[IndexRow]:
    """The de-duplicated index rows of every search parameter of the resource's type."""
    resource_type = resource["resourceType"]
    plan = _plan(resource_type)
    focus = [(resource, resource_type)]
    present = resource.keys()
    rows: Rows = []
    for code, accessor, convert, names in plan.simple:
        if names is None or not present.isdisjoint(names):
            for value, type_ in accessor(focus, resource):
                convert(code, value, type_, rows)
    keys: dict[Any, list[str]] = {}
    for accessor, composite, names in plan.composites:
        if names is None or not present.isdisjoint(names):
            composite(accessor(focus, resource), resource, keys, rows)
    return list(dict.fromkeys(rows))


def compartment_owners(resource: dict[str, Any], compartment: str) -> list[str]:
    """Ids of the `compartment` resources (e.g. Patients) whose compartment holds this
    resource, by the CompartmentDefinition's parameters: whose record it is in."""
    resource_type = resource["resourceType"]
    if resource_type == compartment:
        return [resource["id"]] if isinstance(resource.get("id"), str) else []
    codes = COMPARTMENTS.get(compartment, {}).get(resource_type, ())
    focus = [(resource, resource_type)]
    rows: Rows = []
    for code, accessor, convert, _ in _plan(resource_type).simple:
        if code in codes:
            for value, type_ in accessor(focus, resource):
                convert(code, value, type_, rows)
    owners = (
        row.target_id
        for row in rows
        if isinstance(row, ReferenceRow) and row.target_type == compartment and row.target_id
    )
    return list(dict.fromkeys(owners))
