"""TOTP (RFC 6238): secrets, provisioning URIs, and verification with a one-step window."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from opengp.access import totp

# RFC 6238 Appendix B: the SHA-1 seed "12345678901234567890" and its 8-digit codes; the
# 6-digit code is the last six digits (RFC 4226 §5.3: the value modulo 10^6).
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()
RFC_VECTORS = [
    (59, "287082"),  # 94287082
    (1111111109, "081804"),  # 07081804
    (1111111111, "050471"),  # 14050471
    (1234567890, "005924"),  # 89005924
    (2000000000, "279037"),  # 69279037
]


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def test_new_secrets_are_160_bit_base32_and_distinct() -> None:
    secrets = {totp.new_secret() for _ in range(100)}
    assert len(secrets) == 100
    for secret in secrets:
        assert re.fullmatch(r"[A-Z2-7]{32}", secret)
        assert len(base64.b32decode(secret)) == 20


def test_provisioning_uri_names_the_issuer_and_account() -> None:
    secret = totp.new_secret()
    uri = urlsplit(totp.provisioning_uri(secret, "dr.who@example.nhs.uk"))
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert unquote(uri.path) == "/OpenGP:dr.who@example.nhs.uk"
    query = parse_qs(uri.query)
    assert query["secret"] == [secret]
    assert query["issuer"] == ["OpenGP"]


@pytest.mark.parametrize(("seconds", "code"), RFC_VECTORS)
def test_rfc_6238_test_vectors(seconds: int, code: str) -> None:
    assert totp.code_at(RFC_SECRET, _at(seconds)) == code
    assert totp.verify(RFC_SECRET, code, _at(seconds))
    assert totp.matching_step(RFC_SECRET, code, _at(seconds)) == seconds // 30


def test_one_step_either_side_is_accepted_two_are_not() -> None:
    secret = totp.new_secret()
    now = _at(1_800_000_015)
    step = 1_800_000_015 // 30
    for offset, expected in [(-2, None), (-1, step - 1), (0, step), (1, step + 1), (2, None)]:
        code = totp.code_at(secret, now + timedelta(seconds=30 * offset))
        if expected is None and totp.code_at(secret, now) == code:
            continue  # a one-in-a-million collision with the current code
        assert totp.matching_step(secret, code, now) == expected, offset


def test_spaces_typed_from_the_app_are_ignored() -> None:
    assert totp.verify(RFC_SECRET, " 287 082 ", _at(59))


@pytest.mark.parametrize(
    "code",
    [
        "",
        "28708",
        "2870820",
        "28708x",
        "abcdef",
        "\uff12\uff18\uff17\uff10\uff18\uff12",
        "287-082",
        "94287082",
    ],
)
def test_malformed_codes_fail(code: str) -> None:
    assert not totp.verify(RFC_SECRET, code, _at(59))


@pytest.mark.parametrize("secret", ["", "not base32!", "1"])
def test_malformed_secrets_fail_without_raising(secret: str) -> None:
    assert not totp.verify(secret, "123456", _at(59))


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        totp.verify(RFC_SECRET, "287082", datetime(2026, 1, 1))
