"""SMART on FHIR scopes: parse them, check them, and decide what they allow (no I/O).

Grammar (SMART App Launch 2.0, "Scopes for requesting clinical data",
https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html):

    ( "patient" | "user" | "system" ) "/" ( ResourceType | "*" ) "." permissions [ "?" query ]

v2 permissions are letters of "cruds" in that order: c create, r read, u update, d delete,
s search. SMART v1's `read`, `write` and `*` are accepted and mean their v2 equivalents
(read = rs, write = cud, * = cruds; "Scope equivalence" in the same page). A scope with a
query (`patient/Observation.rs?category=...|laboratory`) grants only resources matching it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, cast

from opengp.fhir.definitions import EXCLUDED_RESOURCE_TYPES, RESOURCE_TYPES

Context = Literal["patient", "user", "system"]
PERMISSIONS = "cruds"  # and the order v2 requires them in
V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": "cruds"}
# Scopes that ask for identity or launch context rather than for data. `profile` (OpenID
# Connect Core §5.4) and `nationalrbacaccess` (NHS CIS2: the national RBAC roles) ask for
# claims of the ID token and the userinfo endpoint (services/userinfo.py).
OTHER_SCOPES = frozenset(
    {"openid", "fhirUser", "profile", "nationalrbacaccess", "launch/patient", "offline_access"}
)

_SCOPE = re.compile(r"(patient|user|system)/(\*|[A-Za-z]+)\.(\*|[a-z]+)(?:\?(.*))?", re.DOTALL)
_QUERY_PART = re.compile(r"[A-Za-z0-9_\-.:]+=\S+")
_KNOWN_TYPES = RESOURCE_TYPES | frozenset(EXCLUDED_RESOURCE_TYPES)


class ScopeError(ValueError):
    """A scope string is not SMART syntax; the message names the scope and the rule."""


@dataclass(frozen=True, slots=True)
class Scope:
    """One resource scope, in SMART v2 terms."""

    context: Context
    resource_type: str  # a FHIR resource type, or "*"
    permissions: frozenset[str]  # letters of "cruds"
    query: str | None = None  # search parameters limiting which resources it grants

    def __str__(self) -> str:
        letters = "".join(p for p in PERMISSIONS if p in self.permissions)
        text = f"{self.context}/{self.resource_type}.{letters}"
        return f"{text}?{self.query}" if self.query is not None else text

    def covers(self, other: Scope) -> bool:
        """Whether everything `other` grants is granted by this scope too."""
        return (
            self.context == other.context
            and self.resource_type in ("*", other.resource_type)
            and other.permissions <= self.permissions
            and (self.query is None or self.query == other.query)
        )


def parse_scope(text: str) -> Scope:
    """A resource scope (v1 or v2 syntax) as a `Scope`; `ScopeError` if it is not one."""
    match = _SCOPE.fullmatch(text)
    if match is None:
        raise ScopeError(
            f"{text!r} is not a SMART scope: expected context/ResourceType.permissions,"
            " e.g. system/Patient.rs"
        )
    context, resource_type, letters, query = match.groups()
    if resource_type != "*" and resource_type not in _KNOWN_TYPES:
        raise ScopeError(f"{text!r}: {resource_type!r} is not a FHIR R4 resource type")
    if letters in V1_PERMISSIONS:
        if query is not None:
            raise ScopeError(f"{text!r}: a query needs SMART v2 permissions (cruds)")
        letters = V1_PERMISSIONS[letters]
    elif not _in_order(letters):
        raise ScopeError(
            f"{text!r}: permissions must be letters of 'cruds', in that order, each once"
            " (or SMART v1 read, write, *)"
        )
    if query is not None:
        _check_query(text, query)
    return Scope(cast(Context, context), resource_type, frozenset(letters), query)


def _in_order(letters: str) -> bool:
    positions = [PERMISSIONS.find(letter) for letter in letters]
    return -1 not in positions and positions == sorted(set(positions))


def _check_query(text: str, query: str) -> None:
    if not query or not all(_QUERY_PART.fullmatch(part) for part in query.split("&")):
        raise ScopeError(f"{text!r}: the query must be name=value pairs joined by '&'")


def parse_scopes(text: str) -> tuple[str, ...]:
    """Check a space-separated scope string; its scopes in order, without repeats.

    Accepts resource scopes and the identity and launch scopes in `OTHER_SCOPES`.
    """
    scopes = tuple(dict.fromkeys(text.split()))
    if not scopes:
        raise ScopeError("no scopes given")
    for scope in scopes:
        if scope not in OTHER_SCOPES:
            parse_scope(scope)
    return scopes


def resource_scopes(scopes: Iterable[str | Scope]) -> list[Scope]:
    """The resource scopes among `scopes`; anything unparseable grants nothing."""
    parsed = []
    for scope in scopes:
        if isinstance(scope, Scope):
            parsed.append(scope)
        elif scope not in OTHER_SCOPES:
            try:
                parsed.append(parse_scope(scope))
            except ScopeError:
                continue
    return parsed


def granting(
    scopes: Iterable[str | Scope], context: str, resource_type: str, permission: str
) -> list[Scope]:
    """The scopes that grant `permission` on `resource_type`, including query-limited ones."""
    if len(permission) != 1 or permission not in PERMISSIONS:
        raise ValueError(f"permission must be one of c, r, u, d, s, not {permission!r}")
    return [
        scope
        for scope in resource_scopes(scopes)
        if scope.context == context
        and scope.resource_type in ("*", resource_type)
        and permission in scope.permissions
    ]


def allows(
    scopes: Iterable[str | Scope], context: str, resource_type: str, permission: str
) -> bool:
    """Whether `scopes` grant `permission` on every `resource_type` resource.

    Scopes with a query grant only some resources, so they do not count here: a caller that
    can apply the query asks `granting` for them.
    """
    return any(
        scope.query is None for scope in granting(scopes, context, resource_type, permission)
    )


def covered(requested: str, granted: Iterable[str]) -> bool:
    """Whether the scope `requested` is within the scopes `granted` (e.g. at registration)."""
    granted = list(granted)
    if requested in OTHER_SCOPES or requested in granted:
        return requested in granted
    try:
        wanted = parse_scope(requested)
    except ScopeError:
        return False
    return any(scope.covers(wanted) for scope in resource_scopes(granted))
