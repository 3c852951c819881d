"""Who a person vouched for by an OpenID provider is here, and the session they get.

Staff (NHS CIS2): the account an administrator linked to the provider's subject
(access/identities.py: never guessed from a name or an e-mail address). They act in one
national RBAC role per session: the roles NHS CIS2 says they hold (`nhsid_nrbac_roles`,
at the practice's ODS code when OPENGP_OIDC_STAFF_ORG_CODE is set) that their account here
holds too. One such role: the session starts in it; several: they choose (or NHS CIS2 has,
`selected_roleid`); none: refused.

Patients (NHS login): the account linked to the subject if an administrator made one;
otherwise the one patient account of the one Patient whose NHS number NHS login verified
(`identity_proofing_level` P9) and whose date of birth matches. Never a new account: a
person without one is told to ask the practice.

NHS CIS2's claim (as published in its "national RBAC" and userinfo documentation) is
`nhsid_nrbac_roles`: a list of {person_roleid, person_orgid, org_code, role_name, role_code
"S8000:G8000:R8000", activities, activity_codes, ...}; the job role (the last part of
`role_code`) is what the role table of access/policy.py knows. NHS login's `nhs_number`,
`birthdate` and `identity_proofing_level` come with the `profile` scope.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opengp.access import accounts, identities, sessions
from opengp.access.audit import Outcome, entry_for
from opengp.access.principal import Principal
from opengp.fhir import jsonio
from opengp.fhir.nhs_number import NHS_NUMBER_SYSTEM, is_valid_nhs_number
from opengp.search.query import conditional_query
from opengp.services.oidc import Verified
from opengp.store.sql import SqlStore

PROOFED = "P9"  # NHS login: identity verified to the standard of a GP record


class Refused(Exception):
    """This person cannot sign in here. `reason` is for the audit trail; `str(exc)` is shown
    to them."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Role:
    code: str  # the national RBAC job role, e.g. R8000
    name: str
    org_code: str | None
    person_roleid: str | None


@dataclass(frozen=True, slots=True)
class StaffMember:
    principal: Principal
    roles: tuple[Role, ...]  # the roles they may act in here; one is chosen per session


# ---- staff -------------------------------------------------------------------------------


def staff_member(store: SqlStore, person: Verified, org_code: str | None) -> StaffMember:
    """The staff account linked to `person`, and the roles they may act in; `Refused`."""
    with store.reading() as tx:
        link = identities.find(tx.conn, person.issuer, person.subject)
        if link is None:
            raise Refused(
                "unlinked",
                "Your NHS CIS2 identity is not linked to an account at this practice. Ask the"
                " practice's system administrator to link it; they will need this identifier: "
                + person.subject,
            )
        try:
            principal = accounts.principal_for(tx.conn, link.user_id)
        except accounts.SignInFailed:
            raise Refused("disabled", "Your account is disabled: contact the practice.") from None
        except accounts.UnknownAccount:
            raise Refused("unlinked", "Your account no longer exists here.") from None
    if principal.kind != "staff":
        raise Refused("other-area", "This account cannot sign in here. Use patient services.")
    roles = usable_roles(person.claims, principal.roles, org_code)
    if not roles:
        raise Refused(
            "no-role",
            "None of the roles NHS CIS2 says you hold lets you use this practice's system."
            " Ask the practice's system administrator.",
        )
    selected = person.claims.get("selected_roleid")
    chosen = [role for role in roles if selected and role.person_roleid == selected]
    return StaffMember(principal, tuple(chosen) if chosen else roles)


def usable_roles(
    claims: Mapping[str, Any], held_here: frozenset[str], org_code: str | None
) -> tuple[Role, ...]:
    """The roles of `nhsid_nrbac_roles` (at `org_code`, if given) that the account holds here
    too, one per job role, in the order NHS CIS2 gave them."""
    found: dict[str, Role] = {}
    entries = claims.get("nhsid_nrbac_roles")
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("role_code"), str):
            continue
        code = entry["role_code"].rsplit(":", 1)[-1].strip().upper()
        org = entry.get("org_code") if isinstance(entry.get("org_code"), str) else None
        if code not in held_here or code in found:
            continue
        if org_code is not None and (org or "").upper() != org_code:
            continue
        roleid = entry.get("person_roleid")
        found[code] = Role(
            code,
            accounts.NATIONAL_ROLES.get(code, code),
            org,
            roleid if isinstance(roleid, str) else None,
        )
    return tuple(found.values())


# ---- patients ------------------------------------------------------------------------------


def patient(store: SqlStore, person: Verified) -> Principal:
    """The patient account of `person`; `Refused`."""
    with store.reading() as tx:
        link = identities.find(tx.conn, person.issuer, person.subject)
        user_id = link.user_id if link is not None else _by_nhs_number(tx, person.claims)
        try:
            principal = accounts.principal_for(tx.conn, user_id)
        except accounts.SignInFailed:
            raise Refused("disabled", "Your account is disabled: contact the practice.") from None
        except accounts.UnknownAccount:
            raise Refused("no-account", NO_ACCOUNT) from None
    if principal.kind not in ("patient", "proxy"):
        raise Refused("other-area", "This account cannot sign in here. Use the staff sign-in.")
    return principal


NO_ACCOUNT = (
    "We could not find your GP online services account at this practice. Ask the practice"
    " to set one up for you; then sign in with NHS login again."
)


def _by_nhs_number(tx: Any, claims: Mapping[str, Any]) -> str:
    number, born = claims.get("nhs_number"), claims.get("birthdate")
    if claims.get("identity_proofing_level") != PROOFED:
        raise Refused(
            "not-proofed",
            "NHS login has not yet confirmed who you are to the level your GP record needs."
            " Prove who you are in NHS login, then try again.",
        )
    if not isinstance(number, str) or not is_valid_nhs_number(number):
        raise Refused("no-nhs-number", NO_ACCOUNT)
    query = conditional_query("Patient", [("identifier", f"{NHS_NUMBER_SYSTEM}|{number}")])
    found: Sequence[str] = tx.find(query, limit=2)
    if len(found) != 1:
        raise Refused("no-account", NO_ACCOUNT)
    stored = tx.current("Patient", found[0])
    record = jsonio.loads(stored.content) if stored and stored.content else {}
    # The date of birth must agree too: a second check on the NHS number's owner.
    if not (isinstance(born, str) and hmac.compare_digest(born, str(record.get("birthDate")))):
        raise Refused("no-account", NO_ACCOUNT)
    matches = [a for a in identities.patient_accounts(tx.conn, found[0]) if not a.disabled]
    if len(matches) != 1:
        raise Refused("no-account", NO_ACCOUNT)
    return matches[0].id


# ---- the session ---------------------------------------------------------------------------


def start_session(
    store: SqlStore, principal: Principal, issuer: str, role: str | None = None
) -> str:
    """Start a screen session (the cookie token), in `role` alone if given; audited."""
    roles = None if role is None else frozenset({role})
    with store.writing() as tx:
        token, _ = sessions.start(tx.conn, principal.id, principal.kind, tx.clock(), roles)
        detail = {"via": "oidc", "issuer": issuer} | ({"role": role} if role else {})
        tx.audit(entry_for(principal, "signin", detail=detail))
    return token


def audit_failure(store: SqlStore, reason: str, principal: Principal | None = None) -> None:
    """A sign-in through a provider that failed: the reason only, never who they said."""
    outcome: Outcome = "failed" if principal is None else "denied"
    with store.auditing() as log:
        log.audit(entry_for(principal, "signin", outcome, detail={"via": "oidc", "reason": reason}))
