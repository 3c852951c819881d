"""Accounts and sign-in, on SQLite and PostgreSQL alike (with a clock that tests move)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import argon2
import pytest
from argon2 import Parameters, Type
from sqlalchemy import select

from opengp.access import totp
from opengp.access.accounts import (
    AccountError,
    CreatedUser,
    SignInFailed,
    UnknownAccount,
    UsernameTaken,
    authenticate,
    change_password,
    create_user,
    enrol_totp,
    get_account,
    grant_proxy,
    list_accounts,
    lock_duration,
    principal_for,
    proxy_patients,
    reset_password,
    revoke_proxy,
    set_disabled,
    sign_in,
)
from opengp.access.passwords import COMMON_PASSWORDS, Hasher, WeakPassword, password_problem
from opengp.access.principal import Principal
from opengp.store.sql import SqlStore
from opengp.store.sql.access_tables import user_account

# Cheap argon2id parameters for tests only; production uses passwords.RECOMMENDED.
FAST_PARAMETERS = Parameters(
    Type.ID, 19, salt_len=16, hash_len=32, time_cost=1, memory_cost=8, parallelism=1
)
FAST = Hasher(FAST_PARAMETERS)
T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
FIXED_PASSWORDS = {"", "password", "changeme", "opengp", "admin", "demo", "123456"}


def _make(store: SqlStore, username: str = "dr.patel", **details: Any) -> CreatedUser:
    fields: dict[str, Any] = {
        "kind": "staff",
        "display_name": "Dr Asha Patel",
        "roles": ["R8000"],
        "with_totp": False,
    }
    fields.update(details)
    with store.writing() as tx:
        return create_user(tx.conn, username=username, hasher=FAST, now=T0, **fields)


def _sign_in(
    store: SqlStore,
    username: str,
    password: str,
    code: str | None = None,
    now: datetime = T0,
    hasher: Hasher = FAST,
) -> Principal:
    return sign_in(store, username, password, code, hasher=hasher, now=now)


def _failure(store: SqlStore, username: str, password: str, **kw: Any) -> SignInFailed:
    with pytest.raises(SignInFailed) as caught:
        _sign_in(store, username, password, **kw)
    return caught.value


def _row(store: SqlStore, user_id: str) -> Any:
    with store.reading() as tx:
        return tx.conn.execute(select(user_account).where(user_account.c.id == user_id)).one()


def test_create_then_sign_in(store: SqlStore) -> None:
    created = _make(
        store,
        "  Dr.Patel@Example.NHS.uk ",
        roles=["r8000", "R8001"],
        fhir_user="Practitioner/asha",
        practitioner_role="PractitionerRole/asha-gp",
        organization_id="practice-1",
    )
    assert created.username == "dr.patel@example.nhs.uk"
    assert created.totp_secret is None and created.totp_uri is None
    assert created.one_time_password not in repr(created)
    principal = _sign_in(store, "DR.PATEL@example.nhs.uk", created.one_time_password)
    assert principal == Principal(
        kind="staff",
        id=created.user_id,
        display="Dr Asha Patel",
        fhir_user="Practitioner/asha",
        practitioner_role="PractitionerRole/asha-gp",
        organization_id="practice-1",
        roles=frozenset({"R8000", "R8001"}),
    )
    with store.reading() as tx:
        account = get_account(tx.conn, created.user_id)
        assert principal_for(tx.conn, created.user_id) == principal
    assert account is not None
    assert account.must_change_password and not account.totp_enrolled
    row = _row(store, created.user_id)
    assert row.password_hash.startswith("$argon2id$")
    assert created.one_time_password not in row.password_hash


def test_patient_principal_carries_the_patient(store: SqlStore) -> None:
    created = _make(store, "pat", kind="patient", roles=[], fhir_user="Patient/p-42")
    principal = _sign_in(store, "pat", created.one_time_password)
    assert (principal.kind, principal.patient_id, principal.fhir_user) == (
        "patient",
        "p-42",
        "Patient/p-42",
    )
    assert principal.roles == frozenset()


def test_unknown_user_and_wrong_password_are_indistinguishable(store: SqlStore) -> None:
    seen: list[Parameters] = []

    class Spy(Hasher):
        def _verify(self, password_hash: str, password: str) -> bool:
            seen.append(argon2.extract_parameters(password_hash))
            return super()._verify(password_hash, password)

    spy = Spy(FAST_PARAMETERS)
    _make(store)
    unknown = _failure(store, "nobody", "some password here", hasher=spy)
    wrong = _failure(store, "dr.patel", "some password here", hasher=spy)
    assert (unknown.reason, str(unknown)) == (wrong.reason, str(wrong))
    assert unknown.reason == "invalid-credentials"
    assert unknown.locked_until is None and wrong.locked_until is None
    # One full-cost verification each, with the same parameters (the dummy hash's).
    assert seen == [FAST_PARAMETERS, FAST_PARAMETERS]


def test_lock_after_five_failures_with_doubling_backoff(store: SqlStore) -> None:
    created = _make(store)
    now = T0
    for attempt in range(1, 5):
        assert _failure(store, "dr.patel", "wrong password!", now=now).locked_until is None
        assert _row(store, created.user_id).failed_attempts == attempt
    fifth = _failure(store, "dr.patel", "wrong password!", now=now)
    assert fifth.reason == "invalid-credentials"
    assert fifth.locked_until == now + timedelta(minutes=1)
    # Locked: even the right password fails, and attempts while locked are not counted.
    right = created.one_time_password
    locked = _failure(store, "dr.patel", right, now=now + timedelta(seconds=59))
    assert (locked.reason, locked.locked_until) == ("locked", now + timedelta(minutes=1))
    assert _row(store, created.user_id).failed_attempts == 5
    # Each further failure after the lock ends doubles it, up to an hour.
    expected = [2, 4, 8, 16, 32, 60, 60]
    until = fifth.locked_until
    for minutes in expected:
        assert until is not None
        now = until
        failed = _failure(store, "dr.patel", "wrong password!", now=now)
        assert failed.locked_until == now + timedelta(minutes=minutes)
        until = failed.locked_until
    assert _row(store, created.user_id).failed_attempts == 5 + len(expected)
    # Once the lock ends, the right password signs in and resets everything.
    assert until is not None
    _sign_in(store, "dr.patel", right, now=until)
    row = _row(store, created.user_id)
    assert (row.failed_attempts, row.locked_until) == (0, None)


def test_success_resets_the_count(store: SqlStore) -> None:
    created = _make(store)
    for _ in range(4):
        _failure(store, "dr.patel", "wrong password!")
    _sign_in(store, "dr.patel", created.one_time_password)
    for _ in range(4):
        assert _failure(store, "dr.patel", "wrong password!").locked_until is None
    assert _row(store, created.user_id).failed_attempts == 4


def test_lock_durations() -> None:
    assert [lock_duration(n) for n in range(5)] == [None] * 5
    minutes = [lock_duration(n) for n in range(5, 13)]
    assert minutes == [timedelta(minutes=m) for m in (1, 2, 4, 8, 16, 32, 60, 60)]
    assert lock_duration(10**6) == timedelta(hours=1)


def test_concurrent_failures_are_all_counted(store: SqlStore) -> None:
    """Eight wrong passwords at once: every one judged a wrong password is counted (none
    lost to a race); those judged after the lock began are refused as locked, uncounted."""
    created = _make(store)
    errors: list[BaseException] = []
    reasons: list[str] = []

    def attempt() -> None:
        try:
            reasons.append(_failure(store, "dr.patel", "wrong password!").reason)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(set(reasons)) <= ["invalid-credentials", "locked"] and len(reasons) == 8
    counted = reasons.count("invalid-credentials")
    row = _row(store, created.user_id)
    assert row.failed_attempts == counted >= 5
    assert row.locked_until is not None  # locked at the fifth


def test_authenticate_on_a_connection_records_failures_for_the_caller_to_commit(
    store: SqlStore,
) -> None:
    created = _make(store)
    with store.engine.connect() as conn:
        with pytest.raises(SignInFailed):
            authenticate(conn, "dr.patel", "wrong password!", None, T0, hasher=FAST)
        conn.commit()
    assert _row(store, created.user_id).failed_attempts == 1
    with store.engine.connect() as conn:
        principal = authenticate(conn, "dr.patel", created.one_time_password, None, T0, hasher=FAST)
        conn.commit()
    assert principal.id == created.user_id
    assert _row(store, created.user_id).failed_attempts == 0


def test_enrolled_staff_need_a_totp_code(store: SqlStore) -> None:
    created = _make(store, with_totp=True)
    assert created.totp_secret is not None and created.totp_uri is not None
    assert created.totp_uri.startswith("otpauth://totp/OpenGP:dr.patel?")
    password = created.one_time_password
    assert _failure(store, "dr.patel", password).reason == "totp-required"
    assert _failure(store, "dr.patel", password, code="000000x").reason == "totp-invalid"
    wrong_code = "000000" if totp.code_at(created.totp_secret, T0) != "000000" else "111111"
    assert _failure(store, "dr.patel", password, code=wrong_code).reason == "totp-invalid"
    assert _row(store, created.user_id).failed_attempts == 3  # codes count towards the lock
    code = totp.code_at(created.totp_secret, T0 - timedelta(seconds=30))
    assert _sign_in(store, "dr.patel", password, code=code).id == created.user_id
    assert _row(store, created.user_id).failed_attempts == 0
    # A wrong password with a right code is still a wrong password.
    right_code = totp.code_at(created.totp_secret, T0)
    failed = _failure(store, "dr.patel", "wrong password!", code=right_code)
    assert failed.reason == "invalid-credentials"


def _step(when: datetime) -> int:
    return int(when.timestamp()) // totp.STEP_SECONDS


def test_a_totp_code_is_accepted_once(store: SqlStore) -> None:
    created = _make(store, with_totp=True)
    secret, password = created.totp_secret, created.one_time_password
    assert secret is not None
    assert _row(store, created.user_id).totp_last_step is None
    code = totp.code_at(secret, T0)
    assert _sign_in(store, "dr.patel", password, code=code).id == created.user_id
    assert _row(store, created.user_id).totp_last_step == _step(T0)
    # RFC 6238 §5.2: the same code again is refused, like a wrong one, and counted.
    again = _failure(store, "dr.patel", password, code=code, now=T0 + timedelta(seconds=10))
    assert again.reason == "totp-invalid"
    # So is a code of an earlier step, though still within the window of clock drift.
    earlier = totp.code_at(secret, T0 - timedelta(seconds=30))
    assert _failure(store, "dr.patel", password, code=earlier).reason == "totp-invalid"
    assert _row(store, created.user_id).failed_attempts == 2
    # The next step's code signs in, even a step early (drift), and is then used too.
    later = totp.code_at(secret, T0 + timedelta(seconds=30))
    assert _sign_in(store, "dr.patel", password, code=later).id == created.user_id
    row = _row(store, created.user_id)
    assert (row.totp_last_step, row.failed_attempts) == (_step(T0) + 1, 0)
    at_next_step = T0 + timedelta(seconds=30)
    assert _failure(store, "dr.patel", password, code=later, now=at_next_step).reason == (
        "totp-invalid"
    )
    with store.engine.connect() as conn:  # authenticate() keeps the rule too
        with pytest.raises(SignInFailed, match="code is not right"):
            authenticate(conn, "dr.patel", password, later, at_next_step, hasher=FAST)
        conn.commit()


def test_concurrent_sign_ins_with_one_code_let_one_in(store: SqlStore) -> None:
    created = _make(store, with_totp=True)
    assert created.totp_secret is not None
    code = totp.code_at(created.totp_secret, T0)
    both_checked = threading.Barrier(2, timeout=30)

    class Racing(Hasher):
        def _verify(self, password_hash: str, password: str) -> bool:
            try:
                return super()._verify(password_hash, password)
            finally:
                both_checked.wait()  # neither records its sign-in before both judged it

    racing = Racing(FAST_PARAMETERS)
    outcomes: list[object] = []

    def attempt() -> None:
        try:
            outcomes.append(
                _sign_in(store, "dr.patel", created.one_time_password, code, hasher=racing)
            )
        except SignInFailed as failed:
            outcomes.append(failed.reason)
        except BaseException as exc:  # surfaced below
            outcomes.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # One is let in; the other is refused like a wrong code, and counted.
    assert [o for o in outcomes if not isinstance(o, Principal)] == ["totp-invalid"], outcomes
    assert sum(isinstance(o, Principal) for o in outcomes) == 1
    row = _row(store, created.user_id)
    assert (row.totp_last_step, row.failed_attempts) == (_step(T0), 1)


def test_enrolling_uses_up_the_code_shown(store: SqlStore) -> None:
    created = _make(store)
    secret = totp.new_secret()
    code = totp.code_at(secret, T0)
    with store.writing() as tx, pytest.raises(AccountError, match="does not match"):
        enrol_totp(tx.conn, created.user_id, secret, "000000" if code != "000000" else "111111", T0)
    with store.writing() as tx:
        enrol_totp(tx.conn, created.user_id, secret, code, T0)
    row = _row(store, created.user_id)
    assert (row.totp_secret, row.totp_last_step) == (secret, _step(T0))
    password = created.one_time_password
    assert _failure(store, "dr.patel", password, code=code).reason == "totp-invalid"
    with store.writing() as tx, pytest.raises(AccountError, match="already been used"):
        enrol_totp(tx.conn, created.user_id, secret, code, T0)
    with store.writing() as tx, pytest.raises(UnknownAccount):
        enrol_totp(tx.conn, "no-such-id", secret, code, T0)
    later = T0 + timedelta(seconds=30)
    assert _sign_in(store, "dr.patel", password, code=totp.code_at(secret, later), now=later).id


def test_totp_only_when_enrolled(store: SqlStore) -> None:
    staff = _make(store, "nurse", roles=["R8001"])
    patient = _make(store, "pat", kind="patient", roles=[], fhir_user="Patient/p1")
    enrolled = _make(
        store, "pat2", kind="patient", roles=[], fhir_user="Patient/p2", with_totp=True
    )
    _sign_in(store, "nurse", staff.one_time_password)
    _sign_in(store, "pat", patient.one_time_password)
    assert _failure(store, "pat2", enrolled.one_time_password).reason == "totp-required"
    assert enrolled.totp_secret is not None
    code = totp.code_at(enrolled.totp_secret, T0)
    assert _sign_in(store, "pat2", enrolled.one_time_password, code=code).patient_id == "p2"


def test_disabled_accounts_never_sign_in(store: SqlStore) -> None:
    created = _make(store)
    with store.writing() as tx:
        set_disabled(tx.conn, created.user_id, True)
    assert _failure(store, "dr.patel", created.one_time_password).reason == "disabled"
    # A wrong password says nothing about the account being disabled.
    assert _failure(store, "dr.patel", "wrong password!").reason == "invalid-credentials"
    with store.reading() as tx, pytest.raises(SignInFailed, match="disabled"):
        principal_for(tx.conn, created.user_id)
    with store.writing() as tx:
        set_disabled(tx.conn, created.user_id, False)
    assert _sign_in(store, "dr.patel", created.one_time_password).id == created.user_id


def test_change_password_enforces_the_policy(store: SqlStore) -> None:
    created = _make(store)
    old = created.one_time_password

    def change(current: str, new: str) -> None:
        with store.writing() as tx:
            change_password(tx.conn, created.user_id, current, new, hasher=FAST, now=T0)

    for weak in ["short", "dr.patel", "DR.PATEL-2026-x", "password1234", "aaaaaaaaaaaaaa"]:
        with pytest.raises(WeakPassword):
            change(old, weak)
    with pytest.raises(WeakPassword, match="differ"):
        change(old, old)
    with pytest.raises(SignInFailed) as wrong:
        change("not the password", "a good new passphrase")
    assert wrong.value.reason == "invalid-credentials"
    change(old, "a good new passphrase")
    with store.reading() as tx:
        account = get_account(tx.conn, created.user_id)
    assert account is not None and not account.must_change_password
    assert _failure(store, "dr.patel", old).reason == "invalid-credentials"
    assert _sign_in(store, "dr.patel", "a good new passphrase").id == created.user_id
    with store.writing() as tx, pytest.raises(UnknownAccount):
        change_password(tx.conn, "no-such-id", old, "another good passphrase", hasher=FAST)


def test_reset_password_issues_a_new_one_time_password_and_unlocks(store: SqlStore) -> None:
    created = _make(store)
    for _ in range(5):
        _failure(store, "dr.patel", "wrong password!")
    with store.writing() as tx:
        fresh = reset_password(tx.conn, created.user_id, hasher=FAST)
    assert fresh != created.one_time_password
    assert _failure(store, "dr.patel", created.one_time_password).reason == "invalid-credentials"
    assert _sign_in(store, "dr.patel", fresh).id == created.user_id


def test_sign_in_upgrades_hashes_made_with_older_parameters(store: SqlStore) -> None:
    created = _make(store)
    stronger = Hasher(
        Parameters(
            Type.ID, 19, salt_len=16, hash_len=32, time_cost=2, memory_cost=16, parallelism=1
        )
    )
    _sign_in(store, "dr.patel", created.one_time_password, hasher=stronger)
    upgraded = _row(store, created.user_id).password_hash
    assert argon2.extract_parameters(upgraded) == stronger.parameters
    assert _sign_in(store, "dr.patel", created.one_time_password, hasher=FAST).id


def test_proxy_grants(store: SqlStore) -> None:
    proxy = _make(store, "mum", kind="proxy", roles=[], fhir_user="RelatedPerson/rp1")
    staff = _make(store)
    with store.writing() as tx:
        grant_proxy(tx.conn, proxy.user_id, "child-1", "patient/Appointment.cruds", staff.user_id)
        grant_proxy(
            tx.conn, proxy.user_id, "child-2", ["patient/*.rs", "patient/Appointment.rs"], "x"
        )
        # Re-granting replaces the scopes.
        grant_proxy(tx.conn, proxy.user_id, "child-1", "patient/*.rs", staff.user_id)
    with store.reading() as tx:
        assert proxy_patients(tx.conn, proxy.user_id) == {
            "child-1": frozenset({"patient/*.rs"}),
            "child-2": frozenset({"patient/*.rs", "patient/Appointment.rs"}),
        }
        assert proxy_patients(tx.conn, staff.user_id) == {}
    principal = _sign_in(store, "mum", proxy.one_time_password)
    assert (principal.kind, principal.patient_id, principal.fhir_user) == (
        "proxy",
        None,
        "RelatedPerson/rp1",
    )
    with store.writing() as tx:
        revoke_proxy(tx.conn, proxy.user_id, "child-2", T0)
    with store.reading() as tx:
        assert set(proxy_patients(tx.conn, proxy.user_id)) == {"child-1"}
    with store.writing() as tx:  # granting again after a revocation restores it
        grant_proxy(tx.conn, proxy.user_id, "child-2", "patient/Observation.rs", staff.user_id)
    with store.reading() as tx:
        assert set(proxy_patients(tx.conn, proxy.user_id)) == {"child-1", "child-2"}


@pytest.mark.parametrize(
    ("patient", "scopes", "rule"),
    [
        ("child-1", "user/*.rs", "SMART v2 patient scopes"),
        ("child-1", "patient/*.read", "SMART v2 patient scopes"),
        ("child-1", "patient/Observation.sr", "SMART v2 patient scopes"),
        ("child-1", "", "SMART v2 patient scopes"),
        ("not an id!", "patient/*.rs", "patient must be a Patient id"),
    ],
)
def test_bad_proxy_grants(store: SqlStore, patient: str, scopes: str, rule: str) -> None:
    proxy = _make(store, "mum", kind="proxy", roles=[])
    with store.writing() as tx, pytest.raises(AccountError, match=rule):
        grant_proxy(tx.conn, proxy.user_id, patient, scopes, "x")


def test_only_proxies_get_grants(store: SqlStore) -> None:
    staff = _make(store)
    with store.writing() as tx, pytest.raises(AccountError, match="only proxy accounts"):
        grant_proxy(tx.conn, staff.user_id, "child-1", "patient/*.rs", "x")
    with store.writing() as tx, pytest.raises(UnknownAccount):
        grant_proxy(tx.conn, "no-such-id", "child-1", "patient/*.rs", "x")


def test_one_time_passwords_are_random_per_user(store: SqlStore) -> None:
    made = [_make(store, f"user{n}") for n in range(6)]
    passwords = [m.one_time_password for m in made]
    assert len(set(passwords)) == len(passwords)
    for password in passwords:
        assert password not in FIXED_PASSWORDS and password.casefold() not in COMMON_PASSWORDS
        assert password_problem(password, username="user0") is None
    with store.reading() as tx:
        assert all(a.must_change_password for a in list_accounts(tx.conn))


def test_usernames_are_unique_whatever_their_case(store: SqlStore) -> None:
    _make(store, "dr.patel")
    with store.writing() as tx:
        with pytest.raises(UsernameTaken, match="already taken"):
            create_user(
                tx.conn,
                username="DR.PATEL",
                kind="staff",
                display_name="Someone Else",
                roles=["R8009"],
                with_totp=False,
                hasher=FAST,
            )
        # The clash did not spoil the transaction (a savepoint on PostgreSQL).
        create_user(
            tx.conn,
            username="reception",
            kind="staff",
            display_name="Front Desk",
            roles=["R8009"],
            with_totp=False,
            hasher=FAST,
        )
    with store.reading() as tx:
        assert [a.username for a in list_accounts(tx.conn)] == ["dr.patel", "reception"]


@pytest.mark.parametrize(
    ("details", "rule"),
    [
        ({"username": "x"}, "username must be 3-64"),
        ({"username": "has space"}, "username must be 3-64"),
        ({"username": "émile"}, "username must be 3-64"),
        ({"kind": "admin"}, "kind must be one of staff, patient, proxy"),
        ({"display_name": "  "}, "display name"),
        ({"roles": []}, "at least one national role"),
        ({"roles": ["R9999"]}, "unknown national role R9999"),
        ({"kind": "patient", "roles": [], "fhir_user": None}, "needs its fhir user"),
        ({"kind": "patient", "fhir_user": "Patient/p1"}, "has no national roles"),
        ({"kind": "patient", "roles": [], "fhir_user": "Practitioner/x"}, "Patient/<id>"),
        ({"fhir_user": "Patient/p1"}, "Practitioner/<id>"),
        ({"practitioner_role": "Practitioner/x"}, "PractitionerRole/<id>"),
        ({"kind": "proxy", "roles": [], "practitioner_role": "PractitionerRole/r"}, "only staff"),
        ({"organization_id": "not valid!"}, "organization"),
    ],
)
def test_account_details_are_validated(store: SqlStore, details: dict[str, Any], rule: str) -> None:
    fields: dict[str, Any] = {
        "username": "dr.patel",
        "kind": "staff",
        "display_name": "Dr Asha Patel",
        "roles": ["R8000"],
        "with_totp": False,
    }
    fields.update(details)
    with store.writing() as tx, pytest.raises(AccountError, match=rule):
        create_user(tx.conn, hasher=FAST, **fields)
    with store.reading() as tx:
        assert list_accounts(tx.conn) == []
