"""Every request for a screen leaves an entry in the audit trail, like every FHIR request.

A page shows what it shows to someone: each page shown (a GET, or the page a form post
answers with) is audited as a read by whoever is signed in (anonymous before signing in),
and each refused or failed request (4xx, 5xx) as a denial or failure. What a successful
form post changes is audited by the service that changes it (a sign-in, a booking, a new
account), in the change's own transaction.

Entries hold the path (record ids at most: search terms travel in the query string, which is
never recorded) and the status.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opengp.access.audit import Action, Outcome, entry_for
from opengp.api.web.session import SignedIn
from opengp.store import ResourceStore

# The screens' paths: the areas, the first run's set-up, the SMART sign-in page, the start.
SCREENS = ("/staff", "/patient", "/setup", "/oauth2/authorize")


def is_screen(path: str) -> bool:
    return path == "/" or any(path == p or path.startswith(p + "/") for p in SCREENS)


class ScreenAudit:
    def __init__(self, app: ASGIApp, store: ResourceStore) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_screen(scope["path"]):
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True  # audited before the answer is sent, as reads are
                await self._audited(scope, int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except BaseException:
            if not started:
                await self._audited(scope, 500)  # the app failed before answering
            raise

    async def _audited(self, scope: Scope, status: int) -> None:
        # A page shown (a GET, or the page a form post answers with), or a refusal.
        if scope["method"] in ("GET", "HEAD") or status == 200 or status >= 400:
            await run_in_threadpool(self._audit, scope, status)

    def _audit(self, scope: Scope, status: int) -> None:
        signed = scope.get("state", {}).get("signed_in")
        principal = signed.principal if isinstance(signed, SignedIn) else None
        outcome: Outcome = "success"
        if status >= 400:
            outcome = "denied" if status in (401, 403) else "failed"
        action: Action = "read" if status < 400 else "failure"
        detail = {"screen": scope["path"], "method": scope["method"], "status": status}
        with self.store.auditing() as trail:
            trail.audit(entry_for(principal, action, outcome, detail=detail))
