"""Reference syntax and rewriting (http://hl7.org/fhir/R4/references.html)."""

from __future__ import annotations

import pytest

from opengp.fhir.references import (
    LiteralReference,
    iter_references,
    parse_conditional,
    parse_relative,
    reference_strings,
    rewrite_references,
    syntax_problem,
)

TYPES = frozenset({"Patient", "Observation"})


@pytest.mark.parametrize(
    "reference",
    [
        "Patient/123",
        "Patient/a.b-c/_history/2",
        "#contained1",
        "urn:uuid:6f1a4b9e-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
        "urn:oid:2.16.840.1.113883",
        "https://example.org/fhir/Patient/1",
    ],
)
def test_valid_references(reference: str) -> None:
    assert syntax_problem(reference, TYPES) is None


@pytest.mark.parametrize(
    ("reference", "reason"),
    [
        ("Spaceship/1", "unknown resource type"),
        ("Patient/", "expected"),
        ("Patient/has space", "expected"),
        ("urn:uuid:not-a-uuid", "malformed urn:uuid"),
        ("123", "expected"),
    ],
)
def test_invalid_references_say_why(reference: str, reason: str) -> None:
    problem = syntax_problem(reference, TYPES)
    assert problem is not None and reason in problem


def test_parse_forms() -> None:
    assert parse_relative("Patient/1/_history/3") == LiteralReference("Patient", "1", "3")
    assert parse_relative("http://x/Patient/1") is None
    assert parse_conditional("Patient?identifier=a|b") == ("Patient", "identifier=a|b")


def test_iter_and_rewrite_reach_nested_and_contained_references() -> None:
    resource = {
        "resourceType": "Observation",
        "subject": {"reference": "urn:uuid:1"},
        "performer": [{"reference": "Practitioner/1"}, {"display": "no reference"}],
        "contained": [
            {"resourceType": "Patient", "link": [{"other": {"reference": "urn:uuid:1"}}]}
        ],
    }
    assert [path for path, _ in iter_references(resource)] == [
        "subject",
        "performer[0]",
        "contained[0].link[0].other",
    ]
    # The same references, in the same order, from the walk that skips their locations.
    assert list(reference_strings(resource)) == [
        r["reference"] for _, r in iter_references(resource)
    ]
    rewrite_references(resource, lambda ref: "Patient/9" if ref == "urn:uuid:1" else None)
    assert resource["subject"] == {"reference": "Patient/9"}
    assert resource["contained"][0]["link"][0]["other"] == {"reference": "Patient/9"}  # type: ignore[index]
    assert resource["performer"][0] == {"reference": "Practitioner/1"}  # type: ignore[index]
