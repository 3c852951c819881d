"""The first run of a new deployment: /setup creates the first administrator
(access/first_run.py; docs/operations.md, "First run").

While no staff account exists, building the app (`opengp serve`, or any `create_app`) issues
a one-time setup token and prints the link on the console (stderr): the one secret this
server ever prints, on purpose, once. Its holder opens /setup?token=..., chooses a username,
name and password, sets up an authenticator app (the secret is shown; a code from the app
confirms it) and is then signed in as a Systems Support (R8015) account, which can create
the practice's other accounts. The form has the sign-in page's CSRF defences (forms.py).

Once any staff account exists, /setup answers 404, as if it had never been.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from opengp.access import accounts, first_run, sessions, totp
from opengp.access.audit import entry_for
from opengp.access.passwords import WeakPassword, password_problem
from opengp.api.web import pages
from opengp.api.web.areas import STAFF, Web
from opengp.api.web.forms import UnreadableForm, from_our_pages, read_form
from opengp.api.web.guard import FORGED, refused, see_other
from opengp.api.web.session import FORM_COOKIE, browser_id, set_form_cookie, set_session_cookie
from opengp.store.sql import SqlStore

log = logging.getLogger("opengp.setup")

PATH = "/setup"
SECRET = re.compile(r"[A-Z2-7]{32}")  # what totp.new_secret makes: 160 bits in base32
BAD_LINK = (
    "This set-up link does not work: it may have been used, or be over an hour old."
    " Restart OpenGP to get a new one on its console."
)
MISMATCH = "The passwords do not match: enter the same password twice"
ASK = {
    "username": "Enter a username",
    "name": "Enter your name",
    "password": "Enter a password",
    "confirm_password": "Enter the password again",
    "code": "Enter the 6-digit code your authenticator app shows",
}


def announce(store: SqlStore, public_url: str | None) -> None:
    """Issue a setup token and print its link, if the deployment has no staff account yet.

    Never stops the server: a database not yet reachable or migrated is reported elsewhere
    (/readyz), and the next start tries again.
    """
    try:
        with store.writing() as tx:
            token = first_run.issue_token(tx.conn, tx.clock())
    except SQLAlchemyError as exc:
        log.warning("cannot check for a first administrator yet (%s)", type(exc).__name__)
        return
    if token is None:
        return
    link = f"{public_url or ''}{PATH}?token={token}"
    where = "" if public_url else " (on this server's address, e.g. http://127.0.0.1:8000)"
    hours = int(first_run.TOKEN_LIFETIME.total_seconds() // 3600)
    print(
        "\n"
        "OpenGP has no staff account yet. Create the first administrator, within"
        f" {hours} hour,\nat this one-time link{where}:\n"
        f"\n    {link}\n\n"
        "It works once. It is the only secret OpenGP ever prints; restart OpenGP for a new one.\n",
        file=sys.stderr,
        flush=True,
    )
    log.warning("no staff account yet: a one-time setup link was printed on the console")


def _gone() -> Response:
    return PlainTextResponse("Not Found", status_code=404)


def _state(web: Web, token: str) -> str:
    """ "gone", "bad" or "ok" for this token now."""
    with web.store.reading() as tx:
        if not first_run.needs_setup(tx.conn):
            return "gone"
        return "ok" if first_run.token_usable(tx.conn, token, web.store.clock()) else "bad"


def _page(
    web: Web,
    request: Request,
    token: str,
    secret: str,
    *,
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
) -> Response:
    browser = browser_id(request)
    context = STAFF.page(
        "Set up OpenGP",
        form_token=web.signer.form_token(browser),
        setup_token=token,
        totp_secret=secret,
        totp_uri=totp.provisioning_uri(secret, "administrator"),
        values=values or {},
        errors=errors,
        role=accounts.NATIONAL_ROLES[first_run.FIRST_ROLES[0]],
    )
    response = pages.render("setup.jinja", context, status=400 if errors else 200)
    set_form_cookie(response, browser)
    return response


async def show(web: Web, request: Request) -> Response:
    token = request.query_params.get("token", "")
    state = await run_in_threadpool(_state, web, token)
    if state == "gone":
        return _gone()
    if state == "bad":
        return refused(STAFF, BAD_LINK, 403)
    return await run_in_threadpool(_page, web, request, token, totp.new_secret())


async def submit(web: Web, request: Request) -> Response:
    try:
        form = await read_form(request)
    except UnreadableForm as exc:
        return refused(STAFF, str(exc), 400)
    if not from_our_pages(request, web.public_url):
        return refused(STAFF, FORGED)
    token = form.get("setup_token", "")
    state = await run_in_threadpool(_state, web, token)
    if state == "gone":
        return _gone()
    if state == "bad":
        return refused(STAFF, BAD_LINK, 403)
    secret = form.get("totp_secret", "")
    if not SECRET.fullmatch(secret):
        secret = totp.new_secret()  # not one of ours: start the app's set-up again
    values = {name: form.get(name, "").strip() for name in ("username", "name")}
    browser = request.cookies.get(FORM_COOKIE, "")
    fresh = await run_in_threadpool(web.signer.form_token_ok, browser, form.get("form_token", ""))
    if not fresh:
        errors = {"username": "This page timed out: check the details and send them again"}
        return await run_in_threadpool(
            _page, web, request, token, secret, values=values, errors=errors
        )
    errors = _problems(form, values["username"])
    if not errors:
        answer = await run_in_threadpool(_create, web, token, form, secret)
        if isinstance(answer, Response):
            return answer
        errors = answer
    return await run_in_threadpool(_page, web, request, token, secret, values=values, errors=errors)


def _problems(form: Mapping[str, str], username: str) -> dict[str, str]:
    """What is wrong with the form before anything is tried, by field, in the form's order."""
    errors = {name: text for name, text in ASK.items() if not form.get(name, "").strip()}
    if username and not accounts.USERNAME.fullmatch(accounts.normalise_username(username)):
        errors["username"] = (
            "Username must be 3 to 64 letters, digits or . _ @ -, starting with a letter or digit"
        )
    name = " ".join(form.get("name", "").split())
    if name and (len(name) > 255 or not name.isprintable()):
        errors["name"] = "Name must be 255 characters or fewer"
    password = form.get("password", "")
    if password and "password" not in errors:
        problem = password_problem(password, username=accounts.normalise_username(username))
        if problem is not None:
            errors["password"] = problem[:1].upper() + problem[1:]
    confirm = form.get("confirm_password", "")
    if password and confirm and password != confirm:
        errors["confirm_password"] = MISMATCH
    code = "".join(form.get("code", "").split())
    if code and not (len(code) == 6 and code.isascii() and code.isdigit()):
        errors["code"] = "Enter the 6 digits your authenticator app shows"
    return {name: errors[name] for name in (*ASK, "code") if name in errors}


