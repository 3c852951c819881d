"""Rendering a screen: Jinja2 templates built from the NHS.UK frontend's macros.

The macros come from the `nhsuk-frontend-jinja` package (its README: a `ChoiceLoader` with our
templates first, `ChainableUndefined`, autoescaping); the CSS, JavaScript and images from the
`nhsuk-frontend` npm package, copied into `static/` by `make assets` and served at `/assets`.

Every page gets its own CSP nonce: the NHS.UK page template has one small inline script (it
marks the page as JavaScript-enabled before it is painted), and a nonce lets that script run
while every other inline script stays forbidden. Pages are never cached: they show who is
signed in and carry form tokens.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import ChainableUndefined, ChoiceLoader, Environment, PackageLoader
from starlette.responses import HTMLResponse

STATIC = Path(__file__).parent / "static"
ASSET_PATH = "/assets"

ENVIRONMENT = Environment(
    loader=ChoiceLoader(
        [PackageLoader("opengp.api.web", "templates"), PackageLoader("nhsuk_frontend_jinja")]
    ),
    undefined=ChainableUndefined,
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)

# The site-wide policy (api/protection.py) plus the nonce of this page's inline script.
CSP = (
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'; object-src 'none'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def render(
    template: str, context: Mapping[str, Any] | None = None, *, status: int = 200
) -> HTMLResponse:
    """The page, with `errors` (field id -> message, in the form's order) shown as the NHS.UK
    error summary linking to each field."""
    nonce = secrets.token_urlsafe(16)
    values = {"cspNonce": nonce, "assetPath": ASSET_PATH, "htmlLang": "en-GB", **(context or {})}
    errors: Mapping[str, str] = values.get("errors") or {}
    values["error_list"] = [{"text": text, "href": f"#{field}"} for field, text in errors.items()]
    html = ENVIRONMENT.get_template(template).render(values)
    headers = {"Content-Security-Policy": CSP.format(nonce=nonce), "Cache-Control": "no-store"}
    return HTMLResponse(html, status_code=status, headers=headers)
