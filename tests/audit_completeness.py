"""Every request the functional tests make of the app leaves its entry in the audit trail.

A pytest plugin (enabled in tests/functional/conftest.py): each request a Starlette
TestClient sends to the app (sign-in, screens, OAuth, FHIR, bulk) is recorded with the audit
trail's newest sequence number before and after it. When the test ends, each request must
have a matching entry among those it added: an interaction that fits the request, the
outcome its status says (a refusal or failure as `denied`/`failed`, never `success`), and
someone named when the request carried credentials that were accepted. A request without
one fails the test with its method and path.

Only the requests in `EXEMPT` need no entry, each for the reason given there. Requests
running in parallel share their windows, so there a match may come from a neighbour: the
check can then pass wrongly, never fail wrongly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette import testclient

from opengp.store.sql import SqlStore
from opengp.store.sql.access_tables import audit_event

# Requests the design says need no audit entry: they show no record data, change nothing
# and name nobody. (pattern on the path, reason)
EXEMPT: tuple[tuple[str, str], ...] = (
    (r"/healthz|/readyz", "liveness and readiness probes for the operator's monitoring"),
    (r"/metrics", "request counts and timings for monitoring, no record data"),
    (r"/assets/.*", "the screens' stylesheets, scripts and images (static files)"),
    (r"/favicon\.ico", "the browser's icon request"),
    (r"/openapi\.json", "the published description of the non-FHIR API"),
    (r"/fhir/metadata", "the CapabilityStatement: public discovery (FHIR R4 §3.1.0.10)"),
    (
        r"/fhir/\.well-known/smart-configuration|/\.well-known/.*",
        "SMART and OpenID discovery documents, public by design",
    ),
    (r"/oauth2/jwks", "the public keys tokens are signed with"),
)
# Answers that need no entry whatever the path. (status, reason)
EXEMPT_STATUS: tuple[tuple[int, str], ...] = (
    (
        429,
        "refused by the rate limit before it was read: counted, not audited, so a flood of"
        " requests cannot flood the trail",
    ),
)
_EXEMPT_STATUS = frozenset(status for status, _ in EXEMPT_STATUS)
_EXEMPT = re.compile("|".join(f"(?:{pattern})" for pattern, _ in EXEMPT))

READS = frozenset({"read", "vread", "search", "history", "export"})
WRITES = frozenset({"create", "update", "patch", "delete", "break-glass"})


@dataclass(frozen=True, slots=True)
class Sent:
    """One request to the app and the audit entries appended while it ran."""

    method: str
    path: str
    status: int
    credentials: bool  # a bearer token or session cookie came with it
    before: int
    after: int

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.status})"


def expected_actions(method: str, path: str) -> frozenset[str] | None:
    """The audit actions that fit a request (None: any)."""
    if path.startswith("/oauth2/token"):
        return frozenset({"token"})
    if path.endswith("/signout"):
        return frozenset({"signout"})
    if path.startswith("/fhir"):
        if "$export" in path or path.startswith("/fhir/bulk"):
            return None  # kick-off, status, download, cancel: export and create entries
        if path in ("/fhir", "/fhir/"):
            return None  # a Bundle: each entry is audited as itself
        return READS if method in ("GET", "HEAD") else WRITES | READS
    return None


def matches(sent: Sent, row: Any) -> bool:
    actions = expected_actions(sent.method, sent.path)
    failing = sent.status >= 400
    if (
        actions is not None
        and row.action not in actions
        and not (failing and row.action in ("failure", "denial"))
    ):
        return False
    if failing and row.outcome == "success":
        return False
    if not failing and sent.method in ("GET", "HEAD") and row.outcome != "success":
        return False
    # Credentials that were accepted (an answer, not a refusal or a redirect to sign in)
    # name someone.
    accepted = sent.credentials and sent.status < 300
    return not (accepted and row.principal == "anonymous")


@dataclass
class Recorder:
    """The requests of one test to apps on one store."""

    store: SqlStore
    sent: list[Sent] = field(default_factory=list)

    def newest(self) -> int:
        with self.store.engine.connect() as conn:
            return int(conn.scalar(select(func.max(audit_event.c.seq))) or 0)

    def missing(self) -> list[Sent]:
        if not self.sent:
            return []
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(audit_event).where(audit_event.c.seq > min(s.before for s in self.sent))
            ).all()
        return [
            sent
            for sent in self.sent
            if not any(matches(sent, r) for r in rows if sent.before < r.seq <= sent.after)
        ]


def store_of(app: Any) -> SqlStore | None:
    """The store an app built by `create_app` writes its audit trail to (its FHIR endpoint's)."""
    for route in getattr(app, "routes", ()):
        owner = getattr(getattr(route, "endpoint", None), "__self__", None)
        store = getattr(owner, "store", None)
        if isinstance(store, SqlStore):
            return store
    return None


def _credentials(request: Any) -> bool:
    """Whether the request carries credentials its path takes: a bearer token for the FHIR
    API, the session cookie for the screens of an area."""
    path = request.url.path
    if path.startswith("/fhir"):
        return "authorization" in request.headers
    if path.startswith(("/staff", "/patient")):
        return "__Host-opengp-session" in request.headers.get("cookie", "")
    return False


@pytest.fixture(autouse=True)
def audit_completeness() -> Iterator[None]:
    """Fail the test if one of its requests to the app left no audit entry."""
    recorders: dict[int, Recorder] = {}
    original: Callable[..., Any] = testclient._TestClientTransport.handle_request

    def handle_request(transport: Any, outgoing: Any) -> Any:
        path = outgoing.url.path
        store = store_of(transport.app)
        if store is None or _EXEMPT.fullmatch(path):
            return original(transport, outgoing)
        recorder = recorders.setdefault(id(store), Recorder(store))
        before = recorder.newest()
        response = original(transport, outgoing)
        after = recorder.newest()
        sent = Sent(
            outgoing.method, path, response.status_code, _credentials(outgoing), before, after
        )
        if sent.status not in _EXEMPT_STATUS:
            recorder.sent.append(sent)
        return response

    patch = pytest.MonkeyPatch()
    patch.setattr(testclient._TestClientTransport, "handle_request", handle_request)
    try:
        yield
    finally:
        patch.undo()
    missing = [s for recorder in recorders.values() for s in recorder.missing()]
    for recorder in recorders.values():
        # The test's store may be disposed of already: close what the check opened.
        recorder.store.engine.dispose()
    if missing:
        listed = "\n  ".join(str(s) for s in missing)
        pytest.fail(f"requests without their audit entry:\n  {listed}", pytrace=False)
