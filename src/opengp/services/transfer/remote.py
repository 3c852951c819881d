"""The old practice's OpenGP, over its FHIR API, as a system client (SMART Backend Services).

The client authenticates with its id and secret (`client_secret_basic`) at the token
endpoint the server's SMART configuration names, then reads with the bearer token. Every
URL it is sent to must be on the FHIR base it was given (a `next` link elsewhere would carry
the token away) and https, or http to this machine (loopback), as for OpenID providers.
"""

from __future__ import annotations

import base64
import http.client
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from opengp.fhir import jsonio
from opengp.services.oidc import LOOPBACK, https_or_loopback

TIMEOUT_SECONDS = 30
MAX_RESPONSE_BYTES = 64 * 1024 * 1024  # one page of a record, with room to spare
FHIR_JSON = "application/fhir+json"
# What the migration client asks for: read the record, and finish the old registration.
SCOPES = "system/*.rs system/EpisodeOfCare.u"


class TransferError(Exception):
    """A transfer could not be done; the message says why in plain words."""


class RemoteError(TransferError):
    """The old practice's server refused, failed or could not be reached."""


def check_base_url(url: str) -> str:
    """The FHIR base URL of the old practice's server, without a trailing slash."""
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.hostname:
        raise ValueError(f"{url!r} is not a URL such as https://gp.example.org/fhir")
    if parts.query or parts.fragment:
        raise ValueError(f"{url!r}: the FHIR base URL has no query or fragment")
    if not https_or_loopback(url.strip()):
        raise ValueError(f"{url!r} must be https (or http to this machine)")
    return url.strip().rstrip("/")


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Any  # parsed JSON, or None
    etag: str | None = None


class Remote:
    """The few requests a transfer makes of the old practice's server."""

    def __init__(
        self, base_url: str, client_id: str, client_secret: str, timeout: float = TIMEOUT_SECONDS
    ) -> None:
        self.base_url = check_base_url(base_url)
        if not client_id.strip() or not client_secret.strip():
            raise ValueError("the client id and secret must not be empty")
        self.client_id = client_id.strip()
        self.client_secret = client_secret.strip()
        self.timeout = timeout
        loopback = urlsplit(self.base_url).hostname in LOOPBACK
        handlers = [urllib.request.ProxyHandler({})] if loopback else []
        self._opener = urllib.request.build_opener(*handlers)
        self._token: str | None = None

    # ---- HTTP ---------------------------------------------------------------------------

    def _send(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None = None
    ) -> Reply:
        # The base was checked (https, or http to loopback) and `url` is on it: see `_on_base`.
        request = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return Reply(response.status, _json(response), response.headers.get("ETag"))
        except urllib.error.HTTPError as error:
            with error:
                return Reply(error.code, _json(error, strict=False))
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise RemoteError(
                f"the old practice's server at {self.base_url} cannot be reached"
                f" ({type(exc).__name__})"
            ) from None

    def _on_base(self, url: str) -> str:
        if url != self.base_url and not url.startswith(self.base_url + "/"):
            raise RemoteError(f"the old practice's server sent a link off its base: {url[:200]}")
        return url

    def token(self) -> str:
        """An access token for the migration client (client credentials grant)."""
        if self._token is not None:
            return self._token
        config = self._send("GET", f"{self.base_url}/.well-known/smart-configuration", {})
        endpoint = config.body.get("token_endpoint") if isinstance(config.body, dict) else None
        if config.status != 200 or not isinstance(endpoint, str) or not https_or_loopback(endpoint):
            raise RemoteError(
                f"{self.base_url} does not look like an OpenGP FHIR base: no SMART configuration"
                " with a token endpoint"
            )
        pair = f"{quote(self.client_id, safe='')}:{quote(self.client_secret, safe='')}"
        headers = {
            "Authorization": "Basic " + base64.b64encode(pair.encode()).decode(),
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        form = urlencode({"grant_type": "client_credentials", "scope": SCOPES}).encode()
        reply = self._send("POST", endpoint, headers, form)
        token = reply.body.get("access_token") if isinstance(reply.body, dict) else None
        if reply.status != 200 or not isinstance(token, str):
            why = reply.body.get("error_description") if isinstance(reply.body, dict) else None
            raise RemoteError(
                "the old practice's server refused the client id and secret"
                f" (HTTP {reply.status}{': ' + str(why) if why else ''}); it must be a client"
                f" registered there with purpose migration and the scopes {SCOPES}"
            )
        if _claims(token).get("purpose") != "migration":
            raise RemoteError(
                "the client is not registered for migration at the old practice: a record"
                " transfer needs a client registered there with --purpose migration"
            )
        self._token = token
        return token

    def _headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}", "Accept": FHIR_JSON, **extra}

    def get(self, url: str) -> Reply:
        """GET a URL on the base (absolute, or relative to it)."""
        absolute = url if url.startswith(("https://", "http://")) else f"{self.base_url}/{url}"
        return self._send("GET", self._on_base(absolute), self._headers())

    def patch(self, path: str, operations: list[dict[str, Any]], version: str) -> Reply:
        """A JSON Patch of one resource, only over the version read (If-Match)."""
        headers = self._headers(
            **{"Content-Type": "application/json-patch+json", "If-Match": f'W/"{version}"'}
        )
        body = json.dumps(operations).encode()
        return self._send("PATCH", self._on_base(f"{self.base_url}/{path}"), headers, body)


def _json(response: Any, strict: bool = True) -> Any:
    content: bytes = response.read(MAX_RESPONSE_BYTES + 1)
    if len(content) > MAX_RESPONSE_BYTES:
        raise RemoteError("the old practice's server sent an answer too large to read")
    if not content:
        return None
    try:
        return jsonio.loads(content)  # decimals keep their digits (7.10 is not 7.1)
    except jsonio.JsonError:
        if not strict:
            return None
        raise RemoteError("the old practice's server sent an answer that is not JSON") from None


def _claims(token: str) -> dict[str, Any]:
    """The claims of an OpenGP access token (a JWT), read to learn the purpose it was
    issued for; the old server, which signed it, is the one that checks it."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def problem(reply: Reply) -> str:
    """What an OperationOutcome says went wrong, in one line."""
    issues = reply.body.get("issue") if isinstance(reply.body, dict) else None
    texts = [
        str(i.get("diagnostics"))
        for i in issues or ()
        if isinstance(i, dict) and i.get("diagnostics")
    ]
    return f"HTTP {reply.status}" + (f": {'; '.join(texts)[:300]}" if texts else "")
