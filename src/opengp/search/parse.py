"""Parse a FHIR R4 search request into a frozen, typed `SearchQuery` (no SQL, no I/O).

http://hl7.org/fhir/R4/search.html. The shape is made for a compiler to walk:

- `SearchQuery.clauses` are ANDed (a repeated parameter is several clauses); the `values`
  of one `Clause` are ORed (comma-separated in the request).
- A chained parameter (`subject:Patient.name=x`, `subject.organization.name=x`) is one
  `Clause` on the last parameter, with the reference parameters followed from the searched
  type in `Clause.chain` (outermost first).
- `_has:Observation:patient:code=x` is a `HasClause` (nesting allowed).
- Result parameters (`_sort`, `_count`, `_include`...) are typed fields of `SearchQuery`.

Parameter definitions come from a `lookup(resource_type, code)` callable (the registry);
common parameters (`_id`, `_lastUpdated`...) are looked up on the searched type, or on
"Resource" for a system-level search. Handling of bad parameters follows
http://hl7.org/fhir/R4/search.html#errors: `strict` raises BadRequest, lenient drops the
parameter and records a `Problem`. This module is long because it is the whole grammar of
R4 search in one place; the values are small functions chosen from a table by type.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from urllib.parse import parse_qsl

from opengp.fhir.errors import BadRequest, Issue
from opengp.fhir.references import is_valid_id, parse_relative
from opengp.search.model import ParamType, SearchParam
from opengp.search.prefixes import PREFIXES, Prefix
from opengp.search.ranges import RangeError, date_range, number_range
from opengp.search.release import Release

Lookup = Callable[[str, str], SearchParam | None]
IsResourceType = Callable[[str], bool]
# A legitimate relationship's link (access/policy.py RELATIONSHIP_LINKS): a resource of this
# type in the patient's record refers, through this reference parameter, to the member of
# staff; it stops counting once its `status` token is one of these codes.
RelationshipLink = tuple[str, str, tuple[str, ...]]

MAX_FORM_FIELDS = 1000
MAX_DEPTH = 3  # links of a chain, levels of _has: bounds the joins one request may cost


# --- Values ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenValue:
    system: str | None  # None: any system; "": no system
    code: str | None  # None: any code in the system


@dataclass(frozen=True, slots=True)
class OfTypeValue:
    """`identifier:of-type=type-system|type-code|value`."""

    type_system: str
    type_code: str
    value: str


@dataclass(frozen=True, slots=True)
class StringValue:
    text: str  # a string parameter, token :text, _text and _content


@dataclass(frozen=True, slots=True)
class DateValue:
    prefix: Prefix
    low: datetime  # UTC, inclusive (ranges.date_range)
    high: datetime  # UTC, exclusive


@dataclass(frozen=True, slots=True)
class NumberValue:
    prefix: Prefix
    value: Decimal
    low: Decimal  # ranges.number_range: the precision of the value as written
    high: Decimal


@dataclass(frozen=True, slots=True)
class QuantityValue:
    prefix: Prefix
    value: Decimal
    low: Decimal
    high: Decimal
    system: str | None  # None: any system
    code: str | None  # None: any unit (the number alone)


@dataclass(frozen=True, slots=True)
class ReferenceValue:
    """`Type/id`, `id`, an absolute URL (its trailing Type/id parsed too) or `canonical|version`.

    `type` is None for a bare id when the parameter may refer to several types. `url` is
    set for absolute references; the compiler matches on url or on type and id. `version`
    is a canonical's `|version` or a literal reference's `/_history/` version.
    """

    type: str | None
    id: str | None
    url: str | None
    version: str | None


@dataclass(frozen=True, slots=True)
class UriValue:
    uri: str


@dataclass(frozen=True, slots=True)
class CompositeValue:
    parts: tuple[Value, ...]  # one per component of the parameter, in order


@dataclass(frozen=True, slots=True)
class MissingValue:
    missing: bool  # `:missing=true`: resources without a value for the parameter


Value = (
    TokenValue
    | OfTypeValue
    | StringValue
    | DateValue
    | NumberValue
    | QuantityValue
    | ReferenceValue
    | UriValue
    | CompositeValue
    | MissingValue
)


# --- Query ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Link:
    """One step of a chain: follow `param` (a reference) to resources of `types`.

    `types` holds one type when it was chosen (`subject:Patient.name`) or is the only
    target; otherwise every target type on which the next step of the chain exists.
    """

    param: SearchParam
    types: tuple[str, ...]

    @property
    def type(self) -> str | None:
        return self.types[0] if len(self.types) == 1 else None


@dataclass(frozen=True, slots=True)
class Clause:
    """`param[:modifier]=v1,v2`: resources with a value matching any of `values`.

    With a chain, `param` is the last step's definition on the first of the last link's
    types; every candidate type shares its code and type.
    """

    param: SearchParam
    modifier: str | None  # missing exact contains text not above below identifier of-type, a type
    values: tuple[Value, ...]
    chain: tuple[Link, ...] = ()


@dataclass(frozen=True, slots=True)
class HasClause:
    """`_has:source_type:reference:criterion`: resources that a `source_type` resource
    matching `criterion` refers to through `reference`."""

    source_type: str
    reference: SearchParam
    criterion: Clause | HasClause


@dataclass(frozen=True, slots=True)
class SortKey:
    param: SearchParam
    descending: bool


@dataclass(frozen=True, slots=True)
class Include:
    """`_include` / `_revinclude`. `param` None is `*` (every reference of source_type);
    `source_type` None is `_revinclude=*` (any type) or `_include=*` in a system search."""

    source_type: str | None
    param: SearchParam | None
    target_type: str | None
    iterate: bool


@dataclass(frozen=True, slots=True)
class Problem:
    """A parameter dropped in lenient handling, and why."""

    param: str
    message: str

    def issue(self, severity: str = "warning") -> Issue:
        return Issue("invalid", self.message, (self.param,), severity)


@dataclass(frozen=True, slots=True)
class SearchQuery:
    resource_type: str | None  # None: a system-level search
    types: tuple[str, ...] = ()  # system level: the `_type` list (empty: every type)
    clauses: tuple[Clause, ...] = ()
    has: tuple[HasClause, ...] = ()
    sort: tuple[SortKey, ...] = ()
    count: int = 50
    includes: tuple[Include, ...] = ()
    revincludes: tuple[Include, ...] = ()
    summary: str | None = None  # true text data count false
    elements: tuple[str, ...] = ()
    total: str | None = None  # none estimate accurate
    cursor: str | None = None  # opaque, for the pager
    problems: tuple[Problem, ...] = ()
    criteria: tuple[tuple[str, str], ...] = field(default=())  # accepted filters, as given
    # Set by the server, not the request: only resources in these compartments
    # (compartment type, its resources' ids), e.g. Patient/123/Observation or a patient's
    # own searches; and never those carrying these meta.security labels.
    compartment: tuple[str, tuple[str, ...]] | None = None
    withheld: frozenset[tuple[str, str]] = frozenset()
    # Only the records of patients related (links, targets: see store `is_related`).
    related: tuple[tuple[RelationshipLink, ...], tuple[tuple[str, str], ...]] | None = None
    # Patients and proxies: only what the practice released to them online.
    released: Release | None = None

    def self_link_pairs(self) -> tuple[tuple[str, str], ...]:
        """The accepted parameters, result parameters rendered canonically (Bundle self link)."""
        pairs = list(self.criteria)
        if self.types:
            pairs.append(("_type", ",".join(self.types)))
        if self.sort:
            keys = ("-" * k.descending + k.param.code for k in self.sort)
            pairs.append(("_sort", ",".join(keys)))
        pairs.append(("_count", str(self.count)))
        for name, includes in (("_include", self.includes), ("_revinclude", self.revincludes)):
            pairs.extend((name + ":iterate" * i.iterate, _render_include(i)) for i in includes)
        optional = (
            ("_summary", self.summary),
            ("_elements", ",".join(self.elements) or None),
            ("_total", self.total),
            ("_cursor", self.cursor),
        )
        pairs.extend((name, value) for name, value in optional if value is not None)
        return tuple(pairs)


def _render_include(include: Include) -> str:
    if include.source_type is None:
        return "*"
    code = include.param.code if include.param else "*"
    target = f":{include.target_type}" if include.target_type else ""
    return f"{include.source_type}:{code}{target}"


# --- Escaping (http://hl7.org/fhir/R4/search.html#escaping) -----------------------------

_ESCAPE = re.compile(r"\\([,$|\\])")


def _split(text: str, separator: str) -> list[str]:
    """Split on unescaped `separator`, keeping escapes for the next level of splitting."""
    parts, start, i = [], 0, 0
    while i < len(text):
        if text[i] == "\\" and _ESCAPE.match(text, i):
            i += 2
            continue
        if text[i] == separator:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def _unescape(text: str) -> str:
    # Only \, \$ \| \\ are escapes; any other backslash is an ordinary character.
    return _ESCAPE.sub(r"\1", text)


# --- Value parsers, one per parameter type ----------------------------------------------


class _Reject(ValueError):
    """A parameter that cannot be used; the message names the problem."""


_NUMBER = re.compile(r"-?([0-9]+)(?:\.([0-9]+))?(?:[eE][+-]?[0-9]{1,3})?")
_MAX_DIGITS = 24  # within Decimal's 28-digit context, so number_range's bounds stay exact


def _prefixed(text: str) -> tuple[Prefix, str]:
    head = text[:2]
    for prefix in PREFIXES:
        if head == prefix:
            return prefix, text[2:]
    return "eq", text


def _number(text: str) -> tuple[Prefix, Decimal, Decimal, Decimal]:
    prefix, rest = _prefixed(_unescape(text))
    match = _NUMBER.fullmatch(rest)
    if match is None:
        raise _Reject(f"{text!r} is not a number (expected e.g. 5.4, gt100 or 1e2)")
    if len(match[1]) + len(match[2] or "") > _MAX_DIGITS:
        raise _Reject(f"{text!r} has more than {_MAX_DIGITS} digits")
    return (prefix, *number_range(rest))


def _token(text: str) -> TokenValue:
    parts = _split(text, "|")
    if len(parts) == 1:
        return TokenValue(None, _unescape(text))
    if len(parts) > 2:
        raise _Reject(f"{text!r} has more than one '|' (escape a '|' in a code as '\\|')")
    system, code = (_unescape(p) for p in parts)
    if not system and not code:
        raise _Reject("'|' alone has neither system nor code")
    return TokenValue(system, code or None)


@dataclass(frozen=True, slots=True)
class _Context:
    """What a value's meaning depends on beyond its text."""

    param: SearchParam | None  # None for a composite's component
    modifier: str | None
    is_resource_type: IsResourceType


