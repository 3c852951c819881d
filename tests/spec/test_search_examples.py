"""Search over the official R4 examples agrees with R4, on SQLite and PostgreSQL.

The examples of every resource type OpenGP stores are loaded into the store, once per
database (all of each GP type; at most PER_TYPE of each conformance type). For every search
parameter of those types, search values are derived from the examples themselves (every
code, name, date, number, reference and URI they hold, at most PER_PARAM per parameter),
and for each value the ids the store finds are compared with the ids an independent
reference expects. The reference evaluates each parameter's ORIGINAL FHIRPath expression
with the FHIRPath engine fhirpathpy (the fallback path of opengp.search.fhirpath, never the
compiled accessors the indexer uses) and applies R4 matching
(http://hl7.org/fhir/R4/search.html) written out here, per parameter type, from the spec
rather than from the indexer:

- token: `system|code`, `code`, `|code` (no system) and `system|` against each Coding
  (of a CodeableConcept too), Identifier (system, value), ContactPoint (value, no system),
  boolean (true/false) and code/string/id/uri primitive (no system, except a code with a
  required binding: the code system of its value set, from the element model); `:text`
  is a normalised starts-with on CodeableConcept.text, Coding.display, Identifier.type.text;
- string: the value normalised (case, accents, spaces: opengp.search.model.normalise)
  starts with the query normalised, on each string primitive and each part of a HumanName
  or Address; `:exact` is equality as written;
- date: prefixes.matches_range on ranges.date_range of both sides; a Period spans its
  start to its end (open ends unbounded); a Timing its outer limits (events and
  repeat.boundsPeriod);
- number and quantity: prefixes.matches_range on ranges.number_range of both sides, plus
  the system and code of a Quantity (the currency of a Money, urn:iso:std:iso:4217);
- reference: a relative `Type/id` reference (history ignored), or a relative canonical,
  equals the query's type and id; a canonical or absolute reference its URL (and
  `|version`); contained (`#id`) ones match nothing; `:identifier` is Reference.identifier;
- uri: equality;
- composite: one item the composite selects matches every component.

Every mismatch of a type is reported at once, as (type, param, value, expected only, found
only). Parameters the reference and the store may legitimately disagree on are listed in
EXCLUSIONS, with the reason; docs/search-conformance.md has the numbers and the list.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from opengp.fhir import jsonio
from opengp.fhir.definitions import RESOURCE_TYPES, TYPES
from opengp.fhir.definitions.r4 import REQUIRED_BINDINGS, VALUE_SETS
from opengp.fhir.errors import BadRequest
from opengp.search.fhirpath import Accessor, Item, _fallback, rewrite, split_top_level
from opengp.search.model import SearchParam, normalise
from opengp.search.prefixes import Prefix, matches_range
from opengp.search.query import parse_query
from opengp.search.ranges import MAX_INSTANT, MIN_INSTANT, date_range, number_range
from opengp.search.registry import params_for
from opengp.store.migrate import upgrade
from opengp.store.sql import SqlStore
from opengp.store.sql.dialects import make_engine
from tests.conftest import _empty as empty
from tests.fhir_packages import package_dir

EXAMPLES = package_dir("hl7.fhir.r4.examples")
pytestmark = pytest.mark.skipif(EXAMPLES is None, reason="hl7.fhir.r4.examples not unpacked")

# The types a GP system uses: each must have examples loaded and parameters tested.
GP_TYPES = [
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Location",
    "HealthcareService",
    "Observation",
    "Condition",
    "MedicationRequest",
    "MedicationStatement",
    "Medication",
    "AllergyIntolerance",
    "Immunization",
    "Procedure",
    "Encounter",
    "EpisodeOfCare",
    "Appointment",
    "Slot",
    "Schedule",
    "ServiceRequest",
    "DocumentReference",
    "DiagnosticReport",
    "RelatedPerson",
    "Consent",
    "Flag",
    "CarePlan",
    "Composition",
    "List",
    "Group",
    "Provenance",
    "Task",
    "Communication",
    "QuestionnaireResponse",
]
# Aggregates of the conformance resources (1-35 MB each) are not examples of one resource.
AGGREGATE_LIMIT = 1_000_000
# Examples loaded per type, at most: the conformance types have hundreds to a thousand
# (SearchParameter, ValueSet, CodeSystem, StructureDefinition); a spread of them is kept.
PER_TYPE = 100
# Query values compared per parameter, at most: a spread of those the examples give.
PER_PARAM = 32
MAX_ID = 64
_NOT_TESTED = frozenset({"_id", "_lastUpdated"})  # resource columns, not index rows

# (type, parameter): why the store is not held to the reference for it.
_NUMBER_KEYS = (
    "a composite with a number component before the last (variant-start, window-start): "
    "the indexer keys such components by their exact value, but the query compiler accepts "
    "only codes, references and strings before the last component, and refuses the search"
)
EXCLUSIONS: dict[tuple[str, str], str] = {
    ("MolecularSequence", "chromosome-variant-coordinate"): _NUMBER_KEYS,
    ("MolecularSequence", "chromosome-window-coordinate"): _NUMBER_KEYS,
    ("MolecularSequence", "referenceseqid-variant-coordinate"): _NUMBER_KEYS,
    ("MolecularSequence", "referenceseqid-window-coordinate"): _NUMBER_KEYS,
}

Predicate = Callable[[Item], bool]


# --- the examples ----------------------------------------------------------------------


@dataclass(frozen=True)
class Examples:
    by_type: dict[str, list[dict[str, Any]]]  # type -> examples loaded, by id
    skipped: dict[str, list[str]]  # why -> files


def _spread(items: Sequence[Any], n: int) -> list[Any]:
    """At most n of items, evenly spread, always the same ones."""
    if len(items) <= n:
        return list(items)
    return [items[i * len(items) // n] for i in range(n)]


@cache
def examples() -> Examples:
    assert EXAMPLES is not None
    found: dict[str, dict[str, dict[str, Any]]] = {}
    skipped: dict[str, list[str]] = {}
    for path in sorted(EXAMPLES.glob("*.json")):
        if path.name == "package.json" or path.stat().st_size > AGGREGATE_LIMIT:
            continue
        body = jsonio.loads(path.read_bytes())
        resource_type, id_ = body.get("resourceType"), body.get("id")
        if resource_type not in RESOURCE_TYPES:
            continue
        if not isinstance(id_, str) or len(id_) > MAX_ID:
            skipped.setdefault("id missing or longer than 64 characters", []).append(path.name)
        elif id_ in found.setdefault(resource_type, {}):
            skipped.setdefault("duplicate id", []).append(path.name)
        else:
            found[resource_type][id_] = body
    by_type = {t: _spread([b for _, b in sorted(f.items())], PER_TYPE) for t, f in found.items()}
    return Examples(by_type, skipped)


# --- what each parameter selects, by fhirpathpy -----------------------------------------


@cache
def _accessor(branch: str, resource_type: str, focus_type: str) -> Accessor:
    return _fallback(branch, resource_type, focus_type)


_PATH = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:\.[a-z][A-Za-z0-9]*)*")


@cache
def _implicit_systems(branch: str, resource_type: str, focus_type: str) -> dict[str, str]:
    """code -> its code system, when `branch` is a path to a `code` element with a required
    binding: R4 gives such codes the system of the value set (`Patient.gender` holds
    http://hl7.org/fhir/administrative-gender|male). From the element model, not extract."""
    if not _PATH.fullmatch(branch):
        return {}
    owner, *names = branch.split(".")
    if owner not in (resource_type, "Resource", "DomainResource"):
        names, owner = [owner, *names], focus_type
    for name in names[:-1]:
        element = TYPES.get(owner, {}).get(name)
        if element is None:
            return {}
        owner = element.type
    value_set = REQUIRED_BINDINGS.get(f"{owner}.{names[-1]}", "")
    return {
        code: system for system, codes in VALUE_SETS.get(value_set, {}).items() for code in codes
    }


def _evaluate(
    expression: str, kind: str, resource_type: str, focus: Item, resource: dict[str, Any]
) -> list[Item]:
    """The ORIGINAL expression evaluated by fhirpathpy (with the `as` rewriting and the
    reference-typing `resolve()` of opengp.search.fhirpath), not the compiled accessor.
    For a token, a bound code is returned as the Coding it stands for."""
    found: list[Item] = []
    for branch in split_top_level(rewrite(expression), "|"):
        items = _accessor(branch, resource_type, focus[1])([focus], resource)
        systems = _implicit_systems(branch, resource_type, focus[1]) if kind == "token" else {}
        found += [
            ({"system": systems[v], "code": v}, "Coding")
            if t == "code" and v in systems
            else (v, t)
            for v, t in items
        ]
    return found


# What a parameter selects in one resource: per item its expression selects, the items of
# each component (a simple parameter: the item itself, as its one component).
Selection = list[list[list[Item]]]


def _select(param: SearchParam, resource: dict[str, Any]) -> Selection:
    assert param.expression is not None
    resource_type = resource["resourceType"]
    root = (resource, resource_type)
    items = _evaluate(param.expression, param.type, resource_type, root, resource)
    if param.type != "composite":
        return [[[item]] for item in items]
    return [
        [_evaluate(c.expression, c.type, resource_type, item, resource) for c in param.components]
        for item in items
    ]


# --- R4 matching, per parameter type ------------------------------------------------------

_RELATIVE = re.compile(
    r"(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?"
)
_QUANTITIES = frozenset(
    {"Quantity", "Age", "Count", "Distance", "Duration", "MoneyQuantity", "SimpleQuantity"}
)
_URIS = frozenset({"uri", "url", "canonical", "oid", "uuid"})
_STRINGS = frozenset({"string", "markdown", "code", "id"}) | _URIS
_NAME_PARTS = {
    "HumanName": ("family", "given", "prefix", "suffix", "text"),
    "Address": ("line", "city", "district", "state", "postalCode", "country", "text"),
}


def _tokens(item: Item) -> list[tuple[str | None, str]]:
    """(system, code) of a token value; the system None when it has none."""
    value, type_ = item
    if type_ == "CodeableConcept":
        codings = value.get("coding", [])
    elif type_ == "Coding":
        codings = [value]
    elif type_ == "Identifier":
        codings = [{"system": value.get("system"), "code": value.get("value")}]
    elif type_ == "ContactPoint":
        codings = [{"code": value.get("value")}]
    elif type_ == "boolean":
        return [(None, "true" if value else "false")]
    elif type_ in _STRINGS and isinstance(value, str):
        return [(None, value)]
    else:
        return []
    return [(c.get("system") or None, c["code"]) for c in codings if c.get("code")]


def _texts(item: Item) -> list[str]:
    """What token :text searches: CodeableConcept.text, Coding.display, Identifier.type.text."""
    value, type_ = item
    if type_ == "CodeableConcept":
        found = [value.get("text"), *(c.get("display") for c in value.get("coding", []))]
    elif type_ == "Coding":
        found = [value.get("display")]
    elif type_ == "Identifier":
        found = [value.get("type", {}).get("text")]
    else:
        return []
    return [t for t in found if isinstance(t, str)]


def _strings(item: Item) -> list[str]:
    value, type_ = item
    if type_ in _STRINGS and isinstance(value, str):
        return [value]
    found: list[str] = []
    for part in _NAME_PARTS.get(type_, ()):
        got = value.get(part)
        found += [s for s in (got if isinstance(got, list) else [got]) if isinstance(s, str)]
    return found


def _period(value: dict[str, Any]) -> tuple[datetime, datetime] | None:
    start, end = value.get("start"), value.get("end")
    if start is None and end is None:
        return None
    low = MIN_INSTANT if start is None else date_range(start)[0]
    high = MAX_INSTANT if end is None else date_range(end)[1]
    return low, high


def _date_ranges(item: Item) -> list[tuple[datetime, datetime]]:
    value, type_ = item
    found: list[tuple[datetime, datetime] | None] = []
    if type_ in ("date", "dateTime", "instant"):
        found = [date_range(value)]
    elif type_ == "Period":
        found = [_period(value)]
    elif type_ == "Timing":  # "only the outer limits matter" (R4 search.html#date)
        ranges = [date_range(e) for e in value.get("event", [])]
        bounds = value.get("repeat", {}).get("boundsPeriod")
        ranges += [r for r in [_period(bounds)] if r is not None] if bounds else []
        if ranges:
            found = [(min(r[0] for r in ranges), max(r[1] for r in ranges))]
    return [r for r in found if r is not None]


def _quantities(item: Item) -> list[tuple[Decimal, str | None, str | None, str | None]]:
    """(value, system, code, unit) of a quantity value."""
    value, type_ = item
    if type_ in _QUANTITIES and value.get("value") is not None:
        return [(value["value"], value.get("system"), value.get("code"), value.get("unit"))]
    if type_ == "Money" and value.get("value") is not None:
        return [(value["value"], "urn:iso:std:iso:4217", value.get("currency"), None)]
    return []


def _numbers(item: Item) -> list[Decimal | int]:
    value, type_ = item
    if type_ in ("decimal", "integer", "positiveInt", "unsignedInt") and not isinstance(
        value, bool
    ):
        return [value]
    return []


def _references(item: Item) -> list[tuple[str, str] | str]:
    """A local reference as (type, id); a canonical or absolute one as its text."""
    value, type_ = item
    if type_ in _URIS and isinstance(value, str):
        if value.startswith("#"):
            return []  # a contained resource: not searchable
        if m := _RELATIVE.fullmatch(value.partition("|")[0]):
            return [(m["type"], m["id"]), value]  # a relative canonical
        return [value]
    if type_ == "Reference" and isinstance(value.get("reference"), str):
        reference = value["reference"]
        if m := _RELATIVE.fullmatch(reference):
            return [(m["type"], m["id"])]
        if ":" in reference:
            return [reference]
    return []


def _uris(item: Item) -> list[str]:
    value, type_ = item
    return [value] if type_ in _URIS and isinstance(value, str) else []


# --- query values, derived from what the examples hold -------------------------------------


@dataclass(frozen=True)
class Probe:
    """One query value and, per component (one for a simple parameter), what R4 says a
    selected item must be to match it."""

    modifier: str  # "" or e.g. ":exact"
    text: str  # as written in the query (escaped)
    accepts: tuple[Predicate, ...]

    def matches(self, selection: Selection) -> bool:
        return any(
            all(
                any(accept(x) for x in items)
                for accept, items in zip(self.accepts, parts, strict=True)
            )
            for parts in selection
        )


def _escape(text: str) -> str:
    return re.sub(r"([\\,$|])", r"\\\1", text)


def _printable(text: str) -> bool:
    return bool(text) and not any(ord(c) < 32 or ord(c) == 127 for c in text)


Derived = tuple[str, str, Predicate]  # (modifier, query text, predicate)


def _token_probe(system: str | None, code: str | None) -> Derived:
    def accept(item: Item) -> bool:
        return any(
            (code is None or c == code)
            and (system is None or (s is None if system == "" else s == system))
            for s, c in _tokens(item)
        )

    written = _escape(code or "") if system is None else f"{_escape(system)}|{_escape(code or '')}"
    return "", written, accept


def _text_probe(query: str) -> Derived:
    wanted = normalise(query)

    def accept(item: Item) -> bool:
        return any(normalise(t).startswith(wanted) for t in _texts(item))

    return ":text", _escape(query), accept


def _derive_token(item: Item, *, component: bool = False) -> list[Derived]:
    out = []
    for system, code in _tokens(item):
        if not _printable(code) or (system is not None and not _printable(system)):
            continue
        out.append(_token_probe(system or "", code))
        out.append(_token_probe(None, code))
        if system is not None:
            out.append(_token_probe(system, None))
    if not component:
        out += [_text_probe(_prefix(t)) for t in _texts(item) if _printable(t) and t.strip()]
    return out


def _prefix(text: str) -> str:
    return text[: max(3, len(text) // 2)]


def _string_probe(query: str, exact: bool) -> Derived:
    wanted = normalise(query)

    def accept(item: Item) -> bool:
        if exact:
            return any(s == query for s in _strings(item))
        return any(normalise(s).startswith(wanted) for s in _strings(item))

    return (":exact" if exact else ""), _escape(query), accept


def _derive_string(item: Item, *, component: bool = False) -> list[Derived]:
    out = []
    for value in _strings(item):
        if not _printable(value) or not value.strip():
            continue
        if component:
            out.append(_string_probe(value, exact=False))
            continue
        out.append(_string_probe(_prefix(value), exact=False))
        out.append(_string_probe(value, exact=True))
    return out


def _range_probe(
    kind: str, prefix: Prefix, written: str, ranges: Callable[[Item], Sequence[tuple[Any, Any]]]
) -> Derived:
    low, high = date_range(written) if kind == "date" else number_range(written)[1:]

    def accept(item: Item) -> bool:
        return any(matches_range(prefix, low, high, *r) for r in ranges(item))

    return "", f"{prefix}{_escape(written)}", accept


def _written_dates(item: Item) -> list[str]:
    value, type_ = item
    if type_ in ("date", "dateTime", "instant"):
        return [value]
    if type_ == "Period":
        return [value[k] for k in ("start", "end") if k in value]
    if type_ == "Timing":
        bounds = value.get("repeat", {}).get("boundsPeriod", {})
        return [*value.get("event", []), *(bounds[k] for k in ("start", "end") if k in bounds)]
    return []


def _derive_date(item: Item, *, component: bool = False) -> list[Derived]:
    prefixes: tuple[Prefix, ...] = ("eq",) if component else ("eq", "ge", "lt")
    return [
        _range_probe("date", prefix, written, _date_ranges)
        for written in _written_dates(item)
        for prefix in prefixes
    ]


def _number_ranges(item: Item) -> list[tuple[Decimal, Decimal]]:
    return [number_range(n)[1:] for n in _numbers(item)]


def _derive_number(item: Item, *, component: bool = False) -> list[Derived]:
    prefixes: tuple[Prefix, ...] = ("eq",) if component else ("eq", "gt")
    return [
        _range_probe("number", prefix, str(n), _number_ranges)
        for n in _numbers(item)
        for prefix in prefixes
    ]


def _quantity_probe(prefix: Prefix, number: str, system: str | None, code: str | None) -> Derived:
    low, high = number_range(number)[1:]

    def accept(item: Item) -> bool:
        return any(
            matches_range(prefix, low, high, *number_range(v)[1:])
            and (code is None or (s == system and c == code))
            for v, s, c, _ in _quantities(item)
        )

    unit = "" if code is None else f"|{_escape(system or '')}|{_escape(code)}"
    return "", f"{prefix}{number}{unit}", accept


def _derive_quantity(item: Item, *, component: bool = False) -> list[Derived]:
    out = []
    for value, system, code, _ in _quantities(item):
        number = str(value)
        if system and code and _printable(system) and _printable(code):
            out.append(_quantity_probe("eq", number, system, code))
        if not component:
            out += [_quantity_probe("eq", number, None, None)]
            out += [_quantity_probe("gt", number, None, None)]
    return out


def _reference_probe(target: tuple[str, str] | str) -> Derived:
    if isinstance(target, tuple):
        written = "/".join(target)

        def accept(item: Item) -> bool:
            return target in _references(item)

        return "", written, accept
    url, _, version = target.partition("|")

    def accept_url(item: Item) -> bool:
        for found in _references(item):
            if isinstance(found, str):
                found_url, _, found_version = found.partition("|")
                if found_url == url and (not version or found_version == version):
                    return True
        return False

    return "", _escape(url) + (f"|{_escape(version)}" if version else ""), accept_url


def _identifier_probe(system: str | None, value: str) -> Derived:
    def accept(item: Item) -> bool:
        found, type_ = item
        identifier = found.get("identifier") if type_ == "Reference" else None
        return (
            isinstance(identifier, dict)
            and identifier.get("value") == value
            and (system is None or (identifier.get("system") or "") == system)
        )

    written = _escape(value) if system is None else f"{_escape(system)}|{_escape(value)}"
    return ":identifier", written, accept


def _derive_reference(param: SearchParam) -> Callable[..., list[Derived]]:
    def derive(item: Item, *, component: bool = False) -> list[Derived]:
        out = []
        value, type_ = item
        identifier = value.get("identifier") if type_ == "Reference" else None
        if not component and isinstance(identifier, dict):
            system, code = identifier.get("system"), identifier.get("value")
            if isinstance(code, str) and _printable(code):
                out.append(_identifier_probe(None, code))
                if isinstance(system, str) and _printable(system):
                    out.append(_identifier_probe(system, code))
        for target in _references(item):
            if isinstance(target, tuple):
                if param.targets and target[0] not in param.targets:
                    continue  # not a type this parameter refers to: the query is refused
                out.append(_reference_probe(target))
            elif ":" in target and _printable(target) and " " not in target:
                out.append(_reference_probe(target))
                if "|" in target:
                    out.append(_reference_probe(target.partition("|")[0]))
        return out

    return derive


def _derive_uri(item: Item, *, component: bool = False) -> list[Derived]:
    def probe(uri: str) -> Derived:
        return "", _escape(uri), lambda other: uri in _uris(other)

    return [probe(uri) for uri in _uris(item) if _printable(uri) and " " not in uri]


def _deriver(kind: str, param: SearchParam) -> Callable[..., list[Derived]]:
    derivers: dict[str, Callable[..., list[Derived]]] = {
        "token": _derive_token,
        "string": _derive_string,
        "date": _derive_date,
        "number": _derive_number,
        "quantity": _derive_quantity,
        "reference": _derive_reference(param),
        "uri": _derive_uri,
    }
    return derivers[kind]


def _probes(param: SearchParam, selections: Sequence[Selection]) -> list[Probe]:
    """Every query value the selections give, de-duplicated, in a stable order."""
    found: dict[tuple[str, str], Probe] = {}
    if param.type != "composite":
        derive = _deriver(param.type, param)
        for selection in selections:
            for ((item,),) in selection:
                for modifier, written, accept in derive(item):
                    found.setdefault((modifier, written), Probe(modifier, written, (accept,)))
        return list(found.values())
    for selection in selections:
        for parts in selection:
            options = [
                [d for item in items for d in _deriver(c.type, param)(item, component=True)]
                for c, items in zip(param.components, parts, strict=True)
            ]
            # The first two values of each component: e.g. `system|code` and `code`.
            for combination in itertools.product(*(o[:2] for o in options)):
                written = "$".join(d[1] for d in combination)
                accepts = tuple(d[2] for d in combination)
                found.setdefault(("", written), Probe("", written, accepts))
    return list(found.values())


# --- the cases: each parameter's probes and the ids R4 expects ------------------------------


@dataclass(frozen=True)
class Case:
    code: str
    probe: Probe
    expected: frozenset[str]


def _tested_params(resource_type: str) -> list[SearchParam]:
    return [
        p
        for code, p in params_for(resource_type).items()
        if p.expression is not None and p.type != "special" and code not in _NOT_TESTED
    ]


@cache
def cases(resource_type: str) -> tuple[Case, ...]:
    bodies = examples().by_type.get(resource_type, [])
    out: list[Case] = []
    for param in _tested_params(resource_type):
        selections = {b["id"]: _select(param, b) for b in bodies}
        for probe in _spread(_probes(param, list(selections.values())), PER_PARAM):
            expected = frozenset(i for i, s in selections.items() if probe.matches(s))
            out.append(Case(param.code, probe, expected))
    return tuple(out)


# --- the store, loaded once per database ---------------------------------------------------


def _empty_postgres(url: str) -> None:
    engine = make_engine(url)
    empty(engine)  # the session's database, left as other tests expect it: empty
    engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def loaded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SqlStore]:
    """A store holding the examples (committed), on each database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('search-examples') / 'opengp.db'}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
    else:
        url = request.getfixturevalue("postgres_url")
        _empty_postgres(url)
    store = SqlStore.from_url(url)
    with store.writing() as tx:
        for resource_type, bodies in examples().by_type.items():
            for body in bodies:
                tx.save(resource_type, body["id"], body, method="POST", previous=None)
    yield store
    store.dispose()
    if request.param == "postgres":
        _empty_postgres(url)


def _mismatches(store: SqlStore, resource_type: str, compared: Sequence[Case]) -> list[str]:
    """(type, param, value, expected only, found only) of every case the store gets wrong."""
    out = []
    with store.reading() as tx:
        for case in compared:
            name = case.code + case.probe.modifier
            try:
                query = parse_query(resource_type, [(name, case.probe.text)], strict=True)
                found = frozenset(tx.find(query, 10_000))
            except BadRequest as exc:
                out.append(f"{resource_type} {name}={case.probe.text}: refused ({exc})")
                continue
            if found != case.expected:
                out.append(
                    f"{resource_type} {name}={case.probe.text}: "
                    f"expected only {sorted(case.expected - found)}, "
                    f"found only {sorted(found - case.expected)}"
                )
    return out


def compared(resource_type: str) -> list[Case]:
    """The cases of a type the store is held to (EXCLUSIONS left out)."""
    return [c for c in cases(resource_type) if (resource_type, c.code) not in EXCLUSIONS]


def coverage() -> dict[str, int]:
    """The numbers docs/search-conformance.md states (the same on each database)."""
    found = [c for t in examples().by_type for c in compared(t)]
    return {
        "resource types loaded": len(examples().by_type),
        "examples loaded": sum(len(b) for b in examples().by_type.values()),
        "examples skipped": sum(len(f) for f in examples().skipped.values()),
        "parameters with an expression": sum(len(_tested_params(t)) for t in examples().by_type),
        "(type, parameter) pairs tested": len(
            {(t, c.code) for t in examples().by_type for c in compared(t)}
        ),
        "queries compared": len(found),
        "queries with matches": sum(1 for c in found if c.expected),
    }


def _types() -> list[str]:
    return sorted(examples().by_type) if EXAMPLES is not None else []


@pytest.mark.parametrize("resource_type", _types())
def test_search_agrees_with_the_reference(loaded: SqlStore, resource_type: str) -> None:
    found = _mismatches(loaded, resource_type, compared(resource_type))
    assert not found, f"{len(found)} mismatches:\n" + "\n".join(found)


def test_exclusions_are_still_needed(loaded: SqlStore) -> None:
    """An exclusion whose parameter the store now gets right must go (here and in the doc)."""
    stale = []
    for resource_type, code in EXCLUSIONS:
        assert code in params_for(resource_type), (resource_type, code)
        excluded = [c for c in cases(resource_type) if c.code == code]
        if excluded and not _mismatches(loaded, resource_type, excluded):
            stale.append((resource_type, code))
    assert not stale, f"these exclusions are no longer needed: {stale}"


def test_every_gp_type_is_loaded_and_searched() -> None:
    untested = [t for t in GP_TYPES if not compared(t)]
    assert not untested
    assert not examples().skipped.keys() - {"id missing or longer than 64 characters"}


def test_the_doc_lists_every_exclusion() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "search-conformance.md").read_text("utf-8")
    missing = [f"{t} {c}" for t, c in EXCLUSIONS if f"`{t}` `{c}`" not in doc]
    assert not missing, f"docs/search-conformance.md does not list {missing}"
