"""Password hashing (argon2id), the password policy, and one-time passwords."""

from __future__ import annotations

import re

import argon2
import pytest
from argon2 import Parameters, Type

from opengp.access.passwords import (
    COMMON_PASSWORDS,
    MIN_LENGTH,
    OTP_ALPHABET,
    RECOMMENDED,
    STRONG,
    Hasher,
    WeakPassword,
    check_password,
    one_time_password,
    password_problem,
)

# Cheap parameters for tests only (8 KiB, one pass): production keeps RECOMMENDED.
FAST = Hasher(
    Parameters(Type.ID, 19, salt_len=16, hash_len=32, time_cost=1, memory_cost=8, parallelism=1)
)
OTP_FORMAT = re.compile(rf"[{OTP_ALPHABET}]{{4}}(-[{OTP_ALPHABET}]{{4}}){{3}}")


def test_production_parameters_are_rfc_9106_low_memory_argon2id() -> None:
    assert RECOMMENDED.type is Type.ID
    assert (RECOMMENDED.time_cost, RECOMMENDED.memory_cost, RECOMMENDED.parallelism) == (
        3,
        64 * 1024,
        4,
    )
    assert (RECOMMENDED.salt_len, RECOMMENDED.hash_len) == (16, 32)
    # At or above the OWASP minimum for argon2id (m=19 MiB, t=2, p=1).
    assert RECOMMENDED.memory_cost >= 19 * 1024 and RECOMMENDED.time_cost >= 2
    assert STRONG.parameters == RECOMMENDED
    assert Hasher().parameters == RECOMMENDED


def test_hash_and_verify() -> None:
    first = FAST.hash("correct horse battery")
    second = FAST.hash("correct horse battery")
    assert first.startswith("$argon2id$v=19$")
    assert first != second  # a fresh salt each time
    assert "correct horse" not in first
    assert FAST.verify(first, "correct horse battery")
    assert FAST.verify(second, "correct horse battery")
    assert not FAST.verify(first, "correct horse batterY")
    assert not FAST.verify(first, "")


def test_unicode_is_normalised_before_hashing() -> None:
    # U+FB01 (the "fi" ligature) and "fi", and a composed vs decomposed "é" (NFKC).
    assert FAST.verify(FAST.hash("ﬁnancial café 2026"), "financial cafe\u0301 2026")


@pytest.mark.parametrize(
    "bad_hash",
    [
        "",
        "garbage",
        "$argon2id$",
        "$argon2id$v=19$m=8,t=1,p=1$not-base64$also-not",
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",  # bcrypt
        "$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$" + "A" * 400,
    ],
)
def test_verify_never_raises_on_malformed_hashes(bad_hash: str) -> None:
    assert FAST.verify(bad_hash, "anything at all") is False
    assert FAST.needs_rehash(bad_hash) is True


def test_no_hash_verifies_a_dummy_of_the_same_cost() -> None:
    seen: list[Parameters] = []

    class Spy(Hasher):
        def _verify(self, password_hash: str, password: str) -> bool:
            seen.append(argon2.extract_parameters(password_hash))
            return super()._verify(password_hash, password)

    spy = Spy(FAST.parameters)
    assert spy.verify(None, "whatever it is") is False
    assert spy.verify(spy.hash("the real password"), "a wrong password") is False
    assert len(seen) == 2
    assert seen[0] == seen[1] == FAST.parameters


def test_needs_rehash_when_parameters_change() -> None:
    cheap = FAST.hash("a long enough password")
    assert not FAST.needs_rehash(cheap)
    assert STRONG.needs_rehash(cheap)
    # An old cheap hash still verifies under the strong hasher (the hash carries its cost).
    assert STRONG.verify(cheap, "a long enough password")


@pytest.mark.parametrize(
    ("password", "username", "rule"),
    [
        ("short", "dr.who", f"at least {MIN_LENGTH} characters"),
        ("elevenchars", "dr.who", f"at least {MIN_LENGTH} characters"),
        ("x" * 257, "dr.who", "at most 256"),
        ("            ", "dr.who", "only spaces"),
        ("aaaaaaaaaaaaaaaa", "dr.who", "one character repeated"),
        ("asha.patel@nhs.net", "Asha.Patel@nhs.net", "username"),
        ("my name is asha.patel!", "asha.patel", "username"),
        ("Password1234", "dr.who", "commonly used"),
        ("QWERTYUIOP123", "dr.who", "commonly used"),
        ("opengp123456", "dr.who", "commonly used"),
    ],
)
def test_policy_refuses_with_a_reason(password: str, username: str, rule: str) -> None:
    problem = password_problem(password, username=username)
    assert problem is not None and rule in problem
    with pytest.raises(WeakPassword, match=re.escape(problem)):
        check_password(password, username=username)


@pytest.mark.parametrize(
    "password",
    ["correct horse battery staple", "Tr0ub4dor&3xyz", "twelve chars", "ßtraße-Ünïcødé!"],
)
def test_policy_accepts_good_passwords(password: str) -> None:
    assert password_problem(password, username="dr.who") is None
    check_password(password, username="dr.who")


def test_common_list_is_folded_and_only_has_passwords_long_enough_to_matter() -> None:
    assert all(p == p.casefold() for p in COMMON_PASSWORDS)
    assert all(len(p) >= MIN_LENGTH for p in COMMON_PASSWORDS)


def test_one_time_passwords_are_random_readable_and_pass_the_policy() -> None:
    made = {one_time_password() for _ in range(500)}
    assert len(made) == 500
    for password in made:
        assert OTP_FORMAT.fullmatch(password), password
        assert password_problem(password, username="dr.who") is None
    assert not set("01ilo") & set(OTP_ALPHABET)


def test_one_time_passwords_come_from_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def choice(alphabet: str) -> str:
        calls.append(alphabet)
        return alphabet[0]

    monkeypatch.setattr("secrets.choice", choice)
    assert one_time_password() == "2222-2222-2222-2222"
    assert calls == [OTP_ALPHABET] * 16