def _token_value(text: str, ctx: _Context) -> Value:
    if ctx.modifier == "text":
        return StringValue(_unescape(text))
    if ctx.modifier == "of-type":
        parts = [_unescape(p) for p in _split(text, "|")]
        if len(parts) != 3 or not all(parts[1:]):
            raise _Reject(f"{text!r}: :of-type needs type-system|type-code|value")
        return OfTypeValue(*parts)
    token = _token(text)
    is_id = ctx.param is not None and ctx.param.code == "_id"
    if is_id and (token.system is not None or not is_valid_id(token.code or "")):
        raise _Reject(f"{text!r} is not a valid resource id")
    return token


def _string_value(text: str, ctx: _Context) -> Value:
    return StringValue(_unescape(text))


def _date_value(text: str, ctx: _Context) -> Value:
    prefix, rest = _prefixed(_unescape(text))
    try:
        return DateValue(prefix, *date_range(rest))
    except RangeError as exc:
        raise _Reject(str(exc)) from None


def _number_value(text: str, ctx: _Context) -> Value:
    return NumberValue(*_number(text))


def _quantity_value(text: str, ctx: _Context) -> Value:
    # [prefix]number|system|code, number||code (any system), number (any unit)
    number, *unit = _split(text, "|")
    if len(unit) not in (0, 2):
        raise _Reject(f"{text!r} is not number, number|system|code or number||code")
    system, code = (_unescape(p) or None for p in unit) if unit else (None, None)
    return QuantityValue(*_number(number), system, code)


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+")
# The last Type/id[/_history/vid] of an absolute URL ([base]/Patient/123).
_URL_TAIL = re.compile(
    r"[A-Za-z][A-Za-z0-9+.\-]*://.*/([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})"
    r"(?:/_history/([A-Za-z0-9\-.]{1,64}))?"
)


