"""The browser's side of a screen session: its cookies, and who a request is signed in as.

Cookies (RFC 6265bis): both `__Host-` prefixed, so the browser accepts them only with
`Secure`, `Path=/` and no `Domain` (no other host, not even a sibling sub-domain, can set or
overwrite them), and both `HttpOnly` (no script can read them).
- the session cookie is `SameSite=Lax`: it comes with a top-level link from elsewhere (an
  appointment reminder, the NHS App), so the user arrives signed in, and never with a
  cross-site POST. `Strict` would add nothing that matters here: no GET changes anything,
  and every POST is checked for its token and origin (forms.py);
- the form cookie (the random value the sign-in forms' tokens are bound to) is
  `SameSite=Strict`: it is only ever needed on a POST from our own pages.
Neither has a lifetime: they go when the browser closes, and the server ends the session
sooner (access/sessions.py: idle and absolute limits).
"""

from __future__ import annotations

import secrets
from contextlib import suppress
from dataclasses import dataclass
from enum import Enum

from starlette.requests import Request
from starlette.responses import Response

from opengp.access import accounts, sessions
from opengp.access.principal import Principal
from opengp.access.sessions import Session
from opengp.store.sql import SqlStore

SESSION_COOKIE = "__Host-opengp-session"
FORM_COOKIE = "__Host-opengp-form"


class Ended(Enum):
    """The browser brought a session that has ended (timed out, signed out elsewhere)."""

    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class SignedIn:
    principal: Principal
    session: Session


def current(store: SqlStore, request: Request) -> SignedIn | Ended | None:
    """Who the request is signed in as; `Ended` for a session that is no more; None without
    one. Runs on a worker thread (it reads, and now and then writes, the database)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    now = store.clock()
    principal: Principal | None = None
    with store.reading() as tx:
        session = sessions.find(tx.conn, token, now)
        if session is None:
            return Ended.ENDED
        with suppress(accounts.UnknownAccount, accounts.SignInFailed):
            principal = sessions.principal_of(tx.conn, session, now)
    if principal is None:  # the account was disabled or removed: its sessions end too
        with store.writing() as wtx:
            sessions.end_all(wtx.conn, session.user_id)
        return Ended.ENDED
    if sessions.needs_touch(session, now):
        with store.writing() as wtx:
            sessions.touch(wtx.conn, session, now)
    return SignedIn(principal, session)


def set_session_cookie(response: Response, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, path="/", secure=True, httponly=True, samesite="lax")


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="lax")


def browser_id(request: Request) -> str:
    """The form cookie's value, or a new one (to be set with `set_form_cookie`)."""
    value = request.cookies.get(FORM_COOKIE, "")
    usable = 20 <= len(value) <= 64 and value.isascii()
    return value if usable else secrets.token_urlsafe(24)


def set_form_cookie(response: Response, browser: str) -> None:
    response.set_cookie(
        FORM_COOKIE, browser, path="/", secure=True, httponly=True, samesite="strict"
    )
