"""Blocking and releasing slots of a clinician's day: choose the slots, confirm, done.

The day shows every slot of the clinician's books (`day_list`): free ones may be blocked
(leave, training, a meeting: R4 `busy-unavailable`, the reason in `Slot.comment`), blocked
ones released, and a booked one neither (the appointment holds it: cancel or move that
first). Choosing is a GET form (nothing changes); the confirmation page POSTs, with the
chosen slots in its address, and the service checks every slot again in one transaction:
all change or none does.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from opengp.api.web import pages
from opengp.api.web.areas import STAFF, Web
from opengp.api.web.guard import see_other
from opengp.api.web.practice_admin_access import SLOTS, admin, admin_post, organization
from opengp.api.web.practice_admin_directory import directory
from opengp.api.web.service_calls import call, day_text, time_text
from opengp.api.web.session import SignedIn
from opengp.services import appointments as booking
from opengp.services.appointments import times

# action -> (the status it needs, its button, what it did)
ACTIONS = {
    "block": ("free", "Block", "blocked"),
    "release": ("busy-unavailable", "Release", "released"),
}
MAX_REASON = 200
MAX_CHOSEN = 200
FIRST_YEAR, LAST_YEAR = 2000, 2200  # an appointment book's days, not any date at all


async def day(web: Web, request: Request) -> Response:
    """GET: the clinician and day to choose, then that day's slots."""
    signed = await admin(web, request, practice=True)
    if isinstance(signed, Response):
        return signed
    return await _day_page(web, signed, dict(request.query_params), {})


async def confirm(web: Web, request: Request) -> Response:
    """GET: are you sure (the chosen slots, again from the day's list)."""
    signed = await admin(web, request, practice=True)
    if isinstance(signed, Response):
        return signed
    query = request.query_params
    chosen = _chosen(query.getlist("slot"), query.get("action", ""), query.get("reason", ""))
    return await _confirm_page(web, signed, dict(query), chosen, post=None)


async def change(web: Web, request: Request) -> Response:
    """POST: block or release the slots the confirmation page names."""
    posted = await admin_post(web, request, practice=True)
    if isinstance(posted, Response):
        return posted
    signed, _ = posted
    query = request.query_params
    chosen = _chosen(query.getlist("slot"), query.get("action", ""), query.get("reason", ""))
    return await _confirm_page(web, signed, dict(query), chosen, post=True)


def _chosen(slot_ids: list[str], action: str, reason: str) -> tuple[list[str], str, str]:
    return list(dict.fromkeys(slot_ids))[:MAX_CHOSEN], action, " ".join(reason.split())


async def _confirm_page(
    web: Web,
    signed: SignedIn,
    query: dict[str, str],
    chosen: tuple[list[str], str, str],
    *,
    post: bool | None,
) -> Response:
    slot_ids, action, reason = chosen
    errors: dict[str, str] = {}
    if action not in ACTIONS:
        errors["slots"] = "Choose whether to block or release the slots"
    elif not slot_ids:
        errors["slots"] = f"Select the slots to {action}"
    elif action == "block" and not reason:
        errors["reason"] = "Say why the slots are blocked, like annual leave or training"
    elif len(reason) > MAX_REASON:
        errors["reason"] = f"The reason must be {MAX_REASON} characters or fewer"
    if errors:
        return await _day_page(web, signed, query, errors, status=400)
    shown = await _day(web, signed, query)
    if isinstance(shown, Response):
        return shown
    rows = {row["id"]: row for row in shown["rows"]}
    wanted_status = ACTIONS[action][0]
    wrong = [i for i in slot_ids if i not in rows or rows[i]["status_code"] != wanted_status]
    if wrong:
        verb = "free" if action == "block" else "blocked"
        message = f"Only {verb} slots of this day can be {ACTIONS[action][2]}: choose again"
        return await _day_page(web, signed, query, {"slots": message}, status=409)
    place = shown["place"]
    if post:
        principal = signed.principal
        if action == "block":
            done = await call(
                STAFF,
                signed,
                lambda: booking.block_slots(web.store, principal, slot_ids, reason=reason),
            )
        else:
            done = await call(
                STAFF, signed, lambda: booking.release_slots(web.store, principal, slot_ids)
            )
        if isinstance(done, Response):
            return done
        return see_other(f"{SLOTS}?{urlencode({**place, 'done': action, 'n': len(done)})}")
    address = urlencode(
        [*place.items(), ("action", action), ("reason", reason)] + [("slot", i) for i in slot_ids]
    )
    verb = ACTIONS[action][1]
    context = STAFF.page(
        f"{verb} {len(slot_ids)} slot{'s' if len(slot_ids) != 1 else ''}?",
        signed,
        back_href=f"{SLOTS}?{urlencode(place)}",
        chosen=[rows[i] for i in slot_ids],
        action=action,
        verb=verb,
        reason=reason,
        clinician=shown["clinician"],
        day=shown["day"],
        post_to=f"{SLOTS}/confirm?{address}",
    )
    return pages.render("admin_slots_confirm.jinja", context)