def _reference_value(text: str, ctx: _Context) -> Value:
    if ctx.modifier == "identifier":
        return _token(text)
    parts = [_unescape(p) for p in _split(text, "|")]
    reference, version = parts[0], parts[1] if len(parts) == 2 else None
    targets = ctx.param.targets if ctx.param else ()
    chosen = ctx.modifier if ctx.modifier and ctx.modifier[0].isupper() else None
    if len(parts) > 2 or (version is not None and not _SCHEME.fullmatch(reference)):
        raise _Reject(f"{text!r}: only a canonical URL may carry a |version")
    if _SCHEME.fullmatch(reference):
        tail = _URL_TAIL.fullmatch(reference)
        if tail and ctx.is_resource_type(tail[1]):
            return ReferenceValue(tail[1], tail[2], reference, version or tail[3])
        return ReferenceValue(None, None, reference, version)
    literal = parse_relative(reference)
    if literal is not None:
        kind, id_, version = literal.resource_type, literal.id, literal.version_id
        if not ctx.is_resource_type(kind):
            raise _Reject(f"{text!r}: {kind!r} is not a resource type")
        if (targets and kind not in targets) or (chosen and kind != chosen):
            raise _Reject(f"{text!r}: this parameter cannot refer to a {kind}")
        return ReferenceValue(kind, id_, None, version)
    if not is_valid_id(reference):
        raise _Reject(f"{text!r} is not Type/id, an id or an absolute URL")
    sole = targets[0] if len(targets) == 1 else None
    return ReferenceValue(chosen or sole, reference, None, None)


