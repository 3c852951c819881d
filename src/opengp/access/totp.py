"""Time-based one-time passwords (RFC 6238), the second factor of a sign-in.

Codes are 6 digits for 30-second steps with HMAC-SHA1: the defaults every authenticator
app understands.
"""

from __future__ import annotations

import hmac
from datetime import datetime

import pyotp

ISSUER = "OpenGP"
STEP_SECONDS = 30
DIGITS = 6
# RFC 6238 §5.2: accept the codes of one step either side, for clock drift and typing time.
WINDOW = 1


def new_secret() -> str:
    """A random base32 secret of 160 bits (RFC 4226 §4 recommends 160)."""
    return pyotp.random_base32()  # 32 base32 characters, from `secrets`


def provisioning_uri(secret: str, account_name: str) -> str:
    """The otpauth:// URI an authenticator app reads (usually shown as a QR code)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=account_name, issuer_name=ISSUER
    )


def code_at(secret: str, when: datetime) -> str:
    """The code for `when` (what the user's app shows then); for tests and enrolment checks."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).at(when)


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step whose code `code` is, within ±`WINDOW` steps of `now`; else None.

    Callers that can store the last accepted step should refuse that step and earlier ones
    again (RFC 6238 §5.2: a code is accepted once). Never raises on malformed input.
    """
    if now.tzinfo is None:
        raise ValueError("naive datetime given to TOTP verification")
    typed = "".join(code.split())  # apps show "123 456"
    if len(typed) != DIGITS or not typed.isascii() or not typed.isdigit():
        return None
    try:
        totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
        current = int(now.timestamp()) // STEP_SECONDS
        candidates = [current + offset for offset in range(-WINDOW, WINDOW + 1)]
        codes = [totp.generate_otp(step) for step in candidates]
    except ValueError:  # includes binascii.Error: a malformed secret
        return None
    found = None
    for step, expected in zip(candidates, codes, strict=True):
        # Compare every candidate (no early exit), each in constant time.
        if hmac.compare_digest(expected, typed) and found is None:
            found = step
    return found


def verify(secret: str, code: str, now: datetime) -> bool:
    """Whether `code` is the code of `secret` at `now`, give or take one step."""
    return matching_step(secret, code, now) is not None
