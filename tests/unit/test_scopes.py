"""SMART scopes (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html)."""

from __future__ import annotations

import pytest

from opengp.access.scopes import (
    Scope,
    ScopeError,
    allows,
    covered,
    granting,
    parse_scope,
    parse_scopes,
)


@pytest.mark.parametrize(
    ("text", "context", "resource_type", "permissions", "query", "v2"),
    [
        ("system/Patient.rs", "system", "Patient", "rs", None, "system/Patient.rs"),
        ("system/*.cruds", "system", "*", "cruds", None, "system/*.cruds"),
        ("patient/Observation.r", "patient", "Observation", "r", None, "patient/Observation.r"),
        ("user/Appointment.cud", "user", "Appointment", "cud", None, "user/Appointment.cud"),
        # SMART v1, mapped to v2 ("Scope equivalence")
        ("patient/Patient.read", "patient", "Patient", "rs", None, "patient/Patient.rs"),
        ("user/Observation.write", "user", "Observation", "cud", None, "user/Observation.cud"),
        ("system/*.*", "system", "*", "cruds", None, "system/*.cruds"),
        ("system/*.read", "system", "*", "rs", None, "system/*.rs"),
        (
            "system/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
            "system",
            "Observation",
            "rs",
            "category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
            "system/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
        ),
        (
            "patient/Condition.rs?category=problem-list-item&clinical-status=active",
            "patient",
            "Condition",
            "rs",
            "category=problem-list-item&clinical-status=active",
            "patient/Condition.rs?category=problem-list-item&clinical-status=active",
        ),
    ],
)
def test_scopes_parse_to_v2(
    text: str,
    context: str,
    resource_type: str,
    permissions: str,
    query: str | None,
    v2: str,
) -> None:
    scope = parse_scope(text)
    assert scope == Scope(context, resource_type, frozenset(permissions), query)  # type: ignore[arg-type]
    assert str(scope) == v2
    assert parse_scope(str(scope)) == scope


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("system/Patient", "is not a SMART scope"),
        ("admin/Patient.rs", "is not a SMART scope"),
        ("system/Patinet.rs", "'Patinet' is not a FHIR R4 resource type"),
        ("system/patient.rs", "'patient' is not a FHIR R4 resource type"),
        ("system/Patient.sr", "in that order"),
        ("system/Patient.rr", "in that order"),
        ("system/Patient.x", "in that order"),
        ("system/Patient.", "is not a SMART scope"),
        ("system/Patient.rs?", "name=value pairs"),
        ("system/Patient.rs?category", "name=value pairs"),
        ("system/Patient.rs?a=1&&b=2", "name=value pairs"),
        ("system/Patient.read?category=x", "needs SMART v2 permissions"),
        ("openid", "is not a SMART scope"),
    ],
)
def test_bad_scopes_are_named_with_the_rule(text: str, complaint: str) -> None:
    with pytest.raises(ScopeError) as caught:
        parse_scope(text)
    assert repr(text) in str(caught.value)
    assert complaint in str(caught.value)


def test_scope_strings_accept_identity_and_launch_scopes_and_drop_repeats() -> None:
    text = "openid fhirUser launch/patient offline_access patient/*.rs patient/*.rs"
    assert parse_scopes(text) == (
        "openid",
        "fhirUser",
        "launch/patient",
        "offline_access",
        "patient/*.rs",
    )
    with pytest.raises(ScopeError, match="no scopes"):
        parse_scopes("  ")
    # OpenID Connect's profile and NHS CIS2's nationalrbacaccess ask for claims (userinfo)
    assert parse_scopes("openid profile nationalrbacaccess") == (
        "openid",
        "profile",
        "nationalrbacaccess",
    )
    with pytest.raises(ScopeError, match="'email' is not a SMART scope"):
        parse_scopes("openid email")


@pytest.mark.parametrize(
    ("scopes", "context", "resource_type", "permission", "allowed"),
    [
        (["system/Patient.rs"], "system", "Patient", "r", True),
        (["system/Patient.rs"], "system", "Patient", "s", True),
        (["system/Patient.rs"], "system", "Patient", "c", False),
        (["system/Patient.rs"], "system", "Observation", "r", False),
        (["system/Patient.rs"], "user", "Patient", "r", False),
        (["system/*.cruds"], "system", "Observation", "d", True),
        (["system/*.read"], "system", "Observation", "s", True),
        (["system/*.write"], "system", "Observation", "r", False),
        (["openid", "fhirUser"], "user", "Patient", "r", False),
        (["patient/Observation.rs?category=laboratory"], "patient", "Observation", "r", False),
        (["not a scope", "user/Patient.r"], "user", "Patient", "r", True),
        ([], "system", "Patient", "r", False),
    ],
)
def test_allows(
    scopes: list[str], context: str, resource_type: str, permission: str, allowed: bool
) -> None:
    assert allows(scopes, context, resource_type, permission) is allowed


def test_query_limited_scopes_are_found_by_granting() -> None:
    scopes = ["patient/Observation.rs?category=laboratory", "patient/Condition.r"]
    (found,) = granting(scopes, "patient", "Observation", "r")
    assert found.query == "category=laboratory"
    with pytest.raises(ValueError, match="permission"):
        granting(scopes, "patient", "Observation", "read")


@pytest.mark.parametrize(
    ("requested", "granted", "inside"),
    [
        ("system/Patient.rs", ["system/*.rs"], True),
        ("system/Patient.r", ["system/Patient.rs"], True),
        ("system/Patient.read", ["system/Patient.rs"], True),
        ("system/Patient.rs", ["system/Patient.read"], True),
        ("system/Patient.rs", ["system/Patient.r"], False),
        ("system/Patient.c", ["system/*.rs"], False),
        ("system/*.rs", ["system/Patient.rs"], False),
        ("user/Patient.r", ["system/*.cruds"], False),
        ("system/Observation.rs?category=lab", ["system/Observation.rs"], True),
        ("system/Observation.rs", ["system/Observation.rs?category=lab"], False),
        ("system/Observation.r?category=lab", ["system/Observation.rs?category=lab"], True),
        ("openid", ["openid"], True),
        ("openid", ["system/*.cruds"], False),
        ("nonsense", ["system/*.cruds"], False),
    ],
)
def test_covered(requested: str, granted: list[str], inside: bool) -> None:
    assert covered(requested, granted) is inside