def _uri_value(text: str, ctx: _Context) -> Value:
    uri = _unescape(text)
    if any(c.isspace() for c in uri):
        raise _Reject(f"{text!r} is not a URI (it contains spaces)")
    return UriValue(uri)


def _composite_value(text: str, ctx: _Context) -> Value:
    components = ctx.param.components if ctx.param else ()
    parts = _split(text, "$")
    if not components or len(parts) != len(components) or not all(parts):
        raise _Reject(f"{text!r} needs {len(components)} parts separated by '$'")
    return CompositeValue(
        tuple(
            _PARSERS[c.type](part, _Context(None, None, ctx.is_resource_type))
            for c, part in zip(components, parts, strict=True)
        )
    )


def _special_value(text: str, ctx: _Context) -> Value:
    code = ctx.param.code if ctx.param else "?"
    if code in ("_text", "_content"):
        return StringValue(_unescape(text))
    if code == "_list":
        if not is_valid_id(text):  # functional lists ($current-problems...) are not kept
            raise _Reject(f"{text!r} is not the id of a List")
        return ReferenceValue("List", text, None, None)
    raise _Reject(f"special parameter {code!r} is not supported")


_PARSERS: dict[ParamType, Callable[[str, _Context], Value]] = {
    "token": _token_value,
    "string": _string_value,
    "date": _date_value,
    "number": _number_value,
    "quantity": _quantity_value,
    "reference": _reference_value,
    "uri": _uri_value,
    "composite": _composite_value,
    "special": _special_value,
}

