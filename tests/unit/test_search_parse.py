"""Parsing FHIR R4 searches into typed queries (http://hl7.org/fhir/R4/search.html)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import parse_qsl

import pytest

from opengp.fhir.errors import BadRequest
from opengp.search.model import Component, ParamType, SearchParam
from opengp.search.parse import (
    Clause,
    CompositeValue,
    DateValue,
    HasClause,
    Include,
    Link,
    MissingValue,
    NumberValue,
    OfTypeValue,
    Problem,
    QuantityValue,
    ReferenceValue,
    SearchQuery,
    StringValue,
    TokenValue,
    UriValue,
    Value,
    form_pairs,
    parse_search,
)


def _param(
    resource_type: str,
    code: str,
    type_: ParamType,
    targets: tuple[str, ...] = (),
    components: tuple[Component, ...] = (),
) -> SearchParam:
    return SearchParam(resource_type, code, type_, f"{resource_type}.{code}", targets, components)


_GP = ("Practitioner", "Organization", "PractitionerRole")
_SUBJECT = ("Patient", "Group", "Device", "Location")
_DEFINITIONS: dict[str, list[tuple[str, ParamType, tuple[str, ...]]]] = {
    "Resource": [
        ("_id", "token", ()),
        ("_lastUpdated", "date", ()),
        ("_tag", "token", ()),
        ("_profile", "uri", ()),
        ("_security", "token", ()),
        ("_source", "uri", ()),
        ("_text", "special", ()),
        ("_content", "special", ()),
    ],
    "Patient": [
        ("name", "string", ()),
        ("family", "string", ()),
        ("birthdate", "date", ()),
        ("identifier", "token", ()),
        ("gender", "token", ()),
        ("general-practitioner", "reference", _GP),
        ("organization", "reference", ("Organization",)),
    ],
    "Observation": [
        ("code", "token", ()),
        ("date", "date", ()),
        ("value-quantity", "quantity", ()),
        ("subject", "reference", _SUBJECT),
        ("patient", "reference", ("Patient",)),
        ("encounter", "reference", ("Encounter",)),
        ("focus", "reference", ()),  # any type
    ],
    "Organization": [("name", "string", ()), ("identifier", "token", ())],
    "Practitioner": [("name", "string", ())],
    "PractitionerRole": [("organization", "reference", ("Organization",))],
    "Group": [("name", "string", ())],
    "Location": [("name", "string", ()), ("organization", "reference", ("Organization",))],
    "Device": [("organization", "reference", ("Organization",)), ("type", "token", ())],
    "Encounter": [("patient", "reference", ("Patient",))],
    "Provenance": [("target", "reference", ()), ("agent", "reference", _GP)],
    "RiskAssessment": [("probability", "number", ())],
}
_REGISTRY = {
    (rt, code): _param(rt, code, type_, targets)
    for rt, rows in _DEFINITIONS.items()
    for code, type_, targets in rows
}
_REGISTRY["Observation", "code-value-quantity"] = _param(
    "Observation",
    "code-value-quantity",
    "composite",
    components=(Component("code", "token", "code"), Component("value", "quantity", "value")),
)
_REGISTRY["Location", "type"] = _param("Location", "type", "string")  # a clash, to test
_TYPES = frozenset(_DEFINITIONS) - {"Resource"} | {"List", "ValueSet"}


def lookup(resource_type: str, code: str) -> SearchParam | None:
    return _REGISTRY.get((resource_type, code)) or _REGISTRY.get(("Resource", code))


def p(resource_type: str, code: str) -> SearchParam:
    found = lookup(resource_type, code)
    assert found is not None
    return found


def search(
    resource_type: str | None, query: str, *, strict: bool = False, **options: int
) -> SearchQuery:
    pairs = parse_qsl(query, keep_blank_values=True)
    return parse_search(resource_type, pairs, lookup, _TYPES.__contains__, strict=strict, **options)


def only(resource_type: str | None, query: str) -> Clause:
    found = search(resource_type, query, strict=True)
    assert len(found.clauses) == 1
    return found.clauses[0]


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def n(text: str) -> Decimal:
    return Decimal(text)


LOINC, UCUM = "http://loinc.org", "http://unitsofmeasure.org"


@pytest.mark.parametrize(
    ("resource_type", "query", "values"),
    [
        # string; a prefix is only a prefix on number, date and quantity
        ("Patient", "name=Smith,gtJones", (StringValue("Smith"), StringValue("gtJones"))),
        ("Patient", "name:exact=Smith", (StringValue("Smith"),)),
        # token forms (search.html#token)
        ("Patient", "gender=male", (TokenValue(None, "male"),)),
        ("Patient", "identifier=s|1", (TokenValue("s", "1"),)),
        ("Patient", "identifier=|1", (TokenValue("", "1"),)),
        ("Patient", "identifier=s|", (TokenValue("s", None),)),
        ("Observation", "code:text=blood pressure", (StringValue("blood pressure"),)),
        ("Observation", "code:not=x", (TokenValue(None, "x"),)),
        ("Patient", "identifier:of-type=s|MR|42", (OfTypeValue("s", "MR", "42"),)),
        ("Patient", "_id=a,b-1.c", (TokenValue(None, "a"), TokenValue(None, "b-1.c"))),
        # date: precision gives the range; Europe/London is UTC in winter, +1 in summer
        ("Patient", "birthdate=2020", (DateValue("eq", utc(2020, 1, 1), utc(2021, 1, 1)),)),
        ("Patient", "birthdate=lt2024-02", (DateValue("lt", utc(2024, 2, 1), utc(2024, 3, 1)),)),
        (
            "Patient",
            "birthdate=ge2020-06-01",
            (DateValue("ge", utc(2020, 5, 31, 23), utc(2020, 6, 1, 23)),),
        ),
        (
            "Observation",
            "date=sa2020-01-14T10:00:00Z",
            (DateValue("sa", utc(2020, 1, 14, 10), utc(2020, 1, 14, 10, 0, 1)),),
        ),
        # number: significant figures give the range
        (
            "RiskAssessment",
            "probability=gt0.8",
            (NumberValue("gt", n("0.8"), n("0.75"), n("0.85")),),
        ),
        ("RiskAssessment", "probability=1e2", (NumberValue("eq", n("1e2"), n("50"), n("150")),)),
        ("RiskAssessment", "probability=ap-3", (NumberValue("ap", n("-3"), n("-3.5"), n("-2.5")),)),
        # quantity (search.html#quantity)
        (
            "Observation",
            f"value-quantity=5.4|{UCUM}|mg",
            (QuantityValue("eq", n("5.4"), n("5.35"), n("5.45"), UCUM, "mg"),),
        ),
        (
            "Observation",
            "value-quantity=le5.4||mg",
            (QuantityValue("le", n("5.4"), n("5.35"), n("5.45"), None, "mg"),),
        ),
        (
            "Observation",
            "value-quantity=eb5",
            (QuantityValue("eb", n("5"), n("4.5"), n("5.5"), None, None),),
        ),
        # reference (search.html#reference)
        ("Observation", "subject=Patient/1", (ReferenceValue("Patient", "1", None, None),)),
        ("Observation", "subject=1", (ReferenceValue(None, "1", None, None),)),
        ("Observation", "patient=1", (ReferenceValue("Patient", "1", None, None),)),
        ("Observation", "subject:Group=1", (ReferenceValue("Group", "1", None, None),)),
        (
            "Observation",
            "subject=Patient/1/_history/2",
            (ReferenceValue("Patient", "1", None, "2"),),
        ),
        (
            "Observation",
            "subject=https://x.org/fhir/Patient/1",
            (ReferenceValue("Patient", "1", "https://x.org/fhir/Patient/1", None),),
        ),
        (
            "Observation",
            "focus=http://x.org/ValueSet/vs|2.0",
            (ReferenceValue("ValueSet", "vs", "http://x.org/ValueSet/vs", "2.0"),),
        ),
        (
            "Observation",
            "focus=urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0",
            (ReferenceValue(None, None, "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0", None),),
        ),
        ("Observation", "subject:identifier=s|9", (TokenValue("s", "9"),)),
        # uri
        ("Patient", "_profile=http://x.org/sd", (UriValue("http://x.org/sd"),)),
        ("Patient", "_profile:below=http://x.org/", (UriValue("http://x.org/"),)),
        # composite: each part parsed by its component's type, prefixes allowed
        (
            "Observation",
            f"code-value-quantity={LOINC}|8480-6$lt60",
            (
                CompositeValue(
                    (
                        TokenValue(LOINC, "8480-6"),
                        QuantityValue("lt", n("60"), n("59.5"), n("60.5"), None, None),
                    )
                ),
            ),
        ),
        # :missing, special parameters
        ("Patient", "birthdate:missing=true", (MissingValue(True),)),
        ("Observation", "subject:missing=false", (MissingValue(False),)),
        ("Patient", "_list=42", (ReferenceValue("List", "42", None, None),)),
        ("Patient", "_text=cough", (StringValue("cough"),)),
        # escaping (search.html#escaping): \, \$ \| \\ ; other backslashes are literal
        ("Patient", r"name=a\,b,c", (StringValue("a,b"), StringValue("c"))),
        ("Patient", r"name=a\\,b", (StringValue("a\\"), StringValue("b"))),
        ("Patient", r"name=C:\dir", (StringValue(r"C:\dir"),)),
        ("Patient", r"identifier=s\|t|v\,w", (TokenValue("s|t", "v,w"),)),
        (
            "Observation",
            r"code-value-quantity=a\$b$5",
            (
                CompositeValue(
                    (
                        TokenValue(None, "a$b"),
                        QuantityValue("eq", n("5"), n("4.5"), n("5.5"), None, None),
                    )
                ),
            ),
        ),
    ],
)
def test_values(resource_type: str, query: str, values: tuple[Value, ...]) -> None:
    assert only(resource_type, query).values == values


@pytest.mark.parametrize(
    ("resource_type", "query", "problem"),
    [
        ("Patient", "nope=1", "unknown search parameter 'nope'"),
        ("Patient", "name=", "has no value"),
        ("Patient", "name=a,,b", "empty value"),
        ("Patient", "name=a\x01", "control characters"),
        ("Patient", "name:foo=x", "unknown modifier ':foo'"),
        ("Patient", "gender:exact=male", "does not apply to token"),
        ("Patient", "birthdate:contains=2020", "does not apply to date"),
        ("Patient", "name:not=x", "does not apply to string"),
        ("Patient", "_text:exact=x", "does not apply to special"),
        ("Observation", "code:in=http://vs", "not supported"),
        ("Patient", "birthdate=2020-13", "not a valid date"),
        ("Patient", "birthdate=yesterday", "not a date"),
        ("Patient", "birthdate=xx2020", "not a date"),
        ("Patient", "birthdate:missing=maybe", "true or false"),
        ("RiskAssessment", "probability=abc", "not a number"),
        ("RiskAssessment", "probability=NaN", "not a number"),
        ("RiskAssessment", "probability=1" + "0" * 30, "digits"),
        ("Observation", "value-quantity=5|mg", "number|system|code"),
        ("Patient", "identifier=a|b|c", "more than one '|'"),
        ("Patient", "identifier=|", "neither system nor code"),
        ("Patient", "identifier:of-type=MR|1", "type-system|type-code|value"),
        ("Patient", "_id=a|b", "not a valid resource id"),
        ("Patient", "_id=a b", "not a valid resource id"),
        ("Patient", "_list=$current-problems", "not the id of a List"),
        ("Observation", "subject=Practitioner/1", "cannot refer to a Practitioner"),
        ("Observation", "subject=Nope/1", "not a resource type"),
        ("Observation", "subject:Group=Patient/1", "cannot refer to a Patient"),
        ("Observation", "subject:Practitioner=1", "cannot refer to a Practitioner"),
        ("Observation", "subject=bad id!", "not Type/id"),
        ("Observation", "subject=Patient/1|2", "only a canonical URL"),
        ("Observation", "code-value-quantity=x", "2 parts"),
        ("Observation", "code-value-quantity=$5", "2 parts"),
        # chains
        ("Patient", "name.family=x", "not a reference parameter"),
        ("Observation", "subject:Patient.nope=x", "unknown search parameter 'nope' for Patient"),
        ("Observation", "subject.type=x", "different types"),
        ("Observation", "focus.name=x", "choose one with focus:Type"),
        ("Observation", "subject:Nope.name=x", "unknown modifier ':Nope'"),
        # _has
        ("Patient", "_has:Observation:encounter:code=x", "cannot refer to a Patient"),
        ("Patient", "_has:Nope:patient:code=x", "not a resource type"),
        ("Patient", "_has:Observation:code:code=x", "no reference parameter 'code'"),
        ("Patient", "_has:Observation:patient=x", "not _has:Type:reference:parameter"),
        ("Patient", "_has:Observation:patient:nope=x", "unknown search parameter 'nope'"),
        # result parameters
        ("Patient", "_count=-1", "whole number"),
        ("Patient", "_count=ten", "whole number"),
        ("Patient", "_count=1&_count=2", "only once"),
        ("Patient", "_count:x=1", "takes no modifier"),
        ("Patient", "_sort=nope", "unknown search parameter 'nope'"),
        ("Patient", "_sort=_text", "cannot sort by special"),
        ("Observation", "_sort=code-value-quantity", "cannot sort by composite"),
        ("Patient", "_summary=maybe", "_summary must be one of"),
        ("Patient", "_total=some", "_total must be one of"),
        ("Patient", "_elements=name.given", "not an element name"),
        ("Patient", "_contained=true", "_contained is not supported"),
        ("Patient", "_containedType=contained", "not supported"),
        ("Patient", "_type=Patient", "only to a system-level search"),
        ("Patient", "_include=Patient", "Source:parameter[:Target]"),
        ("Patient", "_include=Patient:organization,Patient:name", "no reference parameter"),
        ("Patient", "_include=Patient:name", "no reference parameter 'name'"),
        ("Patient", "_include=Patient:organization:Practitioner", "cannot refer to"),
        ("Observation", "_include=Patient:organization", "use :iterate"),
        ("Patient", "_revinclude=Observation:encounter", "cannot refer to the searched type"),
        ("Patient", "_include:reverse=Patient:organization", "only the :iterate modifier"),
        (None, "_type=Patient,Nope", "'Nope' is not a resource type"),
        (None, "name=x", "unknown search parameter 'name' for Resource"),
        (None, "_type=Patient,Observation&name=x", "for Patient and Observation"),
        (None, "_has:Observation:patient:code=x", "needs a resource type"),
    ],
)
def test_problems_lenient_and_strict(resource_type: str | None, query: str, problem: str) -> None:
    lenient = search(resource_type, query)
    assert not (lenient.clauses or lenient.has or lenient.criteria or lenient.includes)
    assert len(lenient.problems) == 1
    assert problem in lenient.problems[0].message
    with pytest.raises(BadRequest) as caught:
        search(resource_type, query, strict=True)
    issue = caught.value.issues[0]
    assert problem in issue.diagnostics
    assert issue.expression == (lenient.problems[0].param,)


def test_lenient_keeps_the_good_and_reports_every_problem() -> None:
    found = search("Patient", "name=x&nope=1&gender=male&birthdate=soon&_count=7")
    assert [c.param.code for c in found.clauses] == ["name", "gender"]
    assert [pr.param for pr in found.problems] == ["nope", "birthdate"]
    assert found.problems[0].issue().severity == "warning"
    with pytest.raises(BadRequest) as caught:
        search("Patient", "name=x&nope=1&gender=male&birthdate=soon", strict=True)
    assert [i.expression for i in caught.value.issues] == [("nope",), ("birthdate",)]


def test_ignored_parameters_are_not_problems() -> None:
    found = search("Patient", "_format=json&_pretty=true", strict=True)
    assert found == SearchQuery("Patient")


def test_repetition_is_and_and_commas_are_or() -> None:
    found = search("Patient", "name=a,b&name=c")
    assert [c.values for c in found.clauses] == [
        (StringValue("a"), StringValue("b")),
        (StringValue("c"),),
    ]


@pytest.mark.parametrize(
    ("query", "modifier"),
    [
        ("name:contains=mit", "contains"),
        ("identifier:text=NHS", "text"),
        ("general-practitioner:Practitioner=1", "Practitioner"),
        ("general-practitioner:missing=true", "missing"),
        ("_tag:below=http://x|y", "below"),
        ("_source:above=http://x.org/a", "above"),
    ],
)
def test_modifiers_are_kept(query: str, modifier: str) -> None:
    assert only("Patient", query).modifier == modifier


def test_chain_with_a_chosen_type() -> None:
    clause = only("Observation", "subject:Patient.name=peter")
    assert clause == Clause(
        p("Patient", "name"),
        None,
        (StringValue("peter"),),
        (Link(p("Observation", "subject"), ("Patient",)),),
    )
    assert clause.chain[0].type == "Patient"


def test_chain_keeps_the_candidate_types_that_have_the_next_parameter() -> None:
    clause = only("Observation", "subject.name:exact=Peter")
    assert clause.chain == (Link(p("Observation", "subject"), ("Patient", "Group", "Location")),)
    assert clause.chain[0].type is None
    assert clause.param.code == "name"
    assert clause.modifier == "exact"


def test_two_level_chain() -> None:
    clause = only("Observation", "subject.organization.name=Leeds")
    assert clause.chain == (
        Link(p("Observation", "subject"), ("Patient", "Device", "Location")),
        Link(p("Patient", "organization"), ("Organization",)),
    )
    assert clause.param == p("Organization", "name")
    assert clause.values == (StringValue("Leeds"),)


def test_chain_to_a_reference_value() -> None:
    clause = only("Observation", "patient.general-practitioner=Practitioner/9")
    assert clause.chain == (Link(p("Observation", "patient"), ("Patient",)),)
    assert clause.values == (ReferenceValue("Practitioner", "9", None, None),)


def test_has() -> None:
    found = search("Patient", "_has:Observation:patient:code=1234-5", strict=True)
    code = Clause(p("Observation", "code"), None, (TokenValue(None, "1234-5"),))
    assert found.has == (HasClause("Observation", p("Observation", "patient"), code),)
    assert found.clauses == ()


def test_nested_has_with_a_modifier() -> None:
    query = "_has:Observation:patient:_has:Provenance:target:agent:Practitioner=1"
    (has,) = search("Patient", query, strict=True).has
    assert has.source_type == "Observation"
    inner = has.criterion
    assert isinstance(inner, HasClause)
    assert (inner.source_type, inner.reference) == ("Provenance", p("Provenance", "target"))
    assert inner.criterion == Clause(
        p("Provenance", "agent"), "Practitioner", (ReferenceValue("Practitioner", "1", None, None),)
    )


@pytest.mark.parametrize(("levels", "accepted"), [(3, True), (4, False)])
def test_has_depth_is_bounded(levels: int, accepted: bool) -> None:
    found = search("Patient", "_has:Provenance:target:" * levels + "agent=Practitioner/1")
    assert bool(found.has) is accepted
    assert accepted or "more than 3 deep" in found.problems[0].message


def test_chain_depth_is_bounded() -> None:
    query = "subject:Patient.organization.name=x"
    assert only("Observation", query).chain
    long = "patient.general-practitioner:PractitionerRole.organization.name.x=1"
    assert "chains more than 3" in search("Observation", long).problems[0].message


@pytest.mark.parametrize(
    ("resource_type", "query", "includes", "revincludes"),
    [
        (
            "Observation",
            "_include=Observation:subject",
            (Include("Observation", p("Observation", "subject"), None, False),),
            (),
        ),
        (
            "Observation",
            "_include=Observation:subject:Patient&_include:iterate=Patient:organization",
            (
                Include("Observation", p("Observation", "subject"), "Patient", False),
                Include("Patient", p("Patient", "organization"), None, True),
            ),
            (),
        ),
        (
            "Observation",
            "_include:recurse=Patient:general-practitioner",
            (Include("Patient", p("Patient", "general-practitioner"), None, True),),
            (),
        ),
        ("Observation", "_include=*", (Include("Observation", None, None, False),), ()),
        ("Observation", "_include=Observation:*", (Include("Observation", None, None, False),), ()),
        (
            "Patient",
            "_revinclude=Observation:patient&_revinclude=Provenance:target:Patient",
            (),
            (
                Include("Observation", p("Observation", "patient"), None, False),
                Include("Provenance", p("Provenance", "target"), "Patient", False),
            ),
        ),
        ("Patient", "_revinclude=*", (), (Include(None, None, None, False),)),
        (
            None,
            "_type=Patient&_revinclude=Observation:subject",
            (),
            (Include("Observation", p("Observation", "subject"), None, False),),
        ),
    ],
)
def test_includes(
    resource_type: str | None,
    query: str,
    includes: tuple[Include, ...],
    revincludes: tuple[Include, ...],
) -> None:
    found = search(resource_type, query, strict=True)
    assert (found.includes, found.revincludes) == (includes, revincludes)


def test_sort() -> None:
    found = search("Observation", "_sort=-date,code,_lastUpdated,-_id", strict=True)
    assert [(k.param.code, k.descending) for k in found.sort] == [
        ("date", True),
        ("code", False),
        ("_lastUpdated", False),
        ("_id", True),
    ]


@pytest.mark.parametrize(
    ("query", "options", "count"),
    [
        ("", {}, 50),
        ("_count=0", {}, 0),
        ("_count=20", {}, 20),
        ("_count=1001", {}, 1000),
        ("_count=99999999999999999999", {}, 1000),
        ("_count=200", {"max_count": 100}, 100),
        ("", {"default_count": 10}, 10),
        ("", {"default_count": 10, "max_count": 5}, 5),
    ],
)
def test_count_bounds(query: str, options: dict[str, int], count: int) -> None:
    assert search("Patient", query, strict=True, **options).count == count


def test_result_parameters() -> None:
    found = search(
        "Patient",
        "_summary=count&_total=accurate&_elements=name,birthDate,name&_cursor=abc%3D",
        strict=True,
    )
    assert (found.summary, found.total, found.elements, found.cursor) == (
        "count",
        "accurate",
        ("name", "birthDate"),
        "abc=",
    )


def test_system_level_search() -> None:
    found = search(None, "_lastUpdated=gt2024&_type=Patient,Organization&name=x", strict=True)
    assert found.resource_type is None
    assert found.types == ("Patient", "Organization")
    assert [c.param.code for c in found.clauses] == ["_lastUpdated", "name"]
    everything = search(None, "_id=a", strict=True)
    assert everything.types == ()
    assert everything.clauses[0].param == p("Resource", "_id")


def test_unknown_resource_type_is_a_bad_request() -> None:
    with pytest.raises(BadRequest):
        search("Nope", "", strict=False)


def test_self_link_drops_rejected_parameters_and_renders_result_parameters() -> None:
    found = search(
        "Patient",
        "name=a%5C,b&bogus=1&_count=5000&_sort=-birthdate,name&_include=Patient:organization"
        "&_include:iterate=Organization:*&_format=json&_summary=true",
    )
    assert found.problems == (Problem("bogus", "unknown search parameter 'bogus' for Patient"),)
    assert found.self_link_pairs() == (
        ("name", r"a\,b"),
        ("_sort", "-birthdate,name"),
        ("_count", "1000"),
        ("_include", "Patient:organization"),
        ("_include:iterate", "Organization:*"),
        ("_summary", "true"),
    )
    system = search(None, "_type=Patient&_revinclude=*&_cursor=x")
    assert system.self_link_pairs() == (
        ("_type", "Patient"),
        ("_count", "50"),
        ("_revinclude", "*"),
        ("_cursor", "x"),
    )


def test_form_body_is_merged_after_url_parameters() -> None:
    body = b"name=J%C3%B6rg+Smith&gender=male&_count="
    assert form_pairs(body, [("_count", "5")]) == (
        ("_count", "5"),
        ("name", "Jörg Smith"),
        ("gender", "male"),
        ("_count", ""),
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"name=%FF", "not valid UTF-8"),
        (b"name=\xff", "not valid UTF-8"),
        (b"&".join([b"a=1"] * 11), "too many fields"),
    ],
)
def test_unreadable_form_bodies_are_bad_requests(body: bytes, reason: str) -> None:
    with pytest.raises(BadRequest, match=reason):
        form_pairs(body, max_fields=10)