def _create(
    web: Web, token: str, form: Mapping[str, str], secret: str
) -> Response | dict[str, str]:
    """Create the first administrator and sign them in; or the problems, by field."""
    now = web.store.clock()
    try:
        with web.store.writing() as tx:
            principal = first_run.create_first_administrator(
                tx.conn,
                token,
                username=form.get("username", ""),
                display_name=form.get("name", ""),
                password=form.get("password", ""),
                totp_secret=secret,
                totp_code=form.get("code", ""),
                now=now,
            )
            session, _ = sessions.start(tx.conn, principal.id, principal.kind, now)
            detail: dict[str, Any] = {"via": "setup", "roles": sorted(principal.roles)}
            tx.audit(entry_for(principal, "create", detail={**detail, "what": "first account"}))
            tx.audit(entry_for(principal, "signin", detail={"via": "setup"}))
    except first_run.SetupGone:
        return _gone()
    except first_run.SetupTokenInvalid:
        return refused(STAFF, BAD_LINK, 403)
    except accounts.UsernameTaken:
        return {"username": "That username is taken: choose another"}
    except WeakPassword as weak:
        text = str(weak)
        return {"password": text[:1].upper() + text[1:]}
    except accounts.AccountError as problem:
        if "code" in str(problem):
            return {"code": "The code is not right: enter the one your app shows now"}
        return {"username": str(problem)[:1].upper() + str(problem)[1:]}
    log.warning("first administrator created (staff account %s); setup is over", principal.id)
    response = see_other(STAFF.home)
    set_session_cookie(response, session)
    return response


def routes(web: Web) -> list[BaseRoute]:
    async def get(request: Request) -> Response:
        return await show(web, request)

    async def post(request: Request) -> Response:
        return await submit(web, request)

    return [Route(PATH, get), Route(PATH, post, methods=["POST"])]