# http://hl7.org/fhir/R4/search.html#modifiers; a reference also takes a resource type
# (`subject:Patient=23`). Special parameters (_text, _content, _list) take none.
_MODIFIERS: dict[ParamType, frozenset[str]] = {
    "string": frozenset({"missing", "exact", "contains"}),
    "token": frozenset({"missing", "text", "not", "above", "below", "of-type"}),
    "reference": frozenset({"missing", "identifier", "above", "below"}),
    "uri": frozenset({"missing", "above", "below"}),
    "date": frozenset({"missing"}),
    "number": frozenset({"missing"}),
    "quantity": frozenset({"missing"}),
    "composite": frozenset({"missing"}),
    "special": frozenset(),
}
_UNSUPPORTED_MODIFIERS = {
    "in": "value set membership (:in) is not supported",
    "not-in": "value set membership (:not-in) is not supported",
}
_KNOWN_MODIFIERS = frozenset(_UNSUPPORTED_MODIFIERS).union(*_MODIFIERS.values())


# --- Result parameters (http://hl7.org/fhir/R4/search.html#return) ----------------------

_IGNORED = frozenset({"_format", "_pretty"})  # the HTTP layer reads these
_UNSUPPORTED = {
    "_contained": "_contained is not supported: contained resources are not searched",
    "_containedType": "_containedType is not supported: contained resources are not searched",
    "_query": "named queries (_query) are not supported",
    "_filter": "_filter is not supported",
}
_CHOICES = {
    "_summary": ("true", "text", "data", "count", "false"),
    "_total": ("none", "estimate", "accurate"),
}
_INCLUDE_MODIFIERS = {"": False, "iterate": True, "recurse": True}  # recurse: R3's name
_ELEMENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_UNSORTABLE: frozenset[ParamType] = frozenset({"composite", "special"})
# Parameters of every type that R4 defines in search.html, not as SearchParameter resources.
_BUILT_IN = {
    "_list": SearchParam(
        "Resource", "_list", "special", None, url="http://hl7.org/fhir/R4/search.html#list"
    )
}


