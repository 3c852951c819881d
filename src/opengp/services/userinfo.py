"""The claims OpenGP, as an OpenID provider, releases about a signed-in user: the userinfo
endpoint (OpenID Connect Core §5.3), shaped so that OpenGP's own relying party (and others
written for NHS CIS2 and NHS login) can use it in their place, e.g. to test against.

By scope, beyond `sub`:
- `fhirUser` (SMART): the user's FHIR resource, as a URL;
- `profile` (Core §5.4): `name`; for a patient, as NHS login gives it, `nhs_number`,
  `birthdate`, `family_name`, `given_name` from their Patient resource, and
  `identity_proofing_level` "P9": their account was made by the practice, which knows them;
- `nationalrbacaccess` (NHS CIS2): for staff, `nhsid_nrbac_roles`, one entry per national
  RBAC role of the account, in the shape of NHS CIS2's: `person_roleid` (an opaque id of the
  role assignment), `role_code`, `role_name` and, when the account's Organization has an ODS
  code, `org_code`. CIS2 writes `role_code` as "S8000:G8000:R8000" (sub-group, group, job
  role); OpenGP keeps only the job role ("R8000"), which is what decides access here: a
  relying party takes the last part either way.

Releasing a patient's details from their record is audited like a read of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from opengp.access.accounts import NATIONAL_ROLES
from opengp.access.audit import entry_for
from opengp.access.principal import Principal
from opengp.fhir import jsonio
from opengp.fhir.nhs_number import NHS_NUMBER_SYSTEM
from opengp.fhir.references import parse_relative
from opengp.store.sql import SqlStore

ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
PROOFED = "P9"  # NHS login's identity proofing level of a fully verified person
CLAIMS_SUPPORTED = (
    "sub",
    "fhirUser",
    "name",
    "nhs_number",
    "birthdate",
    "family_name",
    "given_name",
    "identity_proofing_level",
    "nhsid_useruid",
    "nhsid_nrbac_roles",
)


def claims_for(
    store: SqlStore, principal: Principal, scopes: Iterable[str], fhir_base: str
) -> dict[str, Any]:
    """The claims `principal` (a user, through an access token with `scopes`) releases."""
    granted = set(scopes)
    claims: dict[str, Any] = {"sub": principal.id}
    if "fhirUser" in granted and principal.fhir_user is not None:
        claims["fhirUser"] = f"{fhir_base}/{principal.fhir_user}"
    profile = "profile" in granted
    if profile:
        claims["name"] = principal.display
    patient = _patient_id(principal) if profile else None
    organisation = None
    with store.reading() as tx:
        if patient is not None:
            found = tx.current("Patient", patient)
            if found is not None and found.content is not None:
                claims |= _patient_claims(jsonio.loads(found.content))
        if principal.kind == "staff" and principal.organization_id:
            found = tx.current("Organization", principal.organization_id)
            if found is not None and found.content is not None:
                organisation = jsonio.loads(found.content)
    if principal.kind == "staff" and profile:
        claims["nhsid_useruid"] = principal.id
    if principal.kind == "staff" and "nationalrbacaccess" in granted:
        claims["nhsid_nrbac_roles"] = _roles(principal, _ods_code(organisation))
    detail = {"via": "userinfo", "claims": sorted(claims)}
    with store.auditing() as log:
        if patient is not None:
            log.audit(
                entry_for(
                    principal,
                    "read",
                    patient_id=patient,
                    resource_type="Patient",
                    resource_id=patient,
                    detail=detail,
                )
            )
        else:
            log.audit(entry_for(principal, "read", detail=detail))
    return claims


def _patient_id(principal: Principal) -> str | None:
    if principal.kind != "patient" or principal.fhir_user is None:
        return None
    parsed = parse_relative(principal.fhir_user)
    return None if parsed is None else parsed.id


def _patient_claims(patient: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {}
    for identifier in patient.get("identifier") or []:
        if identifier.get("system") == NHS_NUMBER_SYSTEM and identifier.get("value"):
            claims["nhs_number"] = identifier["value"]
            claims["identity_proofing_level"] = PROOFED
            break
    if isinstance(patient.get("birthDate"), str):
        claims["birthdate"] = patient["birthDate"]
    names = [n for n in patient.get("name") or [] if n.get("use") in (None, "official", "usual")]
    if names:
        if names[0].get("family"):
            claims["family_name"] = names[0]["family"]
        if names[0].get("given"):
            claims["given_name"] = " ".join(names[0]["given"])
    return claims


def _ods_code(organisation: Any) -> str | None:
    for identifier in (organisation or {}).get("identifier") or []:
        if identifier.get("system") == ODS_SYSTEM and identifier.get("value"):
            return str(identifier["value"])
    return None


def _roles(principal: Principal, org_code: str | None) -> list[dict[str, str]]:
    roles = []
    for code in sorted(principal.roles):
        digest = hashlib.sha256(f"{principal.id}/{code}".encode()).hexdigest()
        role = {
            "person_roleid": str(int(digest[:12], 16) % 10**12).zfill(12),
            "role_code": code,
            "role_name": NATIONAL_ROLES.get(code, code),
        }
        if org_code is not None:
            role["org_code"] = org_code
        roles.append(role)
    return roles
