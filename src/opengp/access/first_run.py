"""The first administrator of a new deployment, through a one-time setup token.

There is no default account or password anywhere. While no staff account exists, starting
the server issues a random setup token (256 bits), prints it once on the console, and keeps
only its SHA-256 here (`setup_token`), for `TOKEN_LIFETIME`. Its holder creates the first
staff account at /setup (api/web/setup.py): a Systems Support account (R8015, the least
privilege that runs the system, no access to any record) with their own password and an
authenticator app.

The setup happens once. Using a token deletes it (and every other), and writes the row
`SETUP_DONE` in the same transaction: its primary key stops a second setup even when two
browsers, holding tokens of two server processes, finish at the same moment. Once a staff
account exists (or setup was done) no token is issued and /setup is gone.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, exists, insert, select
from sqlalchemy.exc import IntegrityError

from opengp.access import accounts, totp
from opengp.access.passwords import STRONG, Hasher
from opengp.access.principal import Principal
from opengp.store.sql.access_tables import setup_token, user_account

TOKEN_LIFETIME = timedelta(hours=1)
SETUP_DONE = "setup-done"  # the row that says setup happened (not a SHA-256: never a token's)
# Systems Support runs the system (creates accounts, registers apps) and sees no record:
# clinical and privacy roles are given later, to named people, by that administrator.
FIRST_ROLES: tuple[str, ...] = ("R8015",)
MAX_TOKEN_LENGTH = 128


class SetupGone(Exception):
    """Setup is over: a staff account exists, or the first administrator was created."""


class SetupTokenInvalid(Exception):
    """The token is unknown, used or expired."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def needs_setup(conn: Connection) -> bool:
    """Whether the deployment still waits for its first administrator."""
    staff = select(exists().where(user_account.c.kind == "staff"))
    done = select(exists().where(setup_token.c.token_hash == SETUP_DONE))
    return not (conn.scalar(staff) or conn.scalar(done))


def issue_token(conn: Connection, now: datetime) -> str | None:
    """A new setup token (to print once), or None when setup is over. Expired tokens are
    swept away; live ones (e.g. of the server's other processes) stay usable."""
    if not needs_setup(conn):
        return None
    c = setup_token.c
    conn.execute(delete(setup_token).where(c.expires <= now, c.token_hash != SETUP_DONE))
    token = secrets.token_urlsafe(32)
    conn.execute(
        insert(setup_token).values(
            token_hash=_hash(token), issued=now, expires=now + TOKEN_LIFETIME
        )
    )
    return token


def token_usable(conn: Connection, token: str, now: datetime) -> bool:
    """Whether `token` would be accepted now (for showing the setup page)."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return False
    c = setup_token.c
    query = select(exists().where(c.token_hash == _hash(token), c.expires > now))
    return bool(conn.scalar(query))


def create_first_administrator(
    conn: Connection,
    token: str,
    *,
    username: str,
    display_name: str,
    password: str,
    totp_secret: str,
    totp_code: str,
    now: datetime,
    roles: Iterable[str] = FIRST_ROLES,
    hasher: Hasher = STRONG,
) -> Principal:
    """Use the token: create the first staff account with its own password and authenticator
    app (the code shows the app is set up), and end setup; in the caller's transaction.

    Raises `SetupGone`, `SetupTokenInvalid`, `accounts.AccountError` (username, name, code),
    or `passwords.WeakPassword`; the caller must then roll back, which keeps the token.
    """
    if not needs_setup(conn):
        raise SetupGone
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise SetupTokenInvalid
    if totp.matching_step(totp_secret, totp_code, now) is None:  # before any slow hashing
        raise accounts.AccountError("the 6-digit code does not match the new authenticator secret")
    c = setup_token.c
    used = conn.execute(
        delete(setup_token).where(
            c.token_hash == _hash(token), c.expires > now, c.token_hash != SETUP_DONE
        )
    )
    if used.rowcount != 1:  # unknown, expired, or used by a concurrent request
        raise SetupTokenInvalid
    try:
        with conn.begin_nested():
            conn.execute(insert(setup_token).values(token_hash=SETUP_DONE, issued=now, expires=now))
    except IntegrityError:
        raise SetupGone from None
    created = accounts.create_user(
        conn,
        username=username,
        kind="staff",
        display_name=display_name,
        roles=roles,
        with_totp=False,
        hasher=hasher,
        now=now,
    )
    fingerprint = accounts.password_fingerprint(conn, created.user_id)
    accounts.replace_one_time_password(conn, created.user_id, fingerprint, password, hasher=hasher)
    accounts.enrol_totp(conn, created.user_id, totp_secret, totp_code, now)
    conn.execute(delete(setup_token).where(c.token_hash != SETUP_DONE))
    return accounts.principal_for(conn, created.user_id)