class _Parser:
    def __init__(
        self,
        resource_type: str | None,
        lookup: Lookup,
        is_resource_type: IsResourceType,
        default_count: int,
        max_count: int,
    ) -> None:
        self.resource_type = resource_type
        self.lookup = lookup
        self.is_resource_type = is_resource_type
        self.max_count = max_count
        self.types: tuple[str, ...] = ()
        self.clauses: list[Clause] = []
        self.has: list[HasClause] = []
        self.criteria: list[tuple[str, str]] = []
        self.sort: tuple[SortKey, ...] = ()
        self.count = min(default_count, max_count)
        self.includes: list[Include] = []
        self.revincludes: list[Include] = []
        self.choices: dict[str, str] = {}
        self.elements: tuple[str, ...] = ()
        self.cursor: str | None = None
        self.seen: set[str] = set()

    @property
    def home(self) -> tuple[str, ...]:
        """The types searched, on each of which a parameter must exist: in a system-level
        search, the `_type` list (or "Resource", whose parameters every type has)."""
        if self.resource_type:
            return (self.resource_type,)
        return self.types or ("Resource",)

    def take(self, name: str, raw: str) -> None:
        if raw == "":
            raise _Reject(f"parameter {name!r} has no value")
        if any(ord(c) < 32 or ord(c) == 127 for c in raw):
            raise _Reject(f"parameter {name!r} contains control characters")
        base, _, modifier = name.partition(":")
        if base in _IGNORED:
            return
        if base in _UNSUPPORTED:
            raise _Reject(_UNSUPPORTED[base])
        if base in self.seen:
            raise _Reject(f"{base} may be given only once")
        if base in ("_include", "_revinclude"):
            if modifier not in _INCLUDE_MODIFIERS:
                raise _Reject(f"{base} takes only the :iterate modifier")
            self.include(raw, reverse=base == "_revinclude", iterate=_INCLUDE_MODIFIERS[modifier])
            return
        if base in _RESULT:
            if modifier:
                raise _Reject(f"{base} takes no modifier")
            _RESULT[base](self, raw)
            self.seen.add(base)  # each result parameter once (only _include may repeat)
            return
        criterion = self.criterion(self.home, name, raw, 0)
        if isinstance(criterion, HasClause):
            self.has.append(criterion)
        else:
            self.clauses.append(criterion)
        self.criteria.append((name, raw))

    # --- criteria ---

    def criterion(
        self, types: tuple[str, ...], name: str, raw: str, depth: int
    ) -> Clause | HasClause:
        if name.startswith("_has:"):
            if depth >= MAX_DEPTH:
                raise _Reject(f"{name!r} nests _has more than {MAX_DEPTH} deep")
            return self.has_clause(types, name, raw, depth)
        return self.clause(types, name, raw)

    def has_clause(self, types: tuple[str, ...], name: str, raw: str, depth: int) -> HasClause:
        parts = name.split(":", 3)
        if self.resource_type is None:
            raise _Reject("_has needs a resource type to search")
        if len(parts) < 4 or not all(parts):
            raise _Reject(f"{name!r} is not _has:Type:reference:parameter")
        _, source, code, inner = parts
        if not self.is_resource_type(source):
            raise _Reject(f"{source!r} is not a resource type")
        reference = self.lookup(source, code)
        if reference is None or reference.type != "reference":
            raise _Reject(f"{source} has no reference parameter {code!r}")
        if reference.targets and not set(types) & set(reference.targets):
            raise _Reject(f"{source}:{code} cannot refer to a {types[0]}")
        return HasClause(source, reference, self.criterion((source,), inner, raw, depth + 1))

    def find(self, types: tuple[str, ...], code: str, *, every: bool) -> dict[str, SearchParam]:
        """The definitions of `code` on those of `types` that have it (all of one type);
        with `every`, all of `types` must have it."""
        found = {
            t: p for t in types if (p := self.lookup(t, code) or _BUILT_IN.get(code)) is not None
        }
        if not found or (every and len(found) < len(types)):
            raise _Reject(f"unknown search parameter {code!r} for {' and '.join(types)}")
        if len({p.type for p in found.values()}) > 1:
            raise _Reject(f"{code!r} has different types on {', '.join(found)}: choose one")
        return found

    def clause(self, types: tuple[str, ...], name: str, raw: str) -> Clause:
        *steps, last = name.split(".")
        if len(steps) > MAX_DEPTH:
            raise _Reject(f"{name!r} chains more than {MAX_DEPTH} references")
        links: list[Link] = []
        for step in steps:
            code, _, chosen = step.partition(":")
            param = self.step(links, types, code)
            if param.type != "reference":
                raise _Reject(f"{code!r} is not a reference parameter, so it cannot be chained")
            if chosen:
                self.check_type(param, chosen, param.targets)
                types = (chosen,)
            elif param.targets:
                types = param.targets
            else:
                raise _Reject(f"{code!r} may refer to any type: choose one with {code}:Type")
            links.append(Link(param, types))
        code, _, modifier = last.partition(":")
        param = self.step(links, types, code)
        self.check_modifier(param, modifier)
        ctx = _Context(param, modifier or None, self.is_resource_type)
        return Clause(param, modifier or None, self.values(ctx, raw), tuple(links))

    def step(self, links: list[Link], types: tuple[str, ...], code: str) -> SearchParam:
        """The definition of the next step `code` of a chain on `types`, narrowing the last
        link to the types that have it. Its targets are those of every candidate."""
        found = self.find(types, code, every=not links)
        if links:
            links[-1] = Link(links[-1].param, tuple(found))
        first, *others = found.values()
        targets = dict.fromkeys(t for p in (first, *others) for t in p.targets)
        return replace(first, targets=tuple(targets)) if others else first

    def check_type(self, param: SearchParam, chosen: str, targets: tuple[str, ...]) -> None:
        if not self.is_resource_type(chosen):
            raise _Reject(f"unknown modifier ':{chosen}' on {param.code!r}")
        if targets and chosen not in targets:
            raise _Reject(f"{param.code!r} cannot refer to a {chosen}")

    def check_modifier(self, param: SearchParam, modifier: str) -> None:
        if not modifier:
            return
        if param.type == "reference" and modifier[0].isupper():
            self.check_type(param, modifier, param.targets)
            return
        if modifier not in _KNOWN_MODIFIERS:
            raise _Reject(f"unknown modifier ':{modifier}' on {param.code!r}")
        if modifier in _UNSUPPORTED_MODIFIERS:
            raise _Reject(_UNSUPPORTED_MODIFIERS[modifier])
        if modifier not in _MODIFIERS[param.type]:
            raise _Reject(
                f"modifier ':{modifier}' does not apply to {param.type} parameter {param.code!r}"
            )

    def values(self, ctx: _Context, raw: str) -> tuple[Value, ...]:
        values: list[Value] = []
        for text in _split(raw, ","):
            if not text:
                raise _Reject(f"{raw!r} has an empty value")
            if ctx.modifier == "missing":
                if text not in ("true", "false"):
                    raise _Reject(f":missing takes true or false, not {text!r}")
                values.append(MissingValue(text == "true"))
            else:
                assert ctx.param is not None
                values.append(_PARSERS[ctx.param.type](text, ctx))
        return tuple(values)

    # --- result parameters ---

    def take_types(self, raw: str) -> None:
        if self.resource_type is not None:
            raise _Reject("_type applies only to a system-level search")
        types = raw.split(",")
        unknown = [t for t in types if not self.is_resource_type(t)]
        if unknown:
            raise _Reject(f"{unknown[0]!r} is not a resource type")
        self.types = tuple(dict.fromkeys(types))

    def take_count(self, raw: str) -> None:
        if not (raw.isascii() and raw.isdigit()):
            raise _Reject(f"_count must be a whole number >= 0, not {raw!r}")
        digits = raw.lstrip("0") or "0"
        self.count = min(int(digits), self.max_count) if len(digits) < 10 else self.max_count

    def take_sort(self, raw: str) -> None:
        keys = []
        for item in raw.split(","):
            code = item.removeprefix("-")
            param = next(iter(self.find(self.home, code, every=True).values()))
            if param.type in _UNSORTABLE:
                raise _Reject(f"cannot sort by {param.type} parameter {code!r}")
            keys.append(SortKey(param, item.startswith("-")))
        self.sort = tuple(keys)

    def take_choice(self, name: str, raw: str) -> None:
        if raw not in _CHOICES[name]:
            raise _Reject(f"{name} must be one of {', '.join(_CHOICES[name])}")
        self.choices[name] = raw

    def take_elements(self, raw: str) -> None:
        names = raw.split(",")
        bad = [n for n in names if not _ELEMENT.fullmatch(n)]
        if bad:
            raise _Reject(f"_elements: {bad[0]!r} is not an element name")
        self.elements = tuple(dict.fromkeys(names))

    def take_cursor(self, raw: str) -> None:
        self.cursor = raw

    def searched(self) -> tuple[str, ...]:
        """The types the matches may have (empty: any)."""
        return (self.resource_type,) if self.resource_type else self.types

    def include(self, raw: str, *, reverse: bool, iterate: bool) -> None:
        found = [self.one_include(t, reverse=reverse, iterate=iterate) for t in raw.split(",")]
        (self.revincludes if reverse else self.includes).extend(found)

    def one_include(self, text: str, *, reverse: bool, iterate: bool) -> Include:
        # Source:param[:Target], Source:* or * (http://hl7.org/fhir/R4/search.html#include)
        name = "_revinclude" if reverse else "_include"
        if text == "*":
            return Include(None if reverse else self.resource_type, None, None, iterate)
        parts = text.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise _Reject(f"{name}={text!r} is not Source:parameter[:Target]")
        source, code, target = parts[0], parts[1], parts[2] if len(parts) == 3 else None
        if not self.is_resource_type(source):
            raise _Reject(f"{name}: {source!r} is not a resource type")
        param = None if code == "*" else self.lookup(source, code)
        if code != "*" and (param is None or param.type != "reference"):
            raise _Reject(f"{name}: {source} has no reference parameter {code!r}")
        targets = param.targets if param else ()
        if target is not None and (
            not self.is_resource_type(target) or (targets and target not in targets)
        ):
            raise _Reject(f"{name}: {source}:{code} cannot refer to a {target!r}")
        searched = self.searched()
        if searched and not iterate:
            if not reverse and source not in searched:
                raise _Reject(f"{name}: {source} is not searched here (use :iterate)")
            reachable = {target} if target else set(targets or searched)
            if reverse and not reachable & set(searched):
                raise _Reject(f"{name}: {source}:{code} cannot refer to the searched type")
        return Include(source, param, target, iterate)

    def query(self, problems: Sequence[Problem]) -> SearchQuery:
        return SearchQuery(
            resource_type=self.resource_type,
            types=self.types,
            clauses=tuple(self.clauses),
            has=tuple(self.has),
            sort=self.sort,
            count=self.count,
            includes=tuple(self.includes),
            revincludes=tuple(self.revincludes),
            summary=self.choices.get("_summary"),
            elements=self.elements,
            total=self.choices.get("_total"),
            cursor=self.cursor,
            problems=tuple(problems),
            criteria=tuple(self.criteria),
        )


