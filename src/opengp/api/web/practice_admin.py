"""The practice admin screens (C5 Appointments Management): the appointment books and their
sessions (rotas), making slots weeks ahead, blocking and releasing slots, and the online
booking settings. Staff only, and only roles the access policy lets change the appointment
book (practice_admin_access.py); the weekly report is report_screens.py.

    /staff/practice/books                       the books, per clinician and site
    /staff/practice/books/new                   a new book
    /staff/practice/books/{id}                  one book: its sessions, making its slots
    /staff/practice/books/{id}/sessions/new     add a session
    /staff/practice/books/{id}/sessions/{key}/remove
    /staff/practice/books/{id}/generate         make slots weeks ahead
    /staff/practice/slots                       a clinician's day: choose slots
    /staff/practice/slots/confirm               block or release them: are you sure, then do
    /staff/practice/online-booking              what patients may book online
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from opengp.api.web import practice_admin_books as books
from opengp.api.web import practice_admin_sessions as sessions
from opengp.api.web import practice_admin_settings as online
from opengp.api.web import practice_admin_slots as slots
from opengp.api.web.areas import Web
from opengp.api.web.practice_admin_access import BOOKS, ONLINE, SLOTS

Handler = Callable[[Web, Request], Awaitable[Response]]


def routes(web: Web) -> list[BaseRoute]:
    def bind(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await handler(web, request)

        return endpoint

    book = f"{BOOKS}/{{id}}"
    return [
        Route(BOOKS, bind(books.list_books)),
        Route(f"{BOOKS}/new", bind(books.new_book)),
        Route(f"{BOOKS}/new", bind(books.create_book), methods=["POST"]),
        Route(book, bind(books.show_book)),
        Route(f"{book}/generate", bind(books.generate), methods=["POST"]),
        Route(f"{book}/sessions/new", bind(sessions.new_session)),
        Route(f"{book}/sessions/new", bind(sessions.add_session), methods=["POST"]),
        Route(f"{book}/sessions/{{key}}/remove", bind(sessions.remove_session), methods=["POST"]),
        Route(SLOTS, bind(slots.day)),
        Route(f"{SLOTS}/confirm", bind(slots.confirm)),
        Route(f"{SLOTS}/confirm", bind(slots.change), methods=["POST"]),
        Route(ONLINE, bind(online.show)),
        Route(ONLINE, bind(online.save), methods=["POST"]),
    ]
