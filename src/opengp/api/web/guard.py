"""What every signed-in screen asks first: who is this, may they use this area, and (for a
POST) did our own page, in their session, send this form.

Screens call `signed_in` (GET) or `signed_in_post` (POST) and either get the `SignedIn`
(its `principal` is what the services take, as for the FHIR API) or a response to return.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from opengp.api.web import pages
from opengp.api.web.areas import Area, Web, area_of
from opengp.api.web.forms import UnreadableForm, from_our_pages, read_form, same_secret
from opengp.api.web.session import Ended, SignedIn, clear_session_cookie, current

FORGED = "This form was not sent from this website, or the page was open too long."


def see_other(location: str) -> RedirectResponse:
    # 303: the browser follows with GET, never posting the form again.
    return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})


def web_endpoint(
    web: Web, handler: Callable[[Web, Request], Awaitable[Response]]
) -> Callable[[Request], Awaitable[Response]]:
    """A route's endpoint: `handler`, given the application's `Web` with each request."""

    async def endpoint(request: Request) -> Response:
        return await handler(web, request)

    return endpoint


def refused(
    area: Area, message: str, status: int = 403, signed: SignedIn | None = None
) -> Response:
    context = area.page("Sorry, there is a problem", signed, message=message)
    return pages.render("problem.jinja", context, status=status)


async def signed_in(web: Web, area: Area, request: Request) -> SignedIn | Response:
    state = await run_in_threadpool(current, web.store, request)
    if state is None:
        return see_other(area.sign_in)
    if isinstance(state, Ended):
        response = see_other(f"{area.sign_in}?timed-out=1")
        clear_session_cookie(response)
        return response
    if state.principal.kind not in area.kinds:
        theirs = area_of(state.principal.kind)
        message = (
            f"You are signed in to {theirs.service}, which cannot open these pages. "
            "Sign out first to sign in with another account."
        )
        return refused(theirs, message, 403, state)
    request.state.signed_in = state  # who is asking, for the audit entry (screen_audit.py)
    return state


async def signed_in_post(
    web: Web, area: Area, request: Request
) -> tuple[SignedIn, dict[str, str]] | Response:
    """The session and the posted form, once the form's token and origin check out."""
    try:
        form = await read_form(request)
    except UnreadableForm as exc:
        return refused(area, str(exc), 400)
    if not from_our_pages(request, web.public_url):
        return refused(area, FORGED)
    signed = await signed_in(web, area, request)
    if isinstance(signed, Response):
        return signed
    if not same_secret(form.get("csrf_token", ""), signed.session.csrf_token):
        return refused(area, FORGED, 403, signed)
    return signed, form