_RESULT: dict[str, Callable[[_Parser, str], None]] = {
    "_type": _Parser.take_types,
    "_count": _Parser.take_count,
    "_sort": _Parser.take_sort,
    "_summary": lambda parser, raw: parser.take_choice("_summary", raw),
    "_total": lambda parser, raw: parser.take_choice("_total", raw),
    "_elements": _Parser.take_elements,
    "_cursor": _Parser.take_cursor,
}


def _type_first(pairs: Sequence[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    # _type decides what _include and _revinclude may name, wherever it appears.
    yield from (p for p in pairs if p[0] == "_type")
    yield from (p for p in pairs if p[0] != "_type")


def parse_search(
    resource_type: str | None,
    pairs: Sequence[tuple[str, str]],
    lookup: Lookup,
    is_resource_type: IsResourceType,
    *,
    strict: bool,
    default_count: int = 50,
    max_count: int = 1000,
) -> SearchQuery:
    """The typed query of a search on `resource_type` (None: a system-level search).

    strict (Prefer: handling=strict): any unknown or malformed parameter raises BadRequest
    naming every such parameter. Lenient: they are left out and listed in `problems`.
    """
    if resource_type is not None and not is_resource_type(resource_type):
        raise BadRequest(f"{resource_type!r} is not a resource type")
    parser = _Parser(resource_type, lookup, is_resource_type, default_count, max_count)
    problems: list[Problem] = []
    for name, raw in _type_first(pairs):
        try:
            parser.take(name, raw)
        except _Reject as exc:
            problems.append(Problem(name, str(exc)))
    if strict and problems:
        first, *rest = problems
        raise BadRequest(
            first.message, expression=[first.param], issues=[p.issue("error") for p in rest]
        )
    return parser.query(problems)


def form_pairs(
    body: bytes,
    url_pairs: Sequence[tuple[str, str]] = (),
    *,
    max_fields: int = MAX_FORM_FIELDS,
) -> tuple[tuple[str, str], ...]:
    """The parameters of `POST [type]/_search`: the URL's, then the form body's.

    http://hl7.org/fhir/R4/http.html#search: the body is application/x-www-form-urlencoded
    and its parameters combine with any in the URL.
    """
    try:
        text = body.decode("utf-8")
        found = parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=max_fields)
    except ValueError as exc:  # UnicodeDecodeError included
        reason = "too many fields" if "Max number" in str(exc) else "it is not valid UTF-8"
        raise BadRequest(
            f"the search form body cannot be read: {reason} "
            f"(expected application/x-www-form-urlencoded, at most {max_fields} fields)"
        ) from None
    return (*url_pairs, *found)
