"""ETags, content negotiation and settings: the small rules of http://hl7.org/fhir/R4/http.html."""

from __future__ import annotations

import pytest

from opengp.api.negotiation import check_body_type, response_type
from opengp.config import ConfigError, Settings
from opengp.fhir.errors import NotAcceptable, UnsupportedMediaType
from opengp.services.fhir.messages import etag, parse_etag


def test_etags_round_trip() -> None:
    assert etag(3) == 'W/"3"'
    assert parse_etag('W/"3"') == 3
    assert parse_etag('"12"') == 12
    assert parse_etag('W/"x"') is None


@pytest.mark.parametrize(
    ("format_param", "accept", "expected"),
    [
        (None, None, "application/fhir+json"),
        ("json", None, "application/fhir+json"),
        ("application/json", None, "application/json"),
        ("application/fhir json", None, "application/fhir+json"),  # '+' arrives as a space
        (None, "application/json", "application/json"),
        (None, "text/html,*/*;q=0.1", "application/fhir+json"),
    ],
)
def test_response_type(format_param: str | None, accept: str | None, expected: str) -> None:
    assert response_type(format_param, accept) == expected


@pytest.mark.parametrize(
    ("format_param", "accept"), [("xml", None), ("turtle", None), (None, "application/fhir+xml")]
)
def test_unsupported_formats_are_406(format_param: str | None, accept: str | None) -> None:
    with pytest.raises(NotAcceptable):
        response_type(format_param, accept)


def test_body_types() -> None:
    check_body_type("application/fhir+json; charset=utf-8", patch=False)
    check_body_type("application/json-patch+json", patch=True)
    for wrong, patch in [
        ("application/xml", False),
        (None, False),
        ("application/fhir+json", True),
    ]:
        with pytest.raises(UnsupportedMediaType):
            check_body_type(wrong, patch=patch)


def test_settings_from_environment() -> None:
    settings = Settings.from_env(
        {"OPENGP_MAX_BODY_BYTES": "1000", "OPENGP_FHIR_BASE_URL": "https://gp.example/fhir/"}
    )
    assert settings.max_body_bytes == 1000
    assert settings.fhir_base_url == "https://gp.example/fhir"
    assert Settings.from_env({}).database_url == "sqlite:///var/opengp.db"
    with pytest.raises(ConfigError, match="OPENGP_MAX_BODY_BYTES"):
        Settings.from_env({"OPENGP_MAX_BODY_BYTES": "ten"})
