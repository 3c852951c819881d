"""Form posts from the screens: reading them safely, and the checks against forged ones.

Cross-site request forgery is stopped three ways (OWASP CSRF Prevention Cheat Sheet):
1. every form carries a token the attacker cannot know, checked on every POST: the session's
   own token once signed in; before that (the sign-in forms, against login CSRF) an HMAC of a
   random value held in a `__Host-` cookie ("signed double-submit cookie");
2. the browser must say the POST comes from our own pages: `Sec-Fetch-Site: same-origin`
   when it sends Fetch Metadata, and an `Origin` equal to ours when it sends one. Our pages
   send no referrer (`Referrer-Policy: no-referrer`), which makes browsers send
   `Origin: null` on form posts, so `null` is accepted only together with
   `Sec-Fetch-Site: same-origin`;
3. the session cookie is `SameSite=Lax`: browsers do not send it with cross-site POSTs.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request

MAX_FORM_BYTES = 16 * 1024
MAX_FIELDS = 20
MAX_FIELD_LENGTH = 1024
FORM_TOKEN_SECONDS = 60 * 60  # a sign-in page left open longer must be reloaded
CHANGE_TOKEN_SECONDS = 15 * 60  # time to choose a new password after a one-time one
FORM_TYPE = "application/x-www-form-urlencoded"


class UnreadableForm(Exception):
    """The body is not a form our pages could have sent: the message is safe to show."""


async def read_form(request: Request) -> dict[str, str]:
    """The posted fields (the last of a repeated name wins); `UnreadableForm` otherwise."""
    if (request.headers.get("content-type") or "").split(";")[0].strip().lower() != FORM_TYPE:
        raise UnreadableForm("The form was not sent the way this page sends it.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise UnreadableForm("The form is too large.")
    try:
        fields = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise UnreadableForm("The form could not be read.") from None
    # NUL never comes from a keyboard, and PostgreSQL text refuses it.
    if any("\x00" in name + value or len(value) > MAX_FIELD_LENGTH for name, value in fields):
        raise UnreadableForm("The form has a value that cannot be right.")
    return dict(fields)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def from_our_pages(request: Request, public_url: str | None) -> bool:
    """Whether the browser says the POST was made by one of our own pages."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site != "same-origin":
        return False
    origin = request.headers.get("origin")
    if origin is None:  # not a browser, or a very old one: the token alone decides
        return True
    if origin == "null":
        return site == "same-origin"
    ours = origin_of(public_url) if public_url else origin_of(str(request.url))
    return origin.lower() == ours


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of a token from the browser (which may be any text)."""
    return given.isascii() and hmac.compare_digest(given, expected)


@dataclass(frozen=True, slots=True)
class ChangeClaims:
    user_id: str
    fingerprint: str  # of the one-time password signed in with (accounts.password_fingerprint)


class FormSigner:
    """Tokens bound to a browser (its `__Host-` form cookie) by an HMAC under `secret`."""

    def __init__(self, secret: Callable[[], bytes], clock: Callable[[], float] = time.time):
        self._secret = secret
        self._clock = clock

    def form_token(self, browser: str) -> str:
        issued = str(int(self._clock()))
        return f"{issued}.{self._mac('form', browser, issued)}"

    def form_token_ok(self, browser: str, token: str) -> bool:
        issued, _, mac = token.partition(".")
        if not (browser and self._fresh(issued, FORM_TOKEN_SECONDS)):
            return False
        return same_secret(mac, self._mac("form", browser, issued))

    def change_token(self, browser: str, claims: ChangeClaims, area: str) -> str:
        """Vouches that this browser has just signed in to `area` with the account's
        one-time password."""
        body = f"{int(self._clock())}.{claims.user_id}.{claims.fingerprint}"
        return f"{body}.{self._mac(f'change {area}', browser, body)}"

    def change_claims(self, browser: str, token: str, area: str) -> ChangeClaims | None:
        body, _, mac = token.rpartition(".")
        issued, _, rest = body.partition(".")
        user_id, _, fingerprint = rest.rpartition(".")
        if not (browser and user_id and fingerprint and self._fresh(issued, CHANGE_TOKEN_SECONDS)):
            return None
        if not same_secret(mac, self._mac(f"change {area}", browser, body)):
            return None
        return ChangeClaims(user_id, fingerprint)

    def _fresh(self, issued: str, lifetime: int) -> bool:
        if not (issued.isascii() and issued.isdigit() and len(issued) < 16):
            return False
        return 0 <= self._clock() - int(issued) <= lifetime

    def _mac(self, purpose: str, browser: str, body: str) -> str:
        message = f"{purpose}\n{browser}\n{body}".encode()
        return hmac.new(self._secret(), message, hashlib.sha256).hexdigest()
