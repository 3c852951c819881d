"""The screens' form tokens and the same-origin rule, without a server."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from opengp.api.web.forms import (
    CHANGE_TOKEN_SECONDS,
    FORM_TOKEN_SECONDS,
    ChangeClaims,
    FormSigner,
    from_our_pages,
    same_secret,
)

BROWSER = "b" * 32


def signer_at(now: list[float]) -> FormSigner:
    return FormSigner(lambda: b"k" * 32, clock=lambda: now[0])


def test_a_form_token_works_in_its_own_browser_for_an_hour() -> None:
    now = [1_800_000_000.0]
    signer = signer_at(now)
    token = signer.form_token(BROWSER)
    assert signer.form_token_ok(BROWSER, token)
    assert not signer.form_token_ok("c" * 32, token)
    assert not signer.form_token_ok("", token)
    now[0] += FORM_TOKEN_SECONDS + 1
    assert not signer.form_token_ok(BROWSER, token)


@pytest.mark.parametrize("token", ["", ".", "1.", "²³.ab", "1" * 40 + ".x", "1.é", "x.y.z"])
def test_malformed_tokens_are_simply_refused(token: str) -> None:
    signer = signer_at([1_800_000_000.0])
    assert not signer.form_token_ok(BROWSER, token)
    assert signer.change_claims(BROWSER, token, "staff") is None


def test_a_change_token_is_bound_to_browser_area_and_time() -> None:
    now = [1_800_000_000.0]
    signer = signer_at(now)
    claims = ChangeClaims("user-1", "f" * 32)
    token = signer.change_token(BROWSER, claims, "staff")
    assert signer.change_claims(BROWSER, token, "staff") == claims
    assert signer.change_claims(BROWSER, token, "patient") is None
    assert signer.change_claims("c" * 32, token, "staff") is None
    assert signer.change_claims(BROWSER, token.replace("user-1", "user-2"), "staff") is None
    now[0] += CHANGE_TOKEN_SECONDS + 1
    assert signer.change_claims(BROWSER, token, "staff") is None


def test_secrets_are_compared_whatever_text_arrives() -> None:
    assert same_secret("abc", "abc")
    assert not same_secret("abç", "abc")
    assert not same_secret("", "abc")


def post(headers: dict[str, str]) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw.append((b"host", b"gp.test"))
    scope = {"type": "http", "method": "POST", "scheme": "https", "path": "/x", "headers": raw}
    scope |= {"server": ("gp.test", 443), "query_string": b""}
    return Request(scope)


@pytest.mark.parametrize(
    ("headers", "ours"),
    [
        ({}, True),
        ({"Origin": "https://gp.test"}, True),
        ({"Origin": "https://GP.test", "Sec-Fetch-Site": "same-origin"}, True),
        ({"Origin": "null", "Sec-Fetch-Site": "same-origin"}, True),
        ({"Origin": "null"}, False),
        ({"Origin": "https://evil.example"}, False),
        ({"Origin": "http://gp.test"}, False),
        ({"Sec-Fetch-Site": "same-site"}, False),
        ({"Sec-Fetch-Site": "cross-site", "Origin": "https://gp.test"}, False),
    ],
)
def test_posts_must_come_from_our_own_pages(headers: dict[str, str], ours: bool) -> None:
    assert from_our_pages(post(headers), None) is ours


def test_behind_a_proxy_the_public_url_is_our_origin() -> None:
    behind = post({"Origin": "https://gp.example.nhs.uk"})
    assert from_our_pages(behind, "https://gp.example.nhs.uk/")
    assert not from_our_pages(post({"Origin": "https://gp.test"}), "https://gp.example.nhs.uk")
