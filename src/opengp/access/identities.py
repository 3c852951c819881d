"""Accounts' identities at OpenID providers: who a person signing in with NHS CIS2 (or NHS
login) is here.

A link is (the provider's issuer, its subject for the person) -> an account, in
`user_identity`. Staff accounts are linked only by an administrator (`opengp users link`),
never on the strength of a sign-in: nothing a provider asserts about a member of staff (name,
e-mail) is a key this system holds, and a wrong match would hand a person someone else's
access. (Patients are found by their verified NHS number instead: services/external_sign_in.py.)

Every function takes the caller's `Connection`, like `accounts`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.exc import IntegrityError

from opengp.access import accounts
from opengp.store.sql.access_tables import user_account, user_identity

MAX_LENGTH = 255  # of an issuer or a subject (OpenID Connect Core §2: sub is at most 255)


class IdentityError(ValueError):
    """A link cannot be made; the message names the rule."""


@dataclass(frozen=True, slots=True)
class Identity:
    issuer: str
    subject: str
    user_id: str
    created: datetime


def _checked(issuer: str, subject: str) -> tuple[str, str]:
    issuer, subject = issuer.strip().rstrip("/"), subject.strip()
    if not issuer.startswith(("https://", "http://")) or len(issuer) > MAX_LENGTH:
        raise IdentityError(f"the issuer must be the provider's issuer URL, not {issuer!r}")
    if not subject or len(subject) > MAX_LENGTH or not subject.isprintable():
        raise IdentityError("the subject must be 1-255 printable characters")
    return issuer, subject


def link(conn: Connection, user_id: str, issuer: str, subject: str, now: datetime) -> Identity:
    """Link the account to (issuer, subject); linking it again is a no-op. Raises
    `accounts.UnknownAccount`, or `IdentityError` when the identity belongs to another account
    or the account is disabled."""
    issuer, subject = _checked(issuer, subject)
    account = accounts.get_account(conn, user_id)
    if account is None:
        raise accounts.UnknownAccount(f"no account {user_id!r}")
    if account.disabled:
        raise IdentityError("the account is disabled")
    existing = find(conn, issuer, subject)
    if existing is not None:
        if existing.user_id != user_id:
            raise IdentityError("that identity is already linked to another account")
        return existing
    try:
        # A savepoint: a concurrent link of the same identity must not abort the caller.
        with conn.begin_nested():
            conn.execute(
                insert(user_identity).values(
                    issuer=issuer, subject=subject, user_id=user_id, created=now
                )
            )
    except IntegrityError:
        raise IdentityError("that identity was linked by someone else just now") from None
    return Identity(issuer, subject, user_id, now)


def unlink(conn: Connection, issuer: str, subject: str) -> bool:
    """Remove a link; whether there was one."""
    issuer, subject = _checked(issuer, subject)
    c = user_identity.c
    return bool(
        conn.execute(delete(user_identity).where(c.issuer == issuer, c.subject == subject)).rowcount
    )


def find(conn: Connection, issuer: str, subject: str) -> Identity | None:
    """The link of (issuer, subject), or None."""
    c = user_identity.c
    issuer = issuer.rstrip("/")
    if not (0 < len(subject) <= MAX_LENGTH and subject.isprintable()) or len(issuer) > MAX_LENGTH:
        return None  # never linked: link() refuses such values
    row = conn.execute(
        select(user_identity).where(c.issuer == issuer, c.subject == subject)
    ).first()
    return None if row is None else Identity(row.issuer, row.subject, row.user_id, row.created)


def of_account(conn: Connection, user_id: str) -> list[Identity]:
    c = user_identity.c
    rows = conn.execute(select(user_identity).where(c.user_id == user_id).order_by(c.issuer))
    return [Identity(row.issuer, row.subject, row.user_id, row.created) for row in rows]


def patient_accounts(conn: Connection, patient_id: str) -> list[accounts.Account]:
    """The patient accounts (not proxies) whose fhirUser is Patient/`patient_id`."""
    c = user_account.c
    rows = conn.execute(
        select(c.id).where(c.kind == "patient", c.fhir_user == f"Patient/{patient_id}")
    )
    found = [accounts.get_account(conn, row.id) for row in rows]
    return [account for account in found if account is not None]
