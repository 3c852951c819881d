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
from decimal import Decimal
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
    split_top_level,
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
# both are pure, of text.
@lru_cache(maxsize=16384)
def date_range(text: str) -> tuple[datetime, datetime]:
    return _date_range(text)


@lru_cache(maxsize=16384)
def _literal(reference: str) -> LiteralReference | None:
    return parse_relative(reference)


# Numbers recur too (a height of 170 cm), and a quantity is indexed under several names
# (Observation's value-quantity and composites). Keyed by type and text, not value: 1.0 and
# 1.00 are equal but differ in precision, and so in range.
_RANGES: dict[tuple[type, str], tuple[Decimal, Decimal, Decimal]] = {}


def _number_range(number: Any) -> tuple[Decimal, Decimal, Decimal]:
    key = (type(number), str(number))
    found = _RANGES.get(key)
    if found is None:
        found = number_range(number)
        if len(_RANGES) >= 16384:
            _RANGES.clear()
        _RANGES[key] = found
    return found


# Rows are made by tuple.__new__, every field given: a named tuple's own __new__ (Python)
# costs twice as much, on tens of rows a resource.
_row = tuple.__new__


def _text(value: Any) -> str | None:
    return _normalise(value) if isinstance(value, str) else None


# --- string ----------------------------------------------------------------------------


def _string_row(param: str, text: Any, rows: Rows) -> None:
    if isinstance(text, str):
        rows.append(_row(StringRow, (param, _normalise(text), text)))


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
        rows.append(_row(TokenRow, (param, coding.get("system") or None, code, text or display)))
    if text is not None and display is not None and display != text:
        rows.append(_row(TokenRow, (param, None, None, display)))


def _identifier(param: str, value: dict[str, Any], rows: Rows, of_type: bool = True) -> None:
    code = value.get("value")
    type_ = value.get("type") or {}
    if code is None:  # nothing to match but its type's text (`:text`)
        if (text := _text(type_.get("text"))) is not None:
            rows.append(_row(TokenRow, (param, None, None, text)))
        return
    system, text = value.get("system") or None, _text(type_.get("text"))
    rows.append(_row(TokenRow, (param, system, code, text)))
    for coding in type_.get("coding", ()) if of_type else ():
        if coding.get("code") is not None:
            key = f"{coding['code']}|{code}"
            rows.append(
                _row(TokenRow, (f"{param}:of-type", coding.get("system") or None, key, None))
            )


def _token(param: str, value: Any, type_: str, rows: Rows) -> None:
    if type_ == "CodeableConcept":
        text, codings = _text(value.get("text")), value.get("coding", ())
        for coding in codings:
            _coding(param, coding, text, rows)
        if text is not None and not codings:
            rows.append(_row(TokenRow, (param, None, None, text)))
    elif type_ == "Coding":
        _coding(param, value, None, rows)
    elif type_ == "Identifier":
        _identifier(param, value, rows)
    elif type_ == "ContactPoint":
        if value.get("value") is not None:
            rows.append(_row(TokenRow, (param, None, value["value"], None)))
    elif type_ == "boolean":
        rows.append(_row(TokenRow, (param, None, "true" if value else "false", None)))
    elif type_ in _TOKEN_PRIMITIVES:
        rows.append(_row(TokenRow, (param, None, value, None)))


# --- date, number, quantity ------------------------------------------------------------


def _date(param: str, value: Any, type_: str, rows: Rows) -> None:
    if type_ in _DATES:
        rows.append(_row(DateRow, (param, *date_range(value))))
    elif type_ == "Period":
        start, end = value.get("start"), value.get("end")
        if start is not None or end is not None:
            low = MIN_INSTANT if start is None else date_range(start)[0]
            high = MAX_INSTANT if end is None else date_range(end)[1]
            rows.append(_row(DateRow, (param, low, high)))
    elif type_ == "Timing":
        rows += [_row(DateRow, (param, *date_range(event))) for event in value.get("event", ())]
        bounds = (value.get("repeat") or {}).get("boundsPeriod")
        if isinstance(bounds, dict):  # a schedule without events: its outer limits
            _date(param, bounds, "Period", rows)


def _number(param: str, value: Any, type_: str, rows: Rows) -> None:
    if type_ in _NUMBERS:
        rows.append(_row(NumberRow, (param, *_number_range(value))))


def _quantity(param: str, value: Any, type_: str, rows: Rows) -> None:
    amount = value.get("value")
    if amount is None:
        return
    if type_ == "Money":
        currency = value.get("currency")
        rows.append(_row(QuantityRow, (param, *_number_range(amount), ISO_4217, currency, None)))
    elif type_ in _QUANTITIES:
        system, code, unit = value.get("system"), value.get("code"), _text(value.get("unit"))
        rows.append(_row(QuantityRow, (param, *_number_range(amount), system, code, unit)))


# --- reference, uri --------------------------------------------------------------------


def _reference(param: str, value: Any, type_: str, rows: Rows) -> None:
    if type_ in _URIS:
        url, _, version = value.partition("|")
        rows.append(_row(ReferenceRow, (param, None, None, url, version or None)))
        return
    if type_ != "Reference":
        return
    reference = value.get("reference")
    if isinstance(reference, str) and not reference.startswith("#"):
        literal = _literal(reference)
        if literal is None:
            rows.append(_row(ReferenceRow, (param, None, None, reference, None)))
        else:
            rows.append(_row(ReferenceRow, (param, literal.resource_type, literal.id, None, None)))
    if isinstance(value.get("identifier"), dict):
        _identifier(f"{param}:identifier", value["identifier"], rows, of_type=False)


def _uri(param: str, value: Any, type_: str, rows: Rows) -> None:
    if type_ in _URIS:
        rows.append(_row(UriRow, (param, value)))


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


