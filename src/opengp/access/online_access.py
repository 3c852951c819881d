"""What the practice released to each patient online, kept as FHIR Consent resources.

NHS England's GP online record access gives each patient a level of access to their record
(none; summary information; the detailed coded record) and either the full history or only
entries from the day access was given (prospective access); a proxy may be given less than
the patient. UK Core defines no profile or extension for this, and GP Connect none either,
so it is kept the FHIR way, as a Consent in the patient's record (docs/security.md):

- `scope` patient-privacy, `category` online-record-access (`SYSTEM` below), `status`
  active, `patient` the patient, `dateTime` when it was set, `policyRule` OPTIN;
- `provision.type` permit with `provision.code` the level (summary | detailed), or deny
  for no access; `provision.dataPeriod.start`, for prospective access, the first day of
  entries shown;
- with `provision.actor` (role IRCP, a RelatedPerson): that proxy's access to this patient,
  which can only narrow the patient's own;
- without `patient`: the practice default, for patients who have no Consent of their own.

The newest active Consent of each kind applies. Staff with clinical write access set these
through the FHIR API like any other resource; the account screens and the demo seed build
them with `consent`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import orjson

from opengp.access.policy import (
    BUILT_IN_DEFAULT,
    OnlineLevel,
    OnlineRecordAccess,
)
from opengp.access.principal import Principal
from opengp.fhir.datetimes import instant
from opengp.search.query import parse_query
from opengp.store import ReadTransaction

SYSTEM = "https://opengp.example/fhir/CodeSystem/online-record-access"
CATEGORY = {"system": SYSTEM, "code": "online-record-access", "display": "GP online record access"}
SCOPE = {
    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
    "code": "patient-privacy",
}
OPT_IN = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}
RECIPIENT = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
    "code": "IRCP",
    "display": "information recipient",
}
MAX_CONSENTS = 100  # of one patient; only the newest of each kind counts


def consent(
    access: OnlineRecordAccess,
    *,
    patient_id: str | None,
    recorded: datetime,
    proxy: str | None = None,
    organization_id: str | None = None,
) -> dict[str, Any]:
    """The Consent that records `access` for a patient (None: the practice default), or,
    with `proxy` (RelatedPerson/<id>), for that proxy acting for them."""
    provision: dict[str, Any] = {"type": "deny" if access.level is OnlineLevel.NONE else "permit"}
    if access.level is not OnlineLevel.NONE:
        provision["code"] = [{"coding": [{"system": SYSTEM, "code": access.level.value}]}]
    if access.since is not None:
        provision["dataPeriod"] = {"start": access.since.isoformat()}
    if proxy is not None:
        provision["actor"] = [{"role": {"coding": [RECIPIENT]}, "reference": {"reference": proxy}}]
    body: dict[str, Any] = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [SCOPE]},
        "category": [{"coding": [CATEGORY]}],
        "dateTime": instant(recorded),
        "policyRule": {"coding": [OPT_IN]},
        "provision": provision,
    }
    if patient_id is not None:
        body["patient"] = {"reference": f"Patient/{patient_id}"}
    if organization_id is not None:
        body["organization"] = [{"reference": f"Organization/{organization_id}"}]
    return body


def read_consent(body: dict[str, Any]) -> OnlineRecordAccess | None:
    """The access a Consent of ours records; None when it is not one, or not well formed
    (then it is ignored, and the next one down applies)."""
    provision = body.get("provision")
    if not isinstance(provision, dict):
        return None
    since = None
    period = provision.get("dataPeriod")
    if isinstance(period, dict) and isinstance(period.get("start"), str):
        try:
            since = date.fromisoformat(period["start"][:10])
        except ValueError:
            return None
    if provision.get("type") == "deny":
        return OnlineRecordAccess(OnlineLevel.NONE, since)
    codes = [
        c.get("code")
        for concept in provision.get("code") or ()
        if isinstance(concept, dict)
        for c in concept.get("coding") or ()
        if isinstance(c, dict) and c.get("system") == SYSTEM
    ]
    levels = [level for level in OnlineLevel if level.value in codes]
    if provision.get("type") != "permit" or len(levels) != 1:
        return None
    return OnlineRecordAccess(levels[0], since)


def _actors(body: dict[str, Any]) -> list[str]:
    actors = (body.get("provision") or {}).get("actor") or ()
    return [
        str((a.get("reference") or {}).get("reference"))
        for a in actors
        if isinstance(a, dict) and isinstance(a.get("reference"), dict)
    ]


def _newest(bodies: list[dict[str, Any]]) -> OnlineRecordAccess | None:
    def when(body: dict[str, Any]) -> tuple[str, str]:
        return str(body.get("dateTime", "")), str(body.get("meta", {}).get("lastUpdated", ""))

    for body in sorted(bodies, key=when, reverse=True):
        access = read_consent(body)
        if access is not None:
            return access
    return None


def consents(tx: ReadTransaction, patient_id: str | None) -> list[dict[str, Any]]:
    """The active online-access Consents of a patient (None: the practice's defaults)."""
    who = (
        ("patient:missing", "true") if patient_id is None else ("patient", f"Patient/{patient_id}")
    )
    pairs = [who, ("category", f"{SYSTEM}|online-record-access"), ("status", "active")]
    ids = tx.find(parse_query("Consent", pairs, strict=True), MAX_CONSENTS)
    stored = tx.read_many("Consent", ids)
    return [orjson.loads(s.content) for s in stored if s.content is not None and not s.deleted]


def practice_default(tx: ReadTransaction) -> OnlineRecordAccess:
    found = [c for c in consents(tx, None) if not _actors(c)]
    return _newest(found) or BUILT_IN_DEFAULT


def patient_access(
    tx: ReadTransaction, patient_id: str, proxy: str | None = None
) -> OnlineRecordAccess:
    """What `patient_id` sees online; with `proxy` (RelatedPerson/<id>), what that proxy
    sees of their record: never more than the patient."""
    found = consents(tx, patient_id)
    own = _newest([c for c in found if not _actors(c)]) or practice_default(tx)
    if proxy is None:
        return own
    theirs = _newest([c for c in found if proxy in _actors(c)])
    return own if theirs is None else own.narrowed(theirs)


def online_access(tx: ReadTransaction, principal: Principal, patient_id: str) -> OnlineRecordAccess:
    """What `principal` (a patient, or a proxy acting for `patient_id`) sees online."""
    proxy = principal.fhir_user if principal.kind == "proxy" else None
    if proxy is not None and not proxy.startswith("RelatedPerson/"):
        proxy = None
    return patient_access(tx, patient_id, proxy)
