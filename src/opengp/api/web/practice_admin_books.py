"""The practice's appointment books (one Schedule per clinician and site): the list, a new
book, and one book's page with its sessions and the making of its slots weeks ahead.

Making slots is idempotent (services/appointments/generation.py): a slot's id comes from its
book and start, and a time already in the book is left alone, so the page says how many
were made and how many were there already, and running it again makes no second slot.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from opengp.api.web import pages
from opengp.api.web.areas import STAFF, Web
from opengp.api.web.guard import see_other
from opengp.api.web.practice_admin_access import (
    BOOKS,
    SLOTS,
    admin,
    organization,
    practice_admin_post_with,
    practice_admin_with,
)
from opengp.api.web.practice_admin_directory import Book, Directory, books, directory
from opengp.api.web.practice_admin_sessions import describe, own_book
from opengp.api.web.service_calls import call, day_text
from opengp.api.web.session import SignedIn
from opengp.services import appointments as booking
from opengp.services.appointments import times
from opengp.services.appointments.generation import MAX_WEEKS

DEFAULT_WEEKS = 4
CHANGES = {"added": "Session added", "removed": "Session removed", "created": "Book created"}


async def list_books(web: Web, request: Request) -> Response:
    signed = await admin(web, request, practice=True)
    if isinstance(signed, Response):
        return signed
    principal, org = signed.principal, organization(signed)
    found = await call(STAFF, signed, lambda: books(web.store, principal, org))
    if isinstance(found, Response):
        return found
    rows = [
        {"id": b.id, "clinician": b.clinician, "site": b.site, "sessions": len(b.summary.sessions)}
        for b in sorted(found, key=lambda b: (b.clinician.lower(), b.site.lower(), b.id))
    ]
    context = STAFF.page("Appointment books", signed, back_href=STAFF.home, books=rows)
    return pages.render("admin_books.jinja", context)


async def new_book(web: Web, request: Request) -> Response:
    allowed = await practice_admin_with(web, request, lambda s: _directory(web, s))
    if isinstance(allowed, Response):
        return allowed
    signed, known = allowed
    return _new_book_page(signed, known, {}, {})


async def create_book(web: Web, request: Request) -> Response:
    posted = await practice_admin_post_with(web, request, lambda s: _directory(web, s))
    if isinstance(posted, Response):
        return posted
    signed, form, known = posted
    role, site = form.get("clinician", ""), form.get("site", "")
    errors = {}
    if role not in known.clinicians:
        errors["clinician"] = "Select the clinician whose appointment book this is"
    if site not in known.sites:
        errors["site"] = "Select the site where the clinician sees patients"
    if errors:
        return _new_book_page(signed, known, form, errors, status=400)
    principal, org = signed.principal, organization(signed)
    existing = await call(STAFF, signed, lambda: books(web.store, principal, org))
    if isinstance(existing, Response):
        return existing
    if any(
        b.summary.practitioner_role_id == role and b.summary.location_id == site for b in existing
    ):
        message = (
            f"{known.clinicians[role]} already has an appointment book at {known.sites[site]}: "
            "add sessions to that one"
        )
        return _new_book_page(signed, known, form, {"clinician": message}, status=400)
    made = await call(
        STAFF,
        signed,
        lambda: booking.create_schedule(
            web.store, principal, practitioner_role_id=role, location_id=site
        ),
    )
    if isinstance(made, Response):
        return made
    return see_other(f"{BOOKS}/{made.id}?changed=created")


async def show_book(web: Web, request: Request) -> Response:
    allowed = await practice_admin_with(
        web, request, lambda s: own_book(web, s, request.path_params["id"])
    )
    if isinstance(allowed, Response):
        return allowed
    signed, found = allowed
    query = request.query_params
    made = {k: query.get(k, "") for k in ("made", "skipped", "weeks")}
    generated = made if all(v.isascii() and v.isdigit() for v in made.values()) else None
    return _book_page(
        signed, found, {}, {}, changed=CHANGES.get(query.get("changed", "")), generated=generated
    )


async def generate(web: Web, request: Request) -> Response:
    posted = await practice_admin_post_with(
        web, request, lambda s: own_book(web, s, request.path_params["id"])
    )
    if isinstance(posted, Response):
        return posted
    signed, form, found = posted
    text = form.get("weeks", "").strip()
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_WEEKS):
        message = f"Enter how many weeks ahead to make slots for, from 1 to {MAX_WEEKS}"
        return _book_page(signed, found, form, {"weeks": message}, status=400)
    if not found.summary.sessions:
        message = "Add a session before making slots: the slots come from the sessions"
        return _book_page(signed, found, form, {"weeks": message}, status=400)
    weeks, principal = int(text), signed.principal
    done = await call(
        STAFF,
        signed,
        lambda: booking.generate_slots(web.store, principal, found.id, weeks=weeks),
    )
    if isinstance(done, Response):
        return done
    return see_other(f"{BOOKS}/{found.id}?made={done.created}&skipped={done.skipped}&weeks={weeks}")


async def _directory(web: Web, signed: SignedIn) -> Directory | Response:
    principal, org = signed.principal, organization(signed)
    return await call(STAFF, signed, lambda: directory(web.store, principal, org))


def _new_book_page(
    signed: SignedIn,
    known: Directory,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
) -> Response:
    context = STAFF.page(
        "Create an appointment book",
        signed,
        back_href=BOOKS,
        clinicians=known.clinicians,
        sites=known.sites,
        values=values,
        errors=errors,
    )
    return pages.render("admin_book_new.jinja", context, status=status)


def _book_page(
    signed: SignedIn,
    found: Book,
    values: dict[str, str],
    errors: dict[str, str],
    *,
    status: int = 200,
    changed: str | None = None,
    generated: dict[str, str] | None = None,
) -> Response:
    today = times.local_day(times.now_utc())
    context = STAFF.page(
        f"Appointment book: {found.clinician}",
        signed,
        back_href=BOOKS,
        book=found,
        sessions=[describe(s) for s in found.summary.sessions],
        values={"weeks": str(DEFAULT_WEEKS), **values},
        errors=errors,
        changed=changed,
        generated=generated,
        max_weeks=MAX_WEEKS,
        today=day_text(today),
        slots_href=f"{SLOTS}?clinician={found.summary.practitioner_role_id or ''}",
    )
    return pages.render("admin_book.jinja", context, status=status)