class _Composite:
    """Rows of a composite parameter, from the items its own expression selects.

    Per resource, `memo` keeps what composites share, per item: an earlier component's keys
    (Observation's eight composites share their `code` components) and the last component's
    rows, made once with an empty name and renamed for each combination of keys: converters
    name a row by the param they are given, or that and a suffix (`:of-type`)."""

    __slots__ = ("_earlier", "_last", "_made", "param")

    def __init__(self, param: SearchParam) -> None:
        *earlier, last = param.components
        self.param = param
        # Each earlier component and its key in `memo`, and that of the last one's rows.
        self._earlier = [(c, (c.type, c.expression, "keys")) for c in earlier]
        self._made = (last.type, last.expression, "rows")
        # Per type of item: the last component's accessor and converter (most of the
        # composites of a resource select nothing: Observation has one kind of value).
        self._last: dict[str, tuple[Accessor, Converter]] = {}

    def _last_of(self, focus_type: str) -> tuple[Accessor, Converter]:
        found = self._last.get(focus_type)
        if found is None:
            last = self.param.components[-1]
            convert = _converter(last.type, last.expression, focus_type)
            accessor = compile_expression(last.expression, self.param.resource_type, focus_type)
            found = self._last[focus_type] = (accessor, convert)
        return found

    def __call__(
        self, items: list[Item], resource: dict[str, Any], memo: dict[Any, list[Any]], rows: Rows
    ) -> None:
        code, resource_type = self.param.code, self.param.resource_type
        for item in items:
            focus = [item]
            accessor, convert = self._last_of(item[1])
            values = accessor(focus, resource)
            if not values:
                continue
            found = []
            for c, tag in self._earlier:
                key = (id(item[0]), tag)
                keys = memo.get(key)
                if keys is None:
                    selected = compile_expression(c.expression, resource_type, item[1])
                    keys = memo[key] = _keys(c, selected(focus, resource), item[1])
                found.append(keys)
            combinations = list(itertools.product(*found))
            if not combinations:
                continue
            key = (id(item[0]), self._made)
            made = memo.get(key)
            if made is None:
                made = memo[key] = []
                for value, type_ in values:
                    convert("", value, type_, made)
            for combination in combinations:
                name = "$".join((code, *combination))
                rows += [_row(type(row), (name + row.param, *row[1:])) for row in made]


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
            rows.append(_row(TokenRow, (param, systems[value], value, None)))
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
        if param.type == "composite":
            names = _composite_names(param.expression, param.components[-1], resource_type)
            composites.append((accessor, _Composite(param), names))
        else:
            names = _names(param.expression, resource_type)
            convert = _converter(param.type, param.expression, resource_type)
            simple.append((code, accessor, convert, names))
    return _Plan(tuple(simple), tuple(composites), found)


def _names(expression: str, resource_type: str) -> Names:
    """The names `_selected` goes by: root_names, with those in meta as `meta.{name}`."""
    names = root_names(expression, resource_type)
    if names is None or "meta" not in names:
        return names
    within = root_names(expression, resource_type, "meta")
    if within is None:  # not known: by meta itself
        return names
    return names - {"meta"} | {_IN_META, *(f"meta.{name}" for name in within)}


def _composite_names(expression: str, last: Component, resource_type: str) -> Names:
    """The names of a composite's branches; of a branch that selects the resource itself,
    those of its last component, which must select something for any row (an Observation
    has one kind of value, so most of its composites have none)."""
    names: set[str] = set()
    for branch in split_top_level(expression, "|"):
        found = _names(last.expression if branch == resource_type else branch, resource_type)
        if found is None:
            return None
        names |= found
    return frozenset(names)


def problems(resource_type: str) -> Mapping[str, str]:
    """Parameters of the type whose expression cannot be evaluated, with the reason."""
    return _plan(resource_type).problems


# Every stored resource has a meta (versionId, lastUpdated), in which the parameters on it
# (_profile, _tag, _security, _source) rarely find anything: they go by the names in it,
# as `meta.{name}`, or by _IN_META when meta is not an object (as in no valid resource).
_IN_META = "meta.*"


def _shape(resource: dict[str, Any]) -> tuple[str, ...]:
    """The names of the resource's elements, and of those in its meta (see _IN_META)."""
    meta = resource.get("meta")
    if meta is None:
        return tuple(resource)
    if type(meta) is not dict:
        return (*resource, _IN_META)
    return (*resource, *[f"meta.{name}" for name in meta])


@lru_cache(maxsize=4096)
def _selected(resource_type: str, present: tuple[str, ...]) -> _Plan:
    """The part of the type's plan that can select anything from a resource with the
    `present` names (its _shape), in plan order: the parameters with none of their root
    names there are left out. A type's resources have few shapes, so this is memoised."""
    plan = _plan(resource_type)
    names = frozenset(present)
    return _Plan(
        tuple(p for p in plan.simple if p[3] is None or not names.isdisjoint(p[3])),
        tuple(c for c in plan.composites if c[2] is None or not names.isdisjoint(c[2])),
        plan.problems,
    )


def index_rows(resource: dict[str, Any]) -> list[IndexRow]:
    """The de-duplicated index rows of every search parameter of the resource's type."""
    resource_type = resource["resourceType"]
    plan = _selected(resource_type, _shape(resource))
    focus = [(resource, resource_type)]
    rows: Rows = []
    for code, accessor, convert, _ in plan.simple:
        for value, type_ in accessor(focus, resource):
            convert(code, value, type_, rows)
    memo: dict[Any, list[Any]] = {}
    for accessor, composite, _ in plan.composites:
        composite(accessor(focus, resource), resource, memo, rows)
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
