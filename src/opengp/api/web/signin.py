"""Signing in and out of the screens.

Sign in (`/staff/sign-in`, `/patient/sign-in`): username, password and the 6-digit code of
an authenticator app (required when the account has one, as staff accounts do), on one page.
They are checked together because
`accounts.sign_in` judges them together (a missing code counts as a failed attempt, and
asking for the code on a later page would mean keeping the password until then).

After a one-time password, "Create a new password" comes next; the session starts only once
the new password is saved. A signed token in the form, bound to this browser's form cookie
and to the one-time password's fingerprint, carries the sign-in over to that page for 15
minutes, and works once (the fingerprint changes with the password).

Every sign-in, failed sign-in and sign-out is audited; failures never record the username
(it may identify a patient), only the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from opengp.access import accounts, sessions
from opengp.access.audit import Outcome, entry_for
from opengp.access.passwords import WeakPassword
from opengp.access.principal import Principal
from opengp.api.web import pages
from opengp.api.web.areas import Area, Web
from opengp.api.web.forms import (
    ChangeClaims,
    UnreadableForm,
    from_our_pages,
    read_form,
    same_secret,
)
from opengp.api.web.guard import FORGED, refused, see_other
from opengp.api.web.session import (
    FORM_COOKIE,
    SignedIn,
    browser_id,
    clear_session_cookie,
    current,
    set_form_cookie,
    set_session_cookie,
)

TIMED_OUT = "This page timed out. Sign in again."
SESSION_ENDED = "For your security, you were signed out. Sign in again."
# What an empty or mistyped field is told (NHS.UK design system: error messages).
ASK = MappingProxyType(
    {
        "username": "Enter your username",
        "password": "Enter your password",
        "new_password": "Enter a new password",
        "confirm_password": "Enter your new password again",
        "mismatch": "The passwords do not match: enter the same password twice",
    }
)
ASK_AGAIN = MappingProxyType({"username": TIMED_OUT})
CODE_REASONS = ("totp-required", "totp-invalid")
MAX_USERNAME = 255


async def show_sign_in(web: Web, area: Area, request: Request) -> Response:
    signed = await run_in_threadpool(current, web.store, request)
    if isinstance(signed, SignedIn) and signed.principal.kind in area.kinds:
        return see_other(area.home)
    notice = SESSION_ENDED if request.query_params.get("timed-out") else None
    return await run_in_threadpool(sign_in_page, web, area, request, notice=notice)


def sign_in_page(
    web: Web,
    area: Area,
    request: Request,
    *,
    errors: Mapping[str, str] | None = None,
    username: str = "",
    notice: str | None = None,
) -> Response:
    """The sign-in form, bound to this browser (on a worker thread: the form key may need
    the signing key loaded)."""
    browser = browser_id(request)
    token = web.signer.form_token(browser)
    context = area.page(
        "Sign in", form_token=token, errors=errors, username=username, notice=notice, back_href="/"
    )
    context["sign_in_with"] = web.sign_in_with.get(area.name)  # NHS CIS2, NHS login
    response = pages.render("sign_in.jinja", context, status=400 if errors else 200)
    set_form_cookie(response, browser)
    return response


async def checked_form(web: Web, area: Area, request: Request) -> dict[str, str] | Response:
    """The posted form, if it came from our own page in this browser; else what to answer."""
    try:
        form = await read_form(request)
    except UnreadableForm as exc:
        return refused(area, str(exc), 400)
    if not from_our_pages(request, web.public_url):
        return refused(area, FORGED)
    browser = request.cookies.get(FORM_COOKIE, "")
    fresh = await run_in_threadpool(web.signer.form_token_ok, browser, form.get("form_token", ""))
    if not fresh:
        return await run_in_threadpool(sign_in_page, web, area, request, errors=ASK_AGAIN)
    return form


async def submit_sign_in(web: Web, area: Area, request: Request) -> Response:
    form = await checked_form(web, area, request)
    if isinstance(form, Response):
        return form
    username, password = form.get("username", "").strip(), form.get("password", "")
    code = form.get("code", "").strip()
    errors = {}
    if not username:
        errors["username"] = ASK["username"]
    elif len(username) > MAX_USERNAME:
        errors["username"] = f"Username must be {MAX_USERNAME} characters or fewer"
    if not password:
        errors["password"] = ASK["password"]
    if errors:
        return await run_in_threadpool(
            sign_in_page, web, area, request, errors=errors, username=username
        )
    try:
        principal = await run_in_threadpool(
            accounts.sign_in, web.store, username, password, code or None
        )
    except accounts.SignInFailed as failed:
        await run_in_threadpool(_audit, web, None, "failed", {"reason": failed.reason})
        field = "code" if failed.reason in CODE_REASONS else "username"
        return await run_in_threadpool(
            sign_in_page, web, area, request, errors={field: str(failed)}, username=username
        )
    if principal.kind not in area.kinds:
        await run_in_threadpool(_audit, web, principal, "denied", {"reason": "other-area"})
        other = "patient services" if area.name == "staff" else "the staff sign-in"
        message = f"This account cannot sign in here. Use {other} instead."
        return await run_in_threadpool(
            sign_in_page, web, area, request, errors={"username": message}
        )
    return await run_in_threadpool(_after_password, web, area, request, principal)


def _after_password(web: Web, area: Area, request: Request, principal: Principal) -> Response:
    """Start the session, or ask for a new password first after a one-time password."""
    now = web.store.clock()
    with web.store.writing() as tx:
        account = accounts.get_account(tx.conn, principal.id)
        if account is not None and account.must_change_password:
            claims = ChangeClaims(
                principal.id, accounts.password_fingerprint(tx.conn, principal.id)
            )
        else:
            token, _ = sessions.start(tx.conn, principal.id, principal.kind, now)
            tx.audit(entry_for(principal, "signin", detail={"via": "screens"}))
            claims = None
    if claims is None:
        response = see_other(area.home)
        set_session_cookie(response, token)
        return response
    browser = browser_id(request)
    return _new_password_page(
        web, area, browser, web.signer.change_token(browser, claims, area.name)
    )


def _new_password_page(
    web: Web, area: Area, browser: str, change_token: str, errors: dict[str, str] | None = None
) -> Response:
    context = area.page(
        "Create a new password",
        form_token=web.signer.form_token(browser),
        change_token=change_token,
        errors=errors,
        back_href=area.sign_in,
    )
    response = pages.render("new_password.jinja", context, status=400 if errors else 200)
    set_form_cookie(response, browser)
    return response


async def submit_new_password(web: Web, area: Area, request: Request) -> Response:
    form = await checked_form(web, area, request)
    if isinstance(form, Response):
        return form
    return await run_in_threadpool(_new_password, web, area, request, form)


def _new_password(web: Web, area: Area, request: Request, form: dict[str, str]) -> Response:
    browser = browser_id(request)
    change_token = form.get("change_token", "")
    claims = web.signer.change_claims(browser, change_token, area.name)
    if claims is None:
        return sign_in_page(web, area, request, errors=ASK_AGAIN)
    new, confirm = form.get("new_password", ""), form.get("confirm_password", "")
    errors = {}
    if not new:
        errors["new_password"] = ASK["new_password"]
    if not confirm:
        errors["confirm_password"] = ASK["confirm_password"]
    elif new and new != confirm:
        errors["confirm_password"] = ASK["mismatch"]
    if not errors:
        try:
            return _replace_and_start(web, area, claims, new)
        except WeakPassword as weak:
            text = str(weak)
            errors["new_password"] = text[:1].upper() + text[1:]
        except (accounts.SignInFailed, accounts.UnknownAccount):
            return sign_in_page(web, area, request, errors=ASK_AGAIN)
    return _new_password_page(web, area, browser, change_token, errors)


def _replace_and_start(web: Web, area: Area, claims: ChangeClaims, new: str) -> Response:
    now = web.store.clock()
    with web.store.writing() as tx:
        accounts.replace_one_time_password(tx.conn, claims.user_id, claims.fingerprint, new)
        principal = accounts.principal_for(tx.conn, claims.user_id)
        token, _ = sessions.start(tx.conn, principal.id, principal.kind, now)
        detail = {"via": "screens", "password": "replaced one-time password"}
        tx.audit(entry_for(principal, "signin", detail=detail))
    response = see_other(area.home)
    set_session_cookie(response, token)
    return response


async def sign_out(web: Web, area: Area, request: Request) -> Response:
    try:
        form = await read_form(request)
    except UnreadableForm as exc:
        return refused(area, str(exc), 400)
    if not from_our_pages(request, web.public_url):
        return refused(area, FORGED)
    signed = await run_in_threadpool(current, web.store, request)
    if isinstance(signed, SignedIn):
        if not same_secret(form.get("csrf_token", ""), signed.session.csrf_token):
            return refused(area, FORGED)
        await run_in_threadpool(_end, web, signed)
    else:  # nothing to end (it had ended already): recorded all the same
        await run_in_threadpool(_audit_sign_out, web, "no-session")
    response = see_other(area.signed_out)
    clear_session_cookie(response)
    return response


def _audit_sign_out(web: Web, reason: str) -> None:
    with web.store.auditing() as log:
        detail = {"via": "screens", "reason": reason}
        log.audit(entry_for(None, "signout", "failed", detail=detail))


def _end(web: Web, signed: SignedIn) -> None:
    with web.store.writing() as tx:
        sessions.end(tx.conn, signed.session)
        tx.audit(entry_for(signed.principal, "signout", detail={"via": "screens"}))


def _audit(web: Web, principal: Principal | None, outcome: Outcome, detail: dict[str, str]) -> None:
    with web.store.auditing() as log:
        log.audit(entry_for(principal, "signin", outcome, detail={"via": "screens", **detail}))
