"""The sessions of an appointment book (its rota): adding one, with every field checked and
named in plain English, and removing one.

A session is `services.appointments.Session`: days of the week, start and end, the slot
length (which must divide the session: no short slot at the end), the practice's own name
for the slot type, its National Slot Type Category, how it is delivered, and how many days
ahead it opens to online booking. A home visit is a face-to-face session of the national
category "Home Visit" (GPAD counts its mode from that category: services/appointments/
report.py), so the form offers it as a fourth way of delivering and keeps the two in step.
Changing the rota changes no slot already made (`set_rota`).
"""

from __future__ import annotations

import hashlib
import re
from datetime import time

from starlette.requests import Request
from starlette.responses import Response

from opengp.api.web import pages
from opengp.api.web.areas import STAFF, Web
from opengp.api.web.guard import refused, see_other
from opengp.api.web.practice_admin_access import (
    BOOKS,
    organization,
    practice_admin_post_with,
    practice_admin_with,
)
from opengp.api.web.practice_admin_directory import Book, book, books
from opengp.api.web.service_calls import call
from opengp.api.web.session import SignedIn
from opengp.fhir.errors import Unprocessable
from opengp.services import appointments as booking
from opengp.services.appointments.codes import HOME_VISIT_CATEGORY
from opengp.services.appointments.rota import DAYS, MAX_ONLINE_DAYS, check_rota

DAY_NAMES = dict(zip(DAYS, ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
                            "Sunday"), strict=True))  # fmt: skip
HOME_VISIT = "home_visit"
CHANNELS = {
    "channel_in_person": "Face to face",
    "channel_telephone": "Telephone",
    "channel_video": "Video",
    HOME_VISIT: "Home visit",
}
TIME = re.compile(r"([01]?\d|2[0-3])[:.]([0-5]\d)")
MIN_SLOT, MAX_SLOT = 5, 240
MAX_TEXT = 100
FIELDS = ("name", "days", "start", "end", "slot_minutes", "slot_type", "category", "channel",
          "online_days_ahead")  # fmt: skip
OVERLAP = "This session overlaps another session of this appointment book: change its days or times"
# The form's field names: one checkbox of its own per day (the form reader keeps one value
# per name).
FORM_FIELDS = tuple(f for f in FIELDS if f != "days") + tuple(f"day_{d}" for d in DAYS)


def categories() -> dict[str, str]:
    return {c.key: c.display for c in booking.slot_categories()}


def channel_of(session: booking.Session) -> str:
    """The form's (and the page's) way of delivering a session."""
    return HOME_VISIT if session.category == HOME_VISIT_CATEGORY else session.channel


def session_key(session: booking.Session) -> str:
    """A short name for one session of a rota, stable while the session is unchanged."""
    return hashlib.sha256(repr(session).encode()).hexdigest()[:16]


def days_text(days: tuple[str, ...]) -> str:
    ordered = [d for d in DAYS if d in days]
    at = [DAYS.index(d) for d in ordered]
    if len(at) >= 3 and at == list(range(at[0], at[-1] + 1)):
        return f"{DAY_NAMES[ordered[0]]} to {DAY_NAMES[ordered[-1]]}"
    return ", ".join(DAY_NAMES[d] for d in ordered)


def clock_text(value: time) -> str:
    return value.strftime("%H:%M")


def describe(session: booking.Session) -> dict[str, str]:
    """One session, in the words of the pages."""
    online = session.online_days_ahead
    return {
        "key": session_key(session),
        "name": session.name or session.slot_type,
        "days": days_text(session.days),
        "times": f"{clock_text(session.start)} to {clock_text(session.end)}",
        "slots": f"{session.slot_minutes} minutes",
        "slot_type": session.slot_type,
        "category": categories().get(session.category, session.category),
        "channel": CHANNELS.get(channel_of(session), session.channel),
        "online": "Not bookable online" if online is None else f"Opens {online} days ahead",
    }


async def own_book(web: Web, signed: SignedIn, schedule_id: str) -> Book | Response:
    principal, org = signed.principal, organization(signed)
    found = await call(STAFF, signed, lambda: book(web.store, principal, org, schedule_id))
    if isinstance(found, Response) or found is not None:
        return found
    return refused(STAFF, "That appointment book is not one of your practice's.", 404, signed)
    return found


async def new_session(web: Web, request: Request) -> Response:
    allowed = await practice_admin_with(
        web, request, lambda s: own_book(web, s, request.path_params["id"])
    )
    if isinstance(allowed, Response):
        return allowed
    signed, found = allowed
    return _form(signed, found, {"slot_minutes": "15", "channel": "channel_in_person"}, {})


async def add_session(web: Web, request: Request) -> Response:
    posted = await practice_admin_post_with(
        web, request, lambda s: own_book(web, s, request.path_params["id"])
    )
    if isinstance(posted, Response):
        return posted
    signed, form, found = posted
    session, errors = read_session(form)
    if session is not None:
        clash = await _clash(web, signed, found, session)
        if isinstance(clash, Response):
            return clash
        if clash:
            errors["start"] = clash
    if session is None or errors:
        return _form(signed, found, form, errors, status=400)
    principal, sessions = signed.principal, (*found.summary.sessions, session)
    done = await call(
        STAFF, signed, lambda: booking.set_rota(web.store, principal, found.id, sessions)
    )
    if isinstance(done, Response):
        return done
    return see_other(f"{BOOKS}/{found.id}?changed=added")


