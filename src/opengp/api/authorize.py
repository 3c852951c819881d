"""GET and POST /oauth2/authorize: the sign-in page of SMART standalone launch.

A plain, accessible HTML form (labels, autocomplete, an error summary with role="alert"), no
JavaScript; the NHS.UK design comes with the screens. The form carries the authorization
request's own parameters and a token binding them to this browser: an HMAC over them, a
time and a random value kept in a SameSite=Strict cookie (a login CSRF defence). The page is
never framed (clickjacking) nor cached.
"""

from __future__ import annotations

import time
from html import escape
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from opengp.services.launch import (
    AuthorizePage,
    AuthorizeRequest,
    Launch,
    PasswordChange,
    PasswordProblem,
    Redirect,
    RedirectError,
    SignInProblem,
    new_browser_id,
)

COOKIE = "opengp_authorize"
MAX_FORM_BYTES = 16 * 1024
# The page's own fields; everything else in the form is the authorization request.
FORM_FIELDS = frozenset(["username", "password", "totp", "form_token", "change_token"])
FORM_FIELDS |= {"new_password", "confirm_password"}
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = f"""<!DOCTYPE html>
<html lang="en-GB">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} - OpenGP</title></head>
<body><main>
<h1>{escape(title)}</h1>
{body}
</main></body>
</html>
"""
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def error_page(message: str) -> HTMLResponse:
    return _page("Cannot sign in to this app", f'<p role="alert">{escape(message)}</p>', 400)


def _form(request: AuthorizeRequest, form_token: str, fields: str, button: str) -> str:
    hidden = "\n".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in (*request.params, ("form_token", form_token))
    )
    return f"""<form method="post" action="/oauth2/authorize">
{hidden}
{fields}
<p><button type="submit">{escape(button)}</button></p>
</form>
"""


def _alert(error: str | None) -> str:
    if error is None:
        return ""
    return f'<div role="alert"><h2>There is a problem</h2><p>{escape(error)}</p></div>\n'


def sign_in_page(
    request: AuthorizeRequest, form_token: str, *, error: str | None = None, username: str = ""
) -> HTMLResponse:
    fields = f"""<p><label for="username">Username</label><br>
<input id="username" name="username" type="text" autocomplete="username" required
 value="{escape(username)}"></p>
<p><label for="password">Password</label><br>
<input id="password" name="password" type="password" autocomplete="current-password" required></p>
<p><label for="totp">Security code (if you use an authenticator app)</label><br>
<input id="totp" name="totp" type="text" inputmode="numeric" autocomplete="one-time-code"
 pattern="[0-9 ]*"></p>"""
    app = escape(request.client.name)
    body = (
        f"{_alert(error)}<p>Sign in to let <strong>{app}</strong> use your GP record.</p>\n"
        + _form(request, form_token, fields, "Sign in")
    )
    return _page("Sign in", body, 200 if error is None else 400)


def new_password_page(
    request: AuthorizeRequest, form_token: str, change_token: str, *, error: str | None = None
) -> HTMLResponse:
    fields = f"""<input type="hidden" name="change_token" value="{escape(change_token)}">
<p><label for="new_password">New password</label><br>
<span id="new_password_hint">At least 12 characters. A few unrelated words work well.</span><br>
<input id="new_password" name="new_password" type="password" autocomplete="new-password"
 aria-describedby="new_password_hint" required></p>
<p><label for="confirm_password">Type the new password again</label><br>
<input id="confirm_password" name="confirm_password" type="password" autocomplete="new-password"
 required></p>"""
    body = (
        f"{_alert(error)}<p>You signed in with a one-time password. Choose your own password"
        " to carry on.</p>\n" + _form(request, form_token, fields, "Save password and continue")
    )
    return _page("Create a new password", body, 200 if error is None else 400)


def _redirect(redirect: Redirect) -> Response:
    # 303: the browser follows with GET, never re-posting the password (RFC 9700 §4.12).
    return RedirectResponse(
        redirect.location, status_code=303, headers={"Cache-Control": "no-store"}
    )


async def _checked(
    launch: Launch, params: list[tuple[str, str]], fhir_base: str
) -> AuthorizeRequest | Response:
    """The authorization request if it is valid; otherwise the page or redirect to answer."""
    try:
        return await run_in_threadpool(launch.check, params, fhir_base)
    except AuthorizePage as exc:
        return error_page(str(exc))
    except RedirectError as exc:
        return _redirect(exc.redirect)


async def show(request: Request, launch: Launch, fhir_base: str) -> Response:
    checked = await _checked(launch, request.query_params.multi_items(), fhir_base)
    if isinstance(checked, Response):
        return checked
    browser = request.cookies.get(COOKIE) or new_browser_id()
    response = sign_in_page(checked, launch.form_token(checked, browser, time.time()))
    _set_cookie(response, browser)
    return response


async def submit(request: Request, launch: Launch, fhir_base: str) -> Response:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return error_page("The form is too large.")
    try:
        form = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=30)
    except (UnicodeDecodeError, ValueError):
        return error_page("The form could not be read: go back to the app and try again.")
    fields = dict(form)
    params = [(n, v) for n, v in form if n not in FORM_FIELDS]
    checked = await _checked(launch, params, fhir_base)
    if isinstance(checked, Response):
        return checked
    browser = request.cookies.get(COOKIE, "")
    if not launch.form_token_ok(checked, browser, fields.get("form_token", "")):
        return error_page("This sign-in page has expired: go back to the app and start again.")
    form_token = launch.form_token(checked, browser, time.time())
    change_token = fields.get("change_token")
    try:
        if change_token is None:
            outcome = await run_in_threadpool(
                launch.sign_in,
                checked,
                fields.get("username", ""),
                fields.get("password", ""),
                fields.get("totp"),
            )
        else:
            outcome = await run_in_threadpool(
                launch.change_password,
                checked,
                change_token,
                fields.get("new_password", ""),
                fields.get("confirm_password", ""),
            )
    except SignInProblem as exc:
        return sign_in_page(
            checked, form_token, error=str(exc), username=fields.get("username", "")
        )
    except PasswordProblem as exc:
        return new_password_page(checked, form_token, change_token or "", error=str(exc))
    if isinstance(outcome, PasswordChange):
        return new_password_page(checked, form_token, outcome.change_token)
    response = _redirect(outcome)
    response.delete_cookie(COOKIE, path="/oauth2/authorize", secure=True, httponly=True)
    return response


def _set_cookie(response: Response, browser: str) -> None:
    response.set_cookie(
        COOKIE,
        browser,
        max_age=30 * 60,
        path="/oauth2/authorize",
        secure=True,
        httponly=True,
        samesite="strict",
    )
