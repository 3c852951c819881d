"""Security headers, no caching of record data, and rate limits on secret-checking endpoints."""

from __future__ import annotations

from opengp.api.protection import TokenBuckets
from tests.functional.conftest import Fhir


def test_every_response_carries_the_security_headers(fhir: Fhir) -> None:
    for url in ("/", "/fhir/metadata", "/fhir/Patient", "/healthz"):
        response = fhir.http.get(url)
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")  # https


def test_record_data_and_tokens_are_never_cached_but_discovery_may_be(fhir: Fhir) -> None:
    assert fhir.http.get("/fhir/Patient").headers["Cache-Control"] == "no-store"
    token = fhir.http.post("/oauth2/token", data={"grant_type": "client_credentials"})
    assert token.headers["Cache-Control"] == "no-store"
    assert fhir.http.get("/fhir/metadata").headers.get("Cache-Control") != "no-store"


def test_guessing_at_the_token_endpoint_is_slowed_down(fhir: Fhir) -> None:
    statuses = [
        fhir.http.post(
            "/oauth2/token", data={"grant_type": "client_credentials"}, auth=("x", "guess")
        ).status_code
        for _ in range(40)
    ]
    assert statuses[0] == 401
    assert 429 in statuses
    refused = fhir.http.post("/oauth2/token", data={"grant_type": "client_credentials"})
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1


def test_token_buckets_refill_with_time() -> None:
    now = [0.0]
    buckets = TokenBuckets(2, 10.0, clock=lambda: now[0])
    assert [buckets.take("a"), buckets.take("a")] == [0.0, 0.0]
    assert buckets.take("a") > 0
    assert buckets.take("b") == 0.0  # per key
    now[0] = 5.0
    assert buckets.take("a") == 0.0
