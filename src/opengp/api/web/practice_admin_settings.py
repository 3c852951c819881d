"""The practice's online booking settings: which types of appointment patients may book
online (nothing until the practice chooses: `PracticeSettings`), how far ahead, and until
how many hours before an appointment they may cancel it online.

The types offered are those of the practice's books' sessions, and any already chosen
(so a type whose sessions have ended can still be taken off). Each is a checkbox of its
own name (`type_<n>`): the form reader keeps one value per name.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from opengp.api.web import pages
from opengp.api.web.areas import STAFF, Web
from opengp.api.web.forms import MAX_FIELDS
from opengp.api.web.guard import see_other
from opengp.api.web.practice_admin_access import (
    ONLINE,
    organization,
    practice_admin_post_with,
    practice_admin_with,
)
from opengp.api.web.practice_admin_directory import books
from opengp.api.web.service_calls import call
from opengp.api.web.session import SignedIn
from opengp.services import appointments as booking
from opengp.services.appointments.settings import MAX_CUTOFF_HOURS, MAX_HORIZON_DAYS

# The form's other fields: the CSRF token, the horizon and the cut-off.
MAX_TYPES = MAX_FIELDS - 3


async def show(web: Web, request: Request) -> Response:
    allowed = await practice_admin_with(web, request, lambda s: _load(web, s))
    if isinstance(allowed, Response):
        return allowed
    signed, loaded = allowed
    current, types = loaded
    values = {
        "online_horizon_days": str(current.online_horizon_days),
        "cancellation_cutoff_hours": str(current.cancellation_cutoff_hours),
    }
    saved = request.query_params.get("saved") == "1"
    return _page(signed, types, values, set(current.online_slot_types), {}, saved=saved)


async def save(web: Web, request: Request) -> Response:
    posted = await practice_admin_post_with(web, request, lambda s: _load(web, s))
    if isinstance(posted, Response):
        return posted
    signed, form, loaded = posted
    _, types = loaded
    chosen = {v for k, v in form.items() if k.startswith("type_")}
    errors: dict[str, str] = {}
    if not chosen <= set(types):
        errors["types"] = "Select only the types of appointment listed"
    horizon = _whole(form.get("online_horizon_days", ""), MAX_HORIZON_DAYS)
    if horizon is None:
        errors["online_horizon_days"] = (
            f"Enter how many days ahead patients may book, from 0 to {MAX_HORIZON_DAYS}"
        )
    cutoff = _whole(form.get("cancellation_cutoff_hours", ""), MAX_CUTOFF_HOURS)
    if cutoff is None:
        errors["cancellation_cutoff_hours"] = (
            f"Enter the cancellation cut-off as a whole number of hours, from 0 to "
            f"{MAX_CUTOFF_HOURS}"
        )
    if errors or horizon is None or cutoff is None:
        return _page(signed, types, form, chosen, errors, status=400)
    settings = booking.PracticeSettings(horizon, cutoff, frozenset(chosen))
    principal, org = signed.principal, organization(signed)
    done = await call(
        STAFF, signed, lambda: booking.save_practice_settings(web.store, principal, org, settings)
    )
    if isinstance(done, Response):
        return done
    return see_other(f"{ONLINE}?saved=1")


async def _load(
    web: Web, signed: SignedIn
) -> tuple[booking.PracticeSettings, list[str]] | Response:
    principal, org = signed.principal, organization(signed)

    def work() -> tuple[booking.PracticeSettings, list[str]]:
        current = booking.practice_settings(web.store, principal, org)
        offered = {t for b in books(web.store, principal, org) for t in b.summary.slot_types}
        # Those already offered online first: a save must not drop one unseen.
        ranked = sorted(current.online_slot_types) + sorted(offered - current.online_slot_types)
        return current, sorted(ranked[:MAX_TYPES], key=str.lower)

    return await call(STAFF, signed, work)


def _whole(text: str, most: int) -> int | None:
    text = text.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 6) or int(text) > most:
        return None
    return int(text)


def _page(
    signed: SignedIn,
    types: list[str],
    values: dict[str, str],
    chosen: set[str],
    errors: dict[str, str],
    *,
    status: int = 200,
    saved: bool = False,
) -> Response:
    context = STAFF.page(
        "Online booking",
        signed,
        back_href=STAFF.home,
        types=[
            {"name": f"type_{i}", "value": t, "checked": t in chosen} for i, t in enumerate(types)
        ],
        values=values,
        errors=errors,
        saved=saved,
        max_horizon=MAX_HORIZON_DAYS,
        max_cutoff=MAX_CUTOFF_HOURS,
    )
    return pages.render("admin_online_booking.jinja", context, status=status)
