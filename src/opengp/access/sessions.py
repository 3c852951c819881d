"""Screen sessions: who a browser is signed in as, in `login_session`.

The browser holds a random token (256 bits) in a cookie; the table holds only its SHA-256,
so a copy of the database cannot be used to take over a session. A session ends after
`IDLE` without a request, at its absolute deadline (per account kind, `LIFETIMES`), at
sign-out, or when the account is disabled. Each session has its own CSRF token, put in every
form the screens show (OWASP CSRF Prevention Cheat Sheet, "synchronizer token pattern").

Every function takes the caller's `Connection` and an explicit `now`, like `accounts`.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from types import MappingProxyType

from sqlalchemy import ColumnElement, Connection, delete, insert, or_, select, update

from opengp.access import accounts, break_glass
from opengp.access.principal import Principal
from opengp.store.sql.access_tables import login_session, session_role

# OWASP Session Management Cheat Sheet: 15-30 minutes idle for high-value applications.
IDLE = timedelta(minutes=20)
# The absolute limit: a working day for staff; shorter for patients, often on shared devices.
LIFETIMES = MappingProxyType(
    {"staff": timedelta(hours=10), "patient": timedelta(hours=2), "proxy": timedelta(hours=2)}
)
# `last_seen` is written at most this often: a read-mostly screen need not write every time.
TOUCH_EVERY = timedelta(minutes=1)
# A session acts with every scope its kind may hold: the role table and the patient's own
# compartment (access.policy) decide, exactly as for an app the user signed in to.
SCREEN_SCOPES = MappingProxyType(
    {"staff": "user/*.cruds", "patient": "patient/*.cruds", "proxy": "patient/*.cruds"}
)


@dataclass(frozen=True, slots=True)
class Session:
    token_hash: str
    user_id: str
    csrf_token: str
    created: datetime
    expires: datetime
    last_seen: datetime
    # The roles it acts in, when fewer than the account's (one NHS CIS2 role chosen at
    # sign-in); None: all the account's roles.
    roles: frozenset[str] | None = None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def start(
    conn: Connection,
    user_id: str,
    kind: str,
    now: datetime,
    roles: frozenset[str] | None = None,
) -> tuple[str, Session]:
    """A new session for an account that has just signed in: (cookie token, session).

    Always a new token, never one the browser brought (no session fixation). Sessions that
    have ended are swept away here, so the table holds only live ones.
    """
    conn.execute(delete(login_session).where(_ended(now)))
    token = secrets.token_urlsafe(32)
    session = Session(
        token_hash=token_hash(token),
        user_id=user_id,
        csrf_token=secrets.token_urlsafe(32),
        created=now,
        expires=now + LIFETIMES.get(kind, min(LIFETIMES.values())),
        last_seen=now,
        roles=roles,
    )
    conn.execute(
        insert(login_session).values(
            token_hash=session.token_hash,
            user_id=user_id,
            csrf_token=session.csrf_token,
            created=now,
            expires=session.expires,
            last_seen=now,
        )
    )
    if roles is not None:
        conn.execute(
            insert(session_role).values(
                token_hash=session.token_hash, roles=" ".join(sorted(roles))
            )
        )
    return token, session


def _ended(now: datetime) -> ColumnElement[bool]:
    c = login_session.c
    return or_(c.expires <= now, c.last_seen <= now - IDLE)


def find(conn: Connection, token: str, now: datetime) -> Session | None:
    """The live session of a cookie token, or None (unknown, idle too long, or past its end)."""
    if not token or len(token) > 128:
        return None
    row = conn.execute(
        select(login_session, session_role.c.roles)
        .outerjoin(session_role)
        .where(login_session.c.token_hash == token_hash(token))
    ).first()
    if row is None or row.expires <= now or row.last_seen <= now - IDLE:
        return None
    roles = None if row.roles is None else frozenset(row.roles.split())
    return Session(
        row.token_hash, row.user_id, row.csrf_token, row.created, row.expires, row.last_seen, roles
    )


def needs_touch(session: Session, now: datetime) -> bool:
    return now - session.last_seen >= TOUCH_EVERY


def touch(conn: Connection, session: Session, now: datetime) -> None:
    """Record activity, which moves the idle deadline on."""
    conn.execute(
        update(login_session)
        .where(login_session.c.token_hash == session.token_hash)
        .values(last_seen=now)
    )


def end(conn: Connection, session: Session) -> None:
    """Sign out: the token is worthless from now on."""
    conn.execute(delete(login_session).where(login_session.c.token_hash == session.token_hash))


def end_all(conn: Connection, user_id: str) -> None:
    """End every session of an account (e.g. when it is disabled or its password reset)."""
    conn.execute(delete(login_session).where(login_session.c.user_id == user_id))


def principal_of(conn: Connection, session: Session, now: datetime) -> Principal:
    """The account's principal as the FHIR API would see it for a user signed in to an app
    with every scope of their kind. Raises `accounts.UnknownAccount` or
    `accounts.SignInFailed` (disabled) when the account can no longer act."""
    user = accounts.principal_for(conn, session.user_id)
    patient_id = user.patient_id
    if user.kind == "proxy":
        # One patient only: choosing among several needs a picker screen (to come).
        proxied = accounts.proxy_patients(conn, user.id)
        patient_id = next(iter(proxied)) if len(proxied) == 1 else None
    return replace(
        user,
        # A session started in one chosen role acts in that role only, if the account still
        # holds it.
        roles=user.roles if session.roles is None else user.roles & session.roles,
        scopes=frozenset([SCREEN_SCOPES[user.kind]]),
        patient_id=patient_id,
        break_glass=break_glass.active(conn, user.id, now) if user.kind == "staff" else (),
    )
