"""Passwords: argon2id hashing, the policy for chosen passwords, and one-time passwords.

There are never fixed or default passwords: every account starts with a random one-time
password (`one_time_password`) that must be changed at first sign-in.
"""

from __future__ import annotations

import secrets
import threading
import unicodedata

from argon2 import Parameters, PasswordHasher
from argon2.exceptions import Argon2Error
from argon2.profiles import RFC_9106_LOW_MEMORY

# RFC 9106 §4, the second recommended option ("if much less memory is available"): argon2id,
# t=3 passes, m=64 MiB, p=4 lanes, 16-byte salt, 32-byte tag (about 0.1 s a hash on two
# cores). It is above the OWASP Password Storage Cheat Sheet minimum (argon2id, m=19 MiB,
# t=2, p=1). The first RFC option (m=2 GiB) is too much memory for a practice server under
# concurrent sign-ins. Hashes carry their parameters: raising these rehashes at next sign-in.
RECOMMENDED: Parameters = RFC_9106_LOW_MEMORY

MIN_LENGTH = 12  # NCSC password guidance and NIST SP 800-63B §3.1.1.2 (at least 8; we ask 12)
MAX_LENGTH = 256  # long passphrases welcome (NIST: allow at least 64), but bounded

# Unambiguous characters for one-time passwords: no 0/o, 1/l/i (read aloud, typed from paper).
OTP_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
OTP_GROUPS, OTP_GROUP_SIZE = 4, 4  # 16 characters from 31: about 79 bits

# The most common passwords of 12 or more characters (shorter ones fail on length), and
# this service's name with the usual decorations. NIST SP 800-63B §3.1.1.2: refuse values
# known to be commonly used. A short list by design: a longer one belongs in a data file.
COMMON_PASSWORDS: frozenset[str] = frozenset(
    {
        "123456789012",
        "1234567890123",
        "12345678901234",
        "123456123456",
        "111111111111",
        "000000000000",
        "1q2w3e4r5t6y",
        "1qaz2wsx3edc",
        "qwertyuiop12",
        "qwertyuiop123",
        "qwertyuiopasdf",
        "qwerty123456",
        "asdfghjkl123",
        "abc123456789",
        "abcdefghijkl",
        "password1234",
        "password12345",
        "password123!",
        "passwordpassword",
        "password1password1",
        "iloveyou1234",
        "letmein12345",
        "welcome12345",
        "welcome123456",
        "changeme1234",
        "trustno1trustno1",
        "football1234",
        "liverpool123",
        "manchesterunited",
        "chelsea12345",
        "arsenal12345",
        "monkey123456",
        "sunshine1234",
        "princess1234",
        "superman1234",
        "administrator",
        "administrator1",
        "opengp123456",
        "opengppassword",
        "nhspassword1",
        "nhspassword123",
        "doctorpassword",
        "surgery12345",
    }
)


class WeakPassword(ValueError):
    """A chosen password breaks the policy; the message says which rule."""


def normalise_password(password: str) -> str:
    """The password as hashed and compared."""
    # NIST SP 800-63B §5.1.1.2: normalise Unicode (NFKC) before hashing, so the same
    # password typed on different keyboards gives the same hash.
    return unicodedata.normalize("NFKC", password)


def password_problem(password: str, *, username: str) -> str | None:
    """Why `password` may not be chosen by `username`, or None when it may."""
    text = normalise_password(password)
    folded = text.casefold()
    if len(text) < MIN_LENGTH:
        return f"the password must be at least {MIN_LENGTH} characters long"
    if len(text) > MAX_LENGTH:
        return f"the password must be at most {MAX_LENGTH} characters long"
    if not text.strip():
        return "the password must not be only spaces"
    if len(set(folded)) == 1:
        return "the password must not be one character repeated"
    name = username.strip().casefold()
    if name and (folded == name or name in folded):
        return "the password must not contain the username"
    if folded in COMMON_PASSWORDS:
        return "the password is one of the most commonly used passwords: choose another"
    return None


def check_password(password: str, *, username: str) -> None:
    """Raise `WeakPassword` when `password` breaks the policy."""
    problem = password_problem(password, username=username)
    if problem is not None:
        raise WeakPassword(problem)


def one_time_password() -> str:
    """A random password to hand over once (e.g. `k7cm-x3pq-9rtw-bf2h`), never a fixed one."""
    groups = (
        "".join(secrets.choice(OTP_ALPHABET) for _ in range(OTP_GROUP_SIZE))
        for _ in range(OTP_GROUPS)
    )
    return "-".join(groups)


class Hasher:
    """argon2id hashing and verification with one set of parameters.

    Inject a cheaper `Parameters` in tests only; production uses `RECOMMENDED`.
    At most `max_concurrent` hashes run at once: each holds `memory_cost` KiB (64 MiB), so a
    burst of sign-ins cannot exhaust the server's memory.
    """

    def __init__(self, parameters: Parameters = RECOMMENDED, *, max_concurrent: int = 4) -> None:
        self.parameters = parameters
        self._hasher = PasswordHasher.from_parameters(parameters)
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        with self._slots:
            return self._hasher.hash(normalise_password(password))

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether `password` matches `password_hash`; never raises.

        The comparison is argon2's own (constant time). With no hash (unknown user, no
        password set) a dummy hash of the same cost is verified, so the answer takes as long.
        A malformed or unsupported hash is simply False.
        """
        if password_hash is None:
            self._verify(self._dummy_hash(), password)
            return False
        return self._verify(password_hash, password)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            with self._slots:
                return self._hasher.verify(password_hash, normalise_password(password))
        except (Argon2Error, ValueError, TypeError):
            # Mismatch (VerifyMismatchError), malformed (InvalidHashError is a ValueError),
            # unsupported parameters: all mean "no".
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made with other parameters (or is malformed)."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except (Argon2Error, ValueError, TypeError):
            return True

    def _dummy_hash(self) -> str:
        if self._dummy is None:
            # Random, so no password can ever match it; made once per hasher.
            self._dummy = self.hash(secrets.token_urlsafe(24))
        return self._dummy


# The process's hasher: one shared instance, so `max_concurrent` bounds the whole process.
STRONG = Hasher()
