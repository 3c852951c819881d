"""The start page, and each area's home and signed-out pages."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from opengp.access.accounts import NATIONAL_ROLES
from opengp.api.web import pages
from opengp.api.web.areas import Area, Web
from opengp.api.web.guard import signed_in


async def start(request: Request) -> Response:
    context = {"title": "Start", "service": "OpenGP", "service_href": "/"}
    return pages.render("start.jinja", context)


async def home(web: Web, area: Area, request: Request) -> Response:
    signed = await signed_in(web, area, request)
    if isinstance(signed, Response):
        return signed
    principal = signed.principal
    roles = sorted(NATIONAL_ROLES.get(role, role) for role in principal.roles)
    title = "Practice home" if area.name == "staff" else "Your GP services"
    context = area.page(title, signed, roles=roles, proxy=principal.kind == "proxy")
    return pages.render(f"{area.name}_home.jinja", context)


async def signed_out(web: Web, area: Area, request: Request) -> Response:
    return pages.render("signed_out.jinja", area.page("You have signed out"))
