"""The screens: server-rendered pages for practice staff and for patients.

`routes()` gives the start page, each area's sign-in, home and sign-out, sign-in with NHS
CIS2 and NHS login when configured (oidc.py), the first run's /setup (setup.py), and the
front-end assets at `/assets` (built by `make assets`; without them the pages still work,
unstyled).
Guide: docs/architecture.md, "Screens"; sessions and CSRF: docs/security.md.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from opengp.access.keys import SigningKey
from opengp.api.web import (
    accounts,
    home,
    oidc,
    patient_booking,
    practice_admin,
    reception,
    report_screens,
    setup,
    signin,
)
from opengp.api.web.areas import PATIENT, STAFF, Area, Web
from opengp.api.web.forms import FormSigner
from opengp.api.web.guard import see_other
from opengp.api.web.pages import STATIC
from opengp.config import Settings
from opengp.store import ResourceStore
from opengp.store.sql import SqlStore

log = logging.getLogger("opengp.web")

Handler = Callable[[Web, Area, Request], Awaitable[Response]]


def form_secret(signing_key: Callable[[], SigningKey]) -> Callable[[], bytes]:
    """The key of the forms' HMACs, derived from the server's signing key (so every process
    of a deployment shares it, and nothing new needs configuring)."""
    derived: list[bytes] = []

    def secret() -> bytes:
        if not derived:
            pem = signing_key().private.as_pem(private=True)
            derived.append(hashlib.sha256(b"opengp screens forms\n" + pem).digest())
        return derived[0]

    return secret


def routes(
    store: ResourceStore, settings: Settings, signing_key: Callable[[], SigningKey]
) -> list[BaseRoute]:
    if not isinstance(store, SqlStore):
        raise TypeError("the screens keep their sessions in the SQL store")
    secret = form_secret(signing_key)
    providers = oidc.providers(settings.oidc_staff, settings.oidc_patient)
    web = Web(store, FormSigner(secret), settings.public_url, providers)
    if not STATIC.is_dir():
        log.warning("front-end assets are missing (run `make assets`): pages are unstyled")

    def bind(handler: Handler, area: Area) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await handler(web, area, request)

        return endpoint

    table: list[BaseRoute] = [Route("/", home.start)]
    for area in (STAFF, PATIENT):
        table += [
            Route(area.home, bind(home.home, area)),
            Route(area.sign_in, bind(signin.show_sign_in, area)),
            Route(area.sign_in, bind(signin.submit_sign_in, area), methods=["POST"]),
            Route(area.new_password, _to(area.sign_in)),
            Route(area.new_password, bind(signin.submit_new_password, area), methods=["POST"]),
            Route(area.sign_out, bind(signin.sign_out, area), methods=["POST"]),
            Route(area.signed_out, bind(home.signed_out, area)),
        ]
    table += oidc.routes(web, providers, lambda: hashlib.sha256(b"oidc\n" + secret()).digest())
    table += setup.routes(web)
    table += patient_booking.routes(web)
    table += reception.routes(web)
    table += practice_admin.routes(web)
    table += report_screens.routes(web)
    table += accounts.routes(web)
    setup.announce(store, settings.public_url)  # the first run: no staff account yet
    assets = StaticFiles(
        directory=STATIC if STATIC.is_dir() else None, packages=[("opengp.api.web", "scripts")]
    )
    return [*table, Mount("/assets", assets, name="assets")]


def _to(location: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return see_other(location)

    return endpoint
