"""A patient's online record access, set by Systems Support: find the patient by NHS number,
then choose the level and whether it covers the full history or only entries from a day
(prospective access). Kept as a Consent in the patient's record (access/online_access.py),
written with its Provenance and audit entry in one transaction.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from opengp.access import online_access
from opengp.access.audit import Action, entry_for
from opengp.access.policy import LEVEL_NAMES, OnlineLevel, OnlineRecordAccess
from opengp.access.principal import Principal
from opengp.api.web import pages
from opengp.api.web.accounts_access import ACCOUNTS, ONLINE_ACCESS, manager, manager_post
from opengp.api.web.areas import STAFF, Web
from opengp.api.web.guard import refused, see_other
from opengp.api.web.service_calls import call, day_text
from opengp.api.web.session import SignedIn
from opengp.fhir.nhs_number import is_valid_nhs_number
from opengp.search.query import parse_query
from opengp.services.fhir import provenance
from opengp.store import ReadTransaction
from opengp.store.sql import SqlStore

NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
NO_PATIENT = "There is no such patient."


async def find(web: Web, request: Request) -> Response:
    signed = await manager(web, request)
    if isinstance(signed, Response):
        return signed
    asked = request.query_params.get("nhs_number")
    if asked is None:
        return _find_page(signed, "", {})
    number = "".join(asked.split())
    if not (len(number) == 10 and number.isascii() and number.isdigit()):
        return _find_page(signed, asked, {"nhs_number": "Enter a 10-digit NHS number"}, 400)
    if not is_valid_nhs_number(number):
        message = "That is not a valid NHS number: check it and try again"
        return _find_page(signed, asked, {"nhs_number": message}, 400)

    def search() -> list[str]:
        query = parse_query("Patient", [("identifier", f"{NHS_NUMBER}|{number}")], strict=True)
        with web.store.reading() as tx:
            return tx.find(query, 2)

    found = await call(STAFF, signed, search)
    if isinstance(found, Response):
        return found
    if len(found) != 1:
        return _find_page(signed, asked, {"nhs_number": "No patient has this NHS number"}, 404)
    return see_other(f"{ONLINE_ACCESS}/{found[0]}")


def _find_page(signed: SignedIn, value: str, errors: dict[str, str], status: int = 200) -> Response:
    context = STAFF.page(
        "Patients' online record access", signed, back_href=ACCOUNTS, value=value, errors=errors
    )
    return pages.render("accounts_online_find.jinja", context, status=status)


def _patient(web: Web, id: str) -> tuple[dict[str, Any], OnlineRecordAccess, bool] | None:
    """The patient (name and NHS number to recognise them), what they see online, and
    whether that is their own level (else the practice default)."""
    with web.store.reading() as tx:
        stored = tx.current("Patient", id)
        if stored is None or stored.deleted or stored.content is None:
            return None
        body = orjson.loads(stored.content)
        own = online_access.patient_access(tx, id)
        has_own = bool(_own_consents(tx, id))
    names = body.get("name") or [{}]
    name = " ".join([*names[0].get("given", []), names[0].get("family", "")]).strip()
    number = next(
        (i.get("value") for i in body.get("identifier", []) if i.get("system") == NHS_NUMBER), ""
    )
    return {"id": id, "name": name or "No name recorded", "nhs_number": number}, own, has_own


async def _patient_found(
    web: Web, signed: SignedIn, id: str
) -> tuple[dict[str, Any], OnlineRecordAccess, bool] | Response:
    """The patient, what they may see online, and whether they have their own account; the
    problem page when there is no such patient."""
    found = await call(STAFF, signed, lambda: _patient(web, id))
    if isinstance(found, Response):
        return found
    if found is None:
        return refused(STAFF, NO_PATIENT, 404, signed)
    return found


async def show(web: Web, request: Request) -> Response:
    signed = await manager(web, request)
    if isinstance(signed, Response):
        return signed
    found = await _patient_found(web, signed, request.path_params["id"])
    if isinstance(found, Response):
        return found
    patient, current, own = found
    values = {
        "level": current.level.value,
        "history": "from" if current.since else "full",
        **_date_values(current.since),
    }
    saved = request.query_params.get("saved") == "1"
    return _page(signed, patient, current, own, values, {}, saved=saved)


def _date_values(day: date | None) -> dict[str, str]:
    if day is None:
        return {"since-day": "", "since-month": "", "since-year": ""}
    return {"since-day": str(day.day), "since-month": str(day.month), "since-year": str(day.year)}


async def save(web: Web, request: Request) -> Response:
    posted = await manager_post(web, request)
    if isinstance(posted, Response):
        return posted
    signed, form = posted
    id = request.path_params["id"]
    found = await _patient_found(web, signed, id)
    if isinstance(found, Response):
        return found
    patient, current, own = found
    errors: dict[str, str] = {}
    level = next((lv for lv in OnlineLevel if lv.value == form.get("level")), None)
    if level is None:
        errors["level"] = "Select what the patient may see online"
    history = form.get("history")
    since = None
    if history not in ("full", "from"):
        errors["history"] = "Select whether they see their full record or entries from a date"
    elif history == "from":
        since = _day(form)
        if since is None:
            errors["since"] = "Enter the date access starts from as a real date, like 31 10 2023"
    if errors or level is None:
        return _page(signed, patient, current, own, form, errors, status=400)
    chosen = OnlineRecordAccess(level, since)
    principal = signed.principal
    done = await call(STAFF, signed, lambda: set_online_access(web.store, principal, id, chosen))
    if isinstance(done, Response):
        return done
    return see_other(f"{ONLINE_ACCESS}/{id}?saved=1")


def _day(form: dict[str, str]) -> date | None:
    parts = [form.get(f"since-{p}", "").strip() for p in ("year", "month", "day")]
    if not all(p.isascii() and p.isdigit() and len(p) <= 4 for p in parts):
        return None
    try:
        day = date(*(int(p) for p in parts))
    except ValueError:
        return None
    return day if day.year >= 1900 else None


def _own_consents(tx: ReadTransaction, patient_id: str) -> list[dict[str, Any]]:
    """The patient's own online-access Consents (not those of their proxies)."""
    found = online_access.consents(tx, patient_id)
    return [c for c in found if not (c.get("provision") or {}).get("actor")]


