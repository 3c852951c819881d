"""Who may use the practice admin screens (rotas, slots, online booking, the weekly report),
and the first thing each of them does: the staff guard, then the role check.

The role check is the access policy's own table (`access/policy.py`): a member of staff
whose roles may create, update and search appointment records (Schedule, Slot,
Appointment) may manage the appointment book. The services decide again on every call; the
screens ask first only to refuse with a clear page, and to show the links on the staff
home page only to those who may follow them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response

from opengp.access.policy import Category, role_allows
from opengp.access.principal import Principal
from opengp.api.web import pages
from opengp.api.web.areas import STAFF, Web
from opengp.api.web.guard import refused, signed_in, signed_in_post
from opengp.api.web.session import SignedIn

BOOKS = "/staff/practice/books"
SLOTS = "/staff/practice/slots"
ONLINE = "/staff/practice/online-booking"
REPORT = "/staff/practice/report"
NOT_ALLOWED = "Your access role does not let you manage the practice's appointments."
NO_PRACTICE = "Your account is not linked to a GP practice, so there is nothing to show here."

T = TypeVar("T")


def may_manage_appointments(principal: Principal) -> bool:
    """Whether the policy lets this member of staff run the appointment book."""
    return principal.kind == "staff" and all(
        role_allows(principal.roles, Category.APPOINTMENTS, p) for p in "cus"
    )


# The staff home page shows the practice admin links only to those who may use them.
pages.ENVIRONMENT.globals["may_manage_appointments"] = may_manage_appointments


async def admin(web: Web, request: Request, *, practice: bool = False) -> SignedIn | Response:
    """The signed-in member of staff, when they may manage appointments (and, with
    `practice`, act for a practice); otherwise the page to send."""
    signed = await signed_in(web, STAFF, request)
    if isinstance(signed, Response):
        return signed
    return _allowed(signed, practice)


async def admin_post(
    web: Web, request: Request, *, practice: bool = False
) -> tuple[SignedIn, dict[str, str]] | Response:
    posted = await signed_in_post(web, STAFF, request)
    if isinstance(posted, Response):
        return posted
    allowed = _allowed(posted[0], practice)
    return allowed if isinstance(allowed, Response) else posted


async def practice_admin_with(
    web: Web, request: Request, load: Callable[[SignedIn], Awaitable[T | Response]]
) -> tuple[SignedIn, T] | Response:
    """The member of staff acting for a practice (as `admin(..., practice=True)`), and what
    `load` finds for them; otherwise the page to send."""
    signed = await admin(web, request, practice=True)
    if isinstance(signed, Response):
        return signed
    loaded = await load(signed)
    if isinstance(loaded, Response):
        return loaded
    return signed, loaded


async def practice_admin_post_with(
    web: Web, request: Request, load: Callable[[SignedIn], Awaitable[T | Response]]
) -> tuple[SignedIn, dict[str, str], T] | Response:
    """As `practice_admin_with`, for a checked form post: the form too."""
    posted = await admin_post(web, request, practice=True)
    if isinstance(posted, Response):
        return posted
    signed, form = posted
    loaded = await load(signed)
    if isinstance(loaded, Response):
        return loaded
    return signed, form, loaded


def _allowed(signed: SignedIn, practice: bool) -> SignedIn | Response:
    if not may_manage_appointments(signed.principal):
        return refused(STAFF, NOT_ALLOWED, 403, signed)
    if practice and signed.principal.organization_id is None:
        return refused(STAFF, NO_PRACTICE, 403, signed)
    return signed


def organization(signed: SignedIn) -> str:
    """The practice the member of staff acts for (checked by `admin(..., practice=True)`)."""
    return signed.principal.organization_id or ""