async def remove_session(web: Web, request: Request) -> Response:
    posted = await practice_admin_post_with(
        web, request, lambda s: own_book(web, s, request.path_params["id"])
    )
    if isinstance(posted, Response):
        return posted
    signed, _, found = posted
    key = request.path_params["key"]
    kept = tuple(s for s in found.summary.sessions if session_key(s) != key)
    if len(kept) == len(found.summary.sessions):
        message = "That session has already been changed or removed. Go back and try again."
        return refused(STAFF, message, 409, signed)
    principal = signed.principal
    done = await call(STAFF, signed, lambda: booking.set_rota(web.store, principal, found.id, kept))
    if isinstance(done, Response):
        return done
    return see_other(f"{BOOKS}/{found.id}?changed=removed")


async def _clash(
    web: Web, signed: SignedIn, found: Book, session: booking.Session
) -> str | Response | None:
    """Why the session cannot join this book's rota: it overlaps one of the book's sessions,
    or one of the same clinician's sessions in another book (at another site), which would
    put two slots at once in the clinician's day. None when it fits."""
    try:
        check_rota([*found.summary.sessions, session])
    except Unprocessable:
        return OVERLAP
    principal, org = signed.principal, organization(signed)
    theirs = await call(STAFF, signed, lambda: books(web.store, principal, org))
    if isinstance(theirs, Response):
        return theirs
    role = found.summary.practitioner_role_id
    for other in theirs:
        if other.id == found.id or role is None or other.summary.practitioner_role_id != role:
            continue
        try:
            check_rota([*other.summary.sessions, session])
        except Unprocessable:
            return (
                f"{found.clinician} already has a session at these times in their book at "
                f"{other.site}: change its days or times"
            )
    return None


def _form(
    signed: SignedIn,
    found: Book,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
) -> Response:
    context = STAFF.page(
        "Add a session",
        signed,
        back_href=f"{BOOKS}/{found.id}",
        book=found,
        values=values,
        errors=errors,
        days=DAY_NAMES,
        categories=categories(),
        channels=CHANNELS,
        max_online=MAX_ONLINE_DAYS,
    )
    return pages.render("admin_session_new.jinja", context, status=status)


def read_session(form: dict[str, str]) -> tuple[booking.Session | None, dict[str, str]]:
    """The session the form describes, or the problems with it (field id -> message, in the
    form's order)."""
    problems: dict[str, str] = {}
    name = form.get("name", "").strip()
    if len(name) > MAX_TEXT:
        problems["name"] = f"The session's name must be {MAX_TEXT} characters or fewer"
    days = tuple(d for d in DAYS if form.get(f"day_{d}"))
    if not days:
        problems["days"] = "Select the days of the week the session runs"
    start = _clock(form.get("start", ""), "start", problems)
    end = _clock(form.get("end", ""), "end", problems)
    if start is not None and end is not None and end <= start:
        problems["end"] = "The end time must be after the start time"
    minutes = _slot_minutes(form.get("slot_minutes", ""), start, end, problems)
    slot_type = " ".join(form.get("slot_type", "").split())
    if not slot_type:
        problems["slot_type"] = "Enter the type of appointment, like Routine GP appointment"
    elif len(slot_type) > MAX_TEXT:
        problems["slot_type"] = f"The type of appointment must be {MAX_TEXT} characters or fewer"
    category, channel = form.get("category", ""), form.get("channel", "")
    if category not in categories():
        problems["category"] = "Select the National Slot Type Category"
    if channel not in CHANNELS:
        problems["channel"] = "Select how the appointment is delivered"
    elif channel == HOME_VISIT and "category" not in problems and category != HOME_VISIT_CATEGORY:
        problems["category"] = "A home visit session must have the category Home Visit"
    elif channel != HOME_VISIT and category == HOME_VISIT_CATEGORY:
        problems["channel"] = "Select Home visit for a session of the category Home Visit"
    online = _online_days(form.get("online_days_ahead", ""), problems)
    if problems or start is None or end is None or minutes is None:
        return None, {k: problems[k] for k in FIELDS if k in problems}
    session = booking.Session(
        days=days,
        start=start,
        end=end,
        slot_minutes=minutes,
        slot_type=slot_type,
        category=category,
        channel="channel_in_person" if channel == HOME_VISIT else channel,
        online_days_ahead=online,
        name=name,
    )
    return session, {}


def _clock(text: str, field: str, problems: dict[str, str]) -> time | None:
    match = TIME.fullmatch(text.strip())
    if match is None:
        which = "start" if field == "start" else "end"
        problems[field] = f"Enter the {which} time in hours and minutes, like 09:00 or 13:30"
        return None
    return time(int(match.group(1)), int(match.group(2)))


def _slot_minutes(
    text: str, start: time | None, end: time | None, problems: dict[str, str]
) -> int | None:
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 3:
        problems["slot_minutes"] = "Enter the slot length as a whole number of minutes, like 15"
        return None
    minutes = int(text)
    if not MIN_SLOT <= minutes <= MAX_SLOT:
        problems["slot_minutes"] = f"The slot length must be {MIN_SLOT} to {MAX_SLOT} minutes"
        return None
    if start is None or end is None or end <= start:
        return minutes
    length = (end.hour - start.hour) * 60 + end.minute - start.minute
    if length < minutes:
        problems["slot_minutes"] = f"The slot length must fit in the {length}-minute session"
    elif length % minutes:
        problems["slot_minutes"] = (
            f"A {length}-minute session does not divide into {minutes}-minute slots: "
            "choose a length that divides it exactly, or change the times"
        )
    return minutes


def _online_days(text: str, problems: dict[str, str]) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or int(text) > MAX_ONLINE_DAYS:
        problems["online_days_ahead"] = (
            f"Enter how many days ahead patients may book online, from 0 to {MAX_ONLINE_DAYS}, "
            "or leave it empty"
        )
        return None
    return int(text)