async def _day(web: Web, signed: SignedIn, query: dict[str, str]) -> dict[str, Any] | Response:
    """The chosen clinician's day (a dict for the page), its problems under "errors"."""
    principal, org = signed.principal, organization(signed)
    known = await call(STAFF, signed, lambda: directory(web.store, principal, org))
    if isinstance(known, Response):
        return known
    today = times.local_day(times.now_utc())
    errors: dict[str, str] = {}
    chosen = _date(query, today)
    if chosen is None:
        errors["day"] = "Enter a real date, like 7 1 2030"
    role = query.get("clinician", "")
    if role and role not in known.clinicians:
        errors["clinician"] = "Select one of the practice's clinicians"
    shown: dict[str, Any] = {
        "clinicians": known.clinicians,
        "clinician": known.clinicians.get(role, ""),
        "role": role if role in known.clinicians else "",
        "date": chosen or today,
        "day": day_text(chosen or today),
        "rows": [],
        "errors": errors,
    }
    when = chosen or today
    shown["place"] = {"clinician": shown["role"], "d": when.day, "m": when.month, "y": when.year}
    shown["earlier"] = _day_href(shown["role"], when - timedelta(days=1))
    shown["later"] = _day_href(shown["role"], when + timedelta(days=1))
    if errors or not shown["role"] or chosen is None:
        return shown
    listed = await call(
        STAFF,
        signed,
        lambda: booking.day_list(web.store, principal, chosen, practitioner_role_id=role),
    )
    if isinstance(listed, Response):
        return listed
    sites = {s.id: s for s in listed.schedules}
    shown["rows"] = [_row(r, sites, known.sites) for r in listed.rows]
    return shown


async def _day_page(
    web: Web, signed: SignedIn, query: dict[str, str], errors: dict[str, str], status: int = 200
) -> Response:
    shown = await _day(web, signed, query)
    if isinstance(shown, Response):
        return shown
    problems = {**shown.pop("errors"), **errors}
    done, count = query.get("done", ""), query.get("n", "")
    banner = None
    if done in ACTIONS and count.isascii() and count.isdigit():
        banner = f"{count} slot{'s' if count != '1' else ''} {ACTIONS[done][2]}"
    context = STAFF.page(
        "Block or release slots",
        signed,
        back_href=STAFF.home,
        errors=problems,
        banner=banner,
        reason=query.get("reason", ""),
        max_reason=MAX_REASON,
        **shown,
    )
    if problems and status == 200:
        status = 400
    return pages.render("admin_slots.jinja", context, status=status)


def _row(
    row: booking.DayListRow, books: dict[str, booking.ScheduleSummary], sites: dict[str, str]
) -> dict[str, Any]:
    slot = row.slot
    book = books.get(slot.schedule_id or "")
    booked = row.appointment is not None
    status = (
        "Booked"
        if booked
        else {"free": "Free", "busy-unavailable": "Blocked"}.get(
            slot.status, slot.status.capitalize()
        )
    )
    return {
        "id": slot.id,
        "time": f"{time_text(slot.start)} to {time_text(slot.end)}",
        "type": slot.slot_type or "",
        "site": sites.get(book.location_id or "", "") if book else "",
        "status": status,
        "status_code": "booked" if booked else slot.status,
        "comment": slot.comment or "",
    }


def _date(query: dict[str, str], default: date) -> date | None:
    parts = [query.get(k, "").strip() for k in ("d", "m", "y")]
    if not any(parts):
        return default
    if not all(p.isascii() and p.isdigit() and len(p) <= 4 for p in parts):
        return None
    if not FIRST_YEAR <= int(parts[2]) <= LAST_YEAR:
        return None
    try:
        return date(int(parts[2]), int(parts[1]), int(parts[0]))
    except ValueError:
        return None


def _day_href(role: str, when: date) -> str:
    return (
        f"{SLOTS}?{urlencode({'clinician': role, 'd': when.day, 'm': when.month, 'y': when.year})}"
    )