def set_online_access(
    store: SqlStore, principal: Principal, patient_id: str, access: OnlineRecordAccess
) -> None:
    """Record `access` as the patient's own level: their Consent updated (or made), with
    its Provenance and audit entry, in one transaction."""
    with store.writing() as tx:
        now = tx.clock()
        existing = _own_consents(tx, patient_id)
        body = online_access.consent(
            access,
            patient_id=patient_id,
            recorded=now,
            organization_id=principal.organization_id,
        )
        if existing:
            previous = tx.current("Consent", str(existing[0]["id"]), for_update=True)
            body["id"] = str(existing[0]["id"])
            stored = tx.save("Consent", body["id"], body, method="PUT", previous=previous)
            interaction: Action = "update"
        else:
            body["id"] = str(uuid.uuid4())
            stored = tx.save("Consent", body["id"], body, method="POST", previous=None)
            interaction = "create"
        provenance.record(tx, principal, interaction, 200 if existing else 201, stored)
        tx.audit(
            entry_for(
                principal,
                interaction,
                patient_id=patient_id,
                resource_type="Consent",
                resource_id=stored.id,
                detail={"screen": "accounts", "what": "online record access"},
            )
        )


def _page(
    signed: SignedIn,
    patient: dict[str, Any],
    current: OnlineRecordAccess,
    own: bool,
    values: dict[str, str],
    errors: dict[str, str],
    *,
    status: int = 200,
    saved: bool = False,
) -> Response:
    context = STAFF.page(
        "Online record access",
        signed,
        back_href=ONLINE_ACCESS,
        patient=patient,
        current={
            "level": LEVEL_NAMES[current.level],
            "history": f"Entries from {day_text(current.since)}"
            if current.since
            else "Full history",
            "source": "Set for this patient" if own else "The practice default",
        },
        levels=[{"value": lv.value, "text": LEVEL_NAMES[lv]} for lv in OnlineLevel],
        values=values,
        errors=errors,
        saved=saved,
    )
    return pages.render("accounts_online.jinja", context, status=status)
