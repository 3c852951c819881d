"""User accounts: creating them, granting proxy access, signing in, changing passwords.

Accounts live in `user_account` and `proxy_grant` (store/sql/access_tables.py). Everything
here takes a SQLAlchemy `Connection` in the caller's transaction and an explicit `now`, so
tests can travel in time; `sign_in` is the one entry point that manages its own transactions.

Sign-in rules (NCSC password guidance, OWASP Authentication Cheat Sheet):
- an unknown username and a wrong password give the same `SignInFailed` and cost the same
  (a dummy argon2 hash is verified, and the same write is made);
- after `LOCK_AFTER` consecutive failures the account is locked for a minute, doubling with
  each further failure up to an hour; a locked account fails even with the right password,
  and attempts while locked are neither verified nor counted; a success resets the count;
- once a TOTP secret is enrolled, a valid code is required (staff are expected to enrol;
  patients and proxies may), and each code is accepted once (RFC 6238 §5.2): the step of the
  last code accepted is kept, and a code of that step or an earlier one is refused like a
  wrong code, even when two sign-ins race with it;
- a disabled account never signs in.

Logs name no patient: usernames are never logged, and only staff account ids are.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, get_args

from sqlalchemy import Connection, Update, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from opengp.access import totp
from opengp.access.passwords import (
    STRONG,
    Hasher,
    WeakPassword,
    check_password,
    normalise_password,
    one_time_password,
)
from opengp.access.principal import Principal, PrincipalKind
from opengp.fhir.references import is_valid_id, parse_relative
from opengp.store.sql.access_tables import proxy_grant, user_account

if TYPE_CHECKING:
    from opengp.store.sql.store import SqlStore

log = logging.getLogger("opengp.access")

AccountKind = Literal["staff", "patient", "proxy"]
ACCOUNT_KINDS: tuple[AccountKind, ...] = get_args(AccountKind)

# National RBAC job roles a practice account may hold (NHS England, "National RBAC for
# developers"; codes and names from the national RBAC database / UK Core SDSJobRoleName).
NATIONAL_ROLES: Mapping[str, str] = MappingProxyType(
    {
        "R8000": "Clinical Practitioner Access Role",
        "R8001": "Nurse Access Role",
        "R8003": "Health Professional Access Role",
        "R8006": "Medical Secretary Access Role",
        "R8008": "Admin/Clinical Support Access Role",
        "R8009": "Receptionist Access Role",
        "R8015": "Systems Support Access Role",
        "R0001": "Privacy Officer",
    }
)

LOCK_AFTER = 5  # consecutive failures before the first lock
FIRST_LOCK = timedelta(minutes=1)
MAX_LOCK = timedelta(hours=1)

# Case-folded usernames: letters, digits and . _ @ - (so e-mail addresses fit), 3-64 long.
USERNAME = re.compile(r"[a-z0-9][a-z0-9._@-]{2,63}")
# A SMART App Launch v2 patient-level scope: patient/<type or *>.<cruds>[?query].
PATIENT_SCOPE = re.compile(r"patient/(\*|[A-Z][A-Za-z]+)\.(?=[cruds])c?r?u?d?s?(\?\S+)?")
# What a user's account kind allows as fhirUser (SMART App Launch, "fhirUser" claim).
FHIR_USER_TYPES: Mapping[str, str] = MappingProxyType(
    {"staff": "Practitioner", "patient": "Patient", "proxy": "RelatedPerson"}
)

SignInReason = Literal["invalid-credentials", "locked", "disabled", "totp-required", "totp-invalid"]
_MESSAGES: Mapping[str, str] = MappingProxyType(
    {
        "invalid-credentials": "The username or password is not right.",
        "locked": "The account is locked after repeated failed sign-ins: try again later.",
        "disabled": "The account is disabled: contact the practice.",
        "totp-required": "Enter the 6-digit code from the authenticator app.",
        "totp-invalid": "The 6-digit code is not right.",
    }
)


class AccountError(ValueError):
    """Account details break a rule; the message names the field and the rule."""


class UsernameTaken(AccountError):
    pass


class UnknownAccount(LookupError):
    pass


class SignInFailed(Exception):
    """A sign-in (or a check of the current password) failed.

    `reason` is for the audit trail and the screens; `str(exc)` is safe to show the user.
    `locked_until` is set when the account is (now) locked.
    """

    def __init__(self, reason: SignInReason, *, locked_until: datetime | None = None) -> None:
        super().__init__(_MESSAGES[reason])
        self.reason: SignInReason = reason
        self.locked_until = locked_until


@dataclass(frozen=True, slots=True)
class CreatedUser:
    """A new account and its secrets, to be shown once and never stored in clear."""

    user_id: str
    username: str
    one_time_password: str = field(repr=False)
    totp_secret: str | None = field(default=None, repr=False)
    totp_uri: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Account:
    """An account as administrators and screens see it: no secrets."""

    id: str
    username: str
    kind: AccountKind
    display_name: str
    roles: frozenset[str]
    fhir_user: str | None
    practitioner_role: str | None
    organization_id: str | None
    must_change_password: bool
    totp_enrolled: bool
    failed_attempts: int
    locked_until: datetime | None
    disabled: bool
    created: datetime

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now


def _utc_now() -> datetime:
    return datetime.now(UTC)


def normalise_username(username: str) -> str:
    return username.strip().casefold()


def lock_duration(failures: int) -> timedelta | None:
    """How long `failures` consecutive failures lock an account for (None: not locked)."""
    if failures < LOCK_AFTER:
        return None
    # 2**6 minutes already exceeds the hour: cap the exponent so huge counts cannot overflow.
    return min(FIRST_LOCK * (1 << min(failures - LOCK_AFTER, 6)), MAX_LOCK)


# --- creating and administering accounts ------------------------------------------------


def _reference(value: str | None, expected_type: str, what: str) -> str | None:
    if value is None:
        return None
    parsed = parse_relative(value)
    if parsed is None or parsed.resource_type != expected_type or parsed.version_id:
        raise AccountError(f"{what} must be a reference like {expected_type}/<id>, not {value!r}")
    return value


def _validated_roles(kind: AccountKind, roles: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(r.strip().upper() for r in roles)
    unknown = sorted(chosen - NATIONAL_ROLES.keys())
    if unknown:
        allowed = ", ".join(NATIONAL_ROLES)
        raise AccountError(f"unknown national role {', '.join(unknown)}: use one of {allowed}")
    if kind == "staff" and not chosen:
        raise AccountError("a staff account needs at least one national role (e.g. R8000)")
    if kind != "staff" and chosen:
        raise AccountError(f"a {kind} account has no national roles")
    return chosen


def create_user(
    conn: Connection,
    *,
    username: str,
    kind: str,
    display_name: str,
    roles: Iterable[str] = (),
    fhir_user: str | None = None,
    practitioner_role: str | None = None,
    organization_id: str | None = None,
    with_totp: bool,
    hasher: Hasher = STRONG,
    now: datetime | None = None,
) -> CreatedUser:
    """Create an account with a random one-time password (to be changed at first sign-in).

    Raises `AccountError` (or `UsernameTaken`) naming the field at fault.
    """
    name = normalise_username(username)
    if not USERNAME.fullmatch(name):
        raise AccountError(
            "username must be 3-64 letters, digits or . _ @ -, starting with a letter or digit"
        )
    if kind not in ACCOUNT_KINDS:
        raise AccountError(f"kind must be one of {', '.join(ACCOUNT_KINDS)}, not {kind!r}")
    account_kind: AccountKind = kind  # narrowed by the check above
    display = " ".join(display_name.split())
    if not display or len(display) > 255 or not display.isprintable():
        raise AccountError("display name must be 1-255 printable characters")
    chosen_roles = _validated_roles(account_kind, roles)
    _reference(fhir_user, FHIR_USER_TYPES[account_kind], "fhir user")
    if account_kind == "patient" and fhir_user is None:
        raise AccountError("a patient account needs its fhir user: Patient/<id>")
    if practitioner_role is not None and account_kind != "staff":
        raise AccountError("only staff accounts act in a practitioner role")
    _reference(practitioner_role, "PractitionerRole", "practitioner role")
    if organization_id is not None and not is_valid_id(organization_id):
        raise AccountError(f"organization must be an Organization id, not {organization_id!r}")

    password = one_time_password()
    secret = totp.new_secret() if with_totp else None
    user_id = str(uuid.uuid4())
    values = {
        "id": user_id,
        "username": name,
        "kind": account_kind,
        "display_name": display,
        "password_hash": hasher.hash(password),
        "must_change_password": True,
        "totp_secret": secret,
        "fhir_user": fhir_user,
        "practitioner_role": practitioner_role,
        "organization_id": organization_id,
        "roles": " ".join(sorted(chosen_roles)),
        "failed_attempts": 0,
        "locked_until": None,
        "disabled": False,
        "created": now or _utc_now(),
    }
    try:
        # A savepoint: a clash must not abort the caller's transaction (PostgreSQL would).
        with conn.begin_nested():
            conn.execute(insert(user_account).values(values))
    except IntegrityError:
        raise UsernameTaken(f"username {name!r} is already taken") from None
    return CreatedUser(
        user_id=user_id,
        username=name,
        one_time_password=password,
        totp_secret=secret,
        totp_uri=None if secret is None else totp.provisioning_uri(secret, name),
    )


def _row(conn: Connection, user_id: str, *, for_update: bool = False) -> Any:
    query = select(user_account).where(user_account.c.id == user_id)
    return conn.execute(query.with_for_update() if for_update else query).first()


def _existing(conn: Connection, user_id: str, *, for_update: bool = False) -> Any:
    row = _row(conn, user_id, for_update=for_update)
    if row is None:
        raise UnknownAccount(f"no account {user_id!r}")
    return row


def _account(row: Any) -> Account:
    return Account(
        id=row.id,
        username=row.username,
        kind=row.kind,
        display_name=row.display_name,
        roles=frozenset(row.roles.split()),
        fhir_user=row.fhir_user,
        practitioner_role=row.practitioner_role,
        organization_id=row.organization_id,
        must_change_password=row.must_change_password,
        totp_enrolled=row.totp_secret is not None,
        failed_attempts=row.failed_attempts,
        locked_until=row.locked_until,
        disabled=row.disabled,
        created=row.created,
    )


def get_account(conn: Connection, user_id: str) -> Account | None:
    row = _row(conn, user_id)
    return None if row is None else _account(row)


def list_accounts(conn: Connection) -> list[Account]:
    rows = conn.execute(select(user_account).order_by(user_account.c.username))
    return [_account(row) for row in rows]


def set_disabled(conn: Connection, user_id: str, disabled: bool) -> None:
    _existing(conn, user_id)
    conn.execute(update(user_account).where(user_account.c.id == user_id).values(disabled=disabled))


def reset_password(conn: Connection, user_id: str, *, hasher: Hasher = STRONG) -> str:
    """Issue a new one-time password (and lift any lock); returns it, to be shown once."""
    _existing(conn, user_id)
    password = one_time_password()
    conn.execute(
        update(user_account)
        .where(user_account.c.id == user_id)
        .values(
            password_hash=hasher.hash(password),
            must_change_password=True,
            failed_attempts=0,
            locked_until=None,
        )
    )
    return password


def reset_second_factor(conn: Connection, user_id: str) -> CreatedUser:
    """Replace the account's authenticator (TOTP) secret, e.g. after a lost phone: the old
    app's codes stop working. Returns the new secret and its otpauth URI, to be shown once
    (in a `CreatedUser` with no password)."""
    row = _existing(conn, user_id)
    secret = totp.new_secret()
    conn.execute(
        update(user_account)
        .where(user_account.c.id == user_id)
        .values(totp_secret=secret, totp_last_step=None)
    )
    return CreatedUser(
        user_id=user_id,
        username=row.username,
        one_time_password="",
        totp_secret=secret,
        totp_uri=totp.provisioning_uri(secret, row.username),
    )


def _unused_step(query: Update, step: int) -> Update:
    """`query` restricted to an account that has not accepted a code of `step` or later.

    Checked in the UPDATE itself, so of two transactions using one code only one changes
    the row, whatever their interleaving (RFC 6238 §5.2: a code is accepted once).
    """
    last = user_account.c.totp_last_step
    return query.where(or_(last.is_(None), last < step))


def enrol_totp(conn: Connection, user_id: str, secret: str, code: str, now: datetime) -> None:
    """Store a TOTP secret once the user has shown a code from it (so the app is set up).

    The code is then used: it cannot sign in, nor can any code of its step or before.
    """
    _existing(conn, user_id)
    step = totp.matching_step(secret, code, now)
    if step is None:
        raise AccountError("the 6-digit code does not match the new authenticator secret")
    enrol = update(user_account).where(user_account.c.id == user_id)
    stored = conn.execute(_unused_step(enrol, step).values(totp_secret=secret, totp_last_step=step))
    if not stored.rowcount:
        raise AccountError("the 6-digit code has already been used: enter the next one")


# --- proxies --------------------------------------------------------------------------


def _validated_scopes(scopes: str | Iterable[str]) -> str:
    items = scopes.split() if isinstance(scopes, str) else [s for s in scopes if s.strip()]
    bad = [s for s in items if not PATIENT_SCOPE.fullmatch(s)]
    if bad or not items:
        raise AccountError(
            "proxy scopes must be SMART v2 patient scopes like patient/Appointment.rs"
            + (f", not {bad[0]!r}" if bad else "")
        )
    return " ".join(sorted(set(items)))


def grant_proxy(
    conn: Connection,
    user_id: str,
    patient_id: str,
    scopes: str | Iterable[str],
    granted_by: str,
    *,
    now: datetime | None = None,
) -> None:
    """Let a proxy account act for a patient with `scopes` (re-granting replaces them)."""
    row = _existing(conn, user_id)
    if row.kind != "proxy":
        raise AccountError(f"only proxy accounts act for patients, not {row.kind} accounts")
    if not is_valid_id(patient_id):
        raise AccountError(f"patient must be a Patient id, not {patient_id!r}")
    scope_text = _validated_scopes(scopes)
    values = {"scopes": scope_text, "granted_by": granted_by, "created": now or _utc_now()}
    g = proxy_grant.c
    existing = update(proxy_grant).where(g.user_id == user_id, g.patient_id == patient_id)
    renewed = existing.values(**values, revoked=None)
    if conn.execute(renewed).rowcount:
        return
    try:
        with conn.begin_nested():
            conn.execute(
                insert(proxy_grant).values(user_id=user_id, patient_id=patient_id, **values)
            )
    except IntegrityError:  # granted concurrently: the unique constraint keeps one row
        conn.execute(renewed)


def revoke_proxy(conn: Connection, user_id: str, patient_id: str, now: datetime) -> None:
    g = proxy_grant.c
    conn.execute(
        update(proxy_grant)
        .where(g.user_id == user_id, g.patient_id == patient_id, g.revoked.is_(None))
        .values(revoked=now)
    )


def proxy_patients(conn: Connection, user_id: str) -> dict[str, frozenset[str]]:
    """The patients a proxy may act for now, each with the scopes granted."""
    g = proxy_grant.c
    rows = conn.execute(
        select(g.patient_id, g.scopes).where(g.user_id == user_id, g.revoked.is_(None))
    )
    return {row.patient_id: frozenset(row.scopes.split()) for row in rows}


# --- principals -------------------------------------------------------------------------


def _principal(row: Any) -> Principal:
    kind: PrincipalKind = row.kind
    patient_id = None
    if kind == "patient" and row.fhir_user is not None:
        parsed = parse_relative(row.fhir_user)
        patient_id = None if parsed is None else parsed.id
    return Principal(
        kind=kind,
        id=row.id,
        display=row.display_name,
        fhir_user=row.fhir_user,
        practitioner_role=row.practitioner_role,
        organization_id=row.organization_id,
        roles=frozenset(row.roles.split()),
        patient_id=patient_id,
    )


def principal_for(conn: Connection, user_id: str) -> Principal:
    """The `Principal` of an account (e.g. for a session). Proxies have no `patient_id`:
    the patient they act for is chosen per request among `proxy_patients`.

    Raises `UnknownAccount`, or `SignInFailed("disabled")` for a disabled account.
    """
    row = _existing(conn, user_id)
    if row.disabled:
        raise SignInFailed("disabled")
    return _principal(row)


# --- signing in -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Verdict:
    """What the credentials say, judged without holding a write transaction."""

    account_id: str | None  # None: no such username
    reason: SignInReason | None  # None: success
    counts: bool  # a failure that counts towards the lock
    seen_hash: str | None = None  # the hash verified, to notice a concurrent change
    seen_totp: str | None = None  # the TOTP secret checked, likewise
    totp_step: int | None = None  # the step of the code accepted, to record once
    new_hash: str | None = None  # a rehash with current parameters, on success


def _find(conn: Connection, username: str) -> Any:
    name = normalise_username(username)
    return conn.execute(select(user_account).where(user_account.c.username == name)).first()


def _judge(
    row: Any, password: str, totp_code: str | None, now: datetime, hasher: Hasher
) -> _Verdict:
    if row is None or row.password_hash is None:
        hasher.verify(None, password)  # the same cost as a wrong password
        return _Verdict(None if row is None else row.id, "invalid-credentials", counts=False)
    if row.locked_until is not None and row.locked_until > now:
        return _Verdict(row.id, "locked", counts=False)  # not verified: no guessing while locked
    if not hasher.verify(row.password_hash, password):
        return _Verdict(row.id, "invalid-credentials", counts=True)
    if row.disabled:
        return _Verdict(row.id, "disabled", counts=False)
    if row.totp_secret is not None:
        # Failed codes count too: 6 digits would otherwise be guessed in hours.
        if not totp_code or not totp_code.strip():
            return _Verdict(row.id, "totp-required", counts=True)
        step = totp.matching_step(row.totp_secret, totp_code, now)
        if step is None or (row.totp_last_step is not None and step <= row.totp_last_step):
            return _Verdict(row.id, "totp-invalid", counts=True)  # a used code is no better
    else:
        step = None
    new_hash = hasher.hash(password) if hasher.needs_rehash(row.password_hash) else None
    return _Verdict(
        row.id,
        None,
        counts=False,
        seen_hash=row.password_hash,
        seen_totp=row.totp_secret,
        totp_step=step,
        new_hash=new_hash,
    )


def _count_failure(conn: Connection, account_id: str, now: datetime) -> datetime | None:
    c = user_account.c
    failures = conn.execute(
        update(user_account)
        .where(c.id == account_id)
        .values(failed_attempts=c.failed_attempts + 1)
        .returning(c.failed_attempts)
    ).scalar_one_or_none()
    lock = None if failures is None else lock_duration(failures)
    if lock is None:
        return None
    until = now + lock
    conn.execute(update(user_account).where(c.id == account_id).values(locked_until=until))
    return until


def _settle(conn: Connection, verdict: _Verdict, now: datetime) -> Principal | SignInFailed:
    """Record the verdict on the account (in the caller's write transaction)."""
    row = _row(conn, verdict.account_id or "", for_update=True)
    if row is None:
        # Unknown username: the same statements as a counted failure, matching no row.
        _count_failure(conn, "", now)
        return SignInFailed("invalid-credentials")
    if verdict.reason is not None:
        if not verdict.counts:
            if verdict.reason == "invalid-credentials":  # no password set: look like the rest
                _count_failure(conn, "", now)
            until = row.locked_until if verdict.reason == "locked" else None
            return SignInFailed(verdict.reason, locked_until=until)
        locked_until = _count_failure(conn, row.id, now)
        if locked_until is not None:
            _log_lock(row, locked_until)
        return SignInFailed(verdict.reason, locked_until=locked_until)
    # Judged a success; the account may have changed since (concurrent sign-ins, admin).
    if row.locked_until is not None and row.locked_until > now:
        return SignInFailed("locked", locked_until=row.locked_until)
    if row.disabled:
        return SignInFailed("disabled")
    if row.password_hash != verdict.seen_hash or row.totp_secret != verdict.seen_totp:
        return SignInFailed("invalid-credentials")
    values: dict[str, Any] = {"failed_attempts": 0, "locked_until": None}
    if verdict.new_hash is not None:
        values["password_hash"] = verdict.new_hash
    success = update(user_account).where(user_account.c.id == row.id)
    if verdict.totp_step is None:
        conn.execute(success.values(values))
        return _principal(row)
    values["totp_last_step"] = verdict.totp_step
    if not conn.execute(_unused_step(success, verdict.totp_step).values(values)).rowcount:
        # The code was accepted since it was judged (a concurrent sign-in): a failure.
        locked_until = _count_failure(conn, row.id, now)
        if locked_until is not None:
            _log_lock(row, locked_until)
        return SignInFailed("totp-invalid", locked_until=locked_until)
    return _principal(row)


def _log_lock(row: Any, until: datetime) -> None:
    # Staff ids only: a patient's or proxy's account id would link the log to a patient.
    who = f"staff account {row.id}" if row.kind == "staff" else f"a {row.kind} account"
    log.warning("%s locked until %s after failed sign-ins", who, until.isoformat())


def authenticate(
    conn: Connection,
    username: str,
    password: str,
    totp_code: str | None,
    now: datetime,
    *,
    hasher: Hasher = STRONG,
) -> Principal:
    """Sign in on `conn`, recording the outcome there; raises `SignInFailed`.

    The failure count is written on `conn` *before* `SignInFailed` is raised: the caller must
    commit even then (a `with store.writing()` block would roll it back). `sign_in` does
    this, and verifies the password outside the write transaction; prefer it.
    """
    verdict = _judge(_find(conn, username), password, totp_code, now, hasher)
    outcome = _settle(conn, verdict, now)
    if isinstance(outcome, SignInFailed):
        raise outcome
    return outcome


def sign_in(
    store: SqlStore,
    username: str,
    password: str,
    totp_code: str | None,
    *,
    hasher: Hasher = STRONG,
    now: datetime | None = None,
) -> Principal:
    """Sign in against `store`: the slow hash runs outside any write transaction (SQLite has
    one writer), then the outcome is committed, and only then is `SignInFailed` raised."""
    when = now or store.clock()
    with store.reading() as tx:
        row = _find(tx.conn, username)
    verdict = _judge(row, password, totp_code, when, hasher)
    with store.writing() as tx:
        outcome = _settle(tx.conn, verdict, when)
    if isinstance(outcome, SignInFailed):
        raise outcome
    return outcome


def change_password(
    conn: Connection,
    user_id: str,
    old: str,
    new: str,
    *,
    hasher: Hasher = STRONG,
    now: datetime | None = None,
) -> None:
    """Replace the password after checking the current one; clears must_change_password.

    Raises `WeakPassword` (policy), `SignInFailed` (wrong current password, locked,
    disabled) or `UnknownAccount`.
    """
    row = _existing(conn, user_id, for_update=True)
    check_password(new, username=row.username)
    if row.locked_until is not None and row.locked_until > (now or _utc_now()):
        raise SignInFailed("locked", locked_until=row.locked_until)
    if not hasher.verify(row.password_hash, old):
        raise SignInFailed("invalid-credentials")
    if row.disabled:
        raise SignInFailed("disabled")
    if hmac.compare_digest(normalise_password(old).encode(), normalise_password(new).encode()):
        raise WeakPassword("the new password must differ from the current one")
    _store_password(conn, user_id, new, hasher)


def password_fingerprint(conn: Connection, user_id: str) -> str:
    """A digest of the account's current password hash: proof, inside a signed token, that
    the password has not changed since the token was issued (so the token works once)."""
    row = _existing(conn, user_id)
    return hashlib.sha256((row.password_hash or "").encode()).hexdigest()[:32]


def replace_one_time_password(
    conn: Connection, user_id: str, fingerprint: str, new: str, *, hasher: Hasher = STRONG
) -> None:
    """Set the first real password of an account that has just signed in with a one-time
    password (the sign-in is vouched for by `fingerprint`, taken when it succeeded).

    Raises `WeakPassword`, `SignInFailed` (the one-time password is no longer current, or
    the account was locked or disabled since) or `UnknownAccount`.
    """
    row = _existing(conn, user_id, for_update=True)
    check_password(new, username=row.username)
    current = password_fingerprint(conn, user_id)
    if not row.must_change_password or not hmac.compare_digest(current, fingerprint):
        raise SignInFailed("invalid-credentials")
    if row.disabled:
        raise SignInFailed("disabled")
    if row.locked_until is not None and row.locked_until > _utc_now():
        raise SignInFailed("locked", locked_until=row.locked_until)
    if hasher.verify(row.password_hash, new):
        raise WeakPassword("the new password must differ from the one-time password")
    _store_password(conn, user_id, new, hasher)


def _store_password(conn: Connection, user_id: str, new: str, hasher: Hasher) -> None:
    conn.execute(
        update(user_account)
        .where(user_account.c.id == user_id)
        .values(password_hash=hasher.hash(new), must_change_password=False)
    )
