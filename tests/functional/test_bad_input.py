"""Bad input gets a clear OperationOutcome, never a 500, and leaves nothing behind."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from opengp.app import create_app
from opengp.config import Settings
from opengp.store.sql import SqlStore
from tests.functional.conftest import BASE, FHIR_JSON, Fhir, bearer_token, patient


def _nothing_written(fhir: Fhir) -> None:
    assert fhir.get("_history").json()["total"] == 0


def test_malformed_json_is_400(fhir: Fhir) -> None:
    response = fhir.http.post(
        "/fhir/Patient", content=b'{"resourceType": "Pat', headers={"Content-Type": FHIR_JSON}
    )
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
    _nothing_written(fhir)


def test_unknown_resource_type_is_404(fhir: Fhir) -> None:
    assert fhir.get("Patientx/1").status_code == 404
    assert fhir.post("Spaceship", {"resourceType": "Spaceship"}).status_code == 404


def test_body_type_differs_from_url_is_400(fhir: Fhir) -> None:
    response = fhir.post("Observation", patient())
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["resourceType"]
    _nothing_written(fhir)


def test_invalid_content_names_the_element(fhir: Fhir) -> None:
    response = fhir.post("Patient", {**patient(), "gender": "bogus"})
    assert response.status_code in (400, 422)
    assert "Patient.gender" in response.json()["issue"][0]["expression"]
    _nothing_written(fhir)


def test_invalid_nhs_number_is_rejected(fhir: Fhir) -> None:
    response = fhir.post("Patient", patient(nhs_number="9434765918"))
    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == ["Patient.identifier[0].value"]
    _nothing_written(fhir)


def test_body_over_the_limit_is_413(fhir: Fhir) -> None:
    huge = {**patient(), "name": [{"family": "x" * 300_000}]}
    assert fhir.post("Patient", huge).status_code == 413
    _nothing_written(fhir)


def test_streamed_body_over_the_limit_is_413(fhir: Fhir) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(30):
            yield b" " * 10_000

    response = fhir.http.post(
        "/fhir/Patient", content=chunks(), headers={"Content-Type": FHIR_JSON}
    )
    assert response.status_code == 413


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/xml", "application/fhir+xml", ""]
)
def test_wrong_content_type_is_415(fhir: Fhir, content_type: str) -> None:
    response = fhir.http.post(
        "/fhir/Patient", content=b"{}", headers={"Content-Type": content_type}
    )
    assert response.status_code == 415
    assert response.json()["resourceType"] == "OperationOutcome"


def test_format_and_accept_negotiation(fhir: Fhir) -> None:
    assert (
        fhir.get("metadata?_format=json")
        .headers["Content-Type"]
        .startswith("application/fhir+json")
    )
    assert (
        fhir.get("metadata", Accept="application/json")
        .headers["Content-Type"]
        .startswith("application/json")
    )
    assert fhir.get("metadata?_format=xml").status_code == 406
    assert fhir.get("metadata", Accept="application/fhir+xml").status_code == 406
    assert fhir.get("metadata", Accept="text/html, */*;q=0.8").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        [],
        "text",
        3,
        None,
        {"resourceType": 7},
        {"resourceType": "Patient", "active": "yes"},
        {"resourceType": "Patient", "name": "x"},
    ],
)
def test_odd_bodies_are_4xx_never_500(fhir: Fhir, body: object) -> None:
    import orjson

    response = fhir.http.post(
        "/fhir/Patient", content=orjson.dumps(body), headers={"Content-Type": FHIR_JSON}
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    _nothing_written(fhir)


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "Patient/1/_history/x"),
        ("POST", "Patient/1"),
        ("GET", "Patient/1/extra/path/here/x"),
        ("PUT", ""),
        ("DELETE", "_history"),
    ],
)
def test_odd_urls_are_4xx_operation_outcomes(fhir: Fhir, method: str, url: str) -> None:
    response = fhir.request(method, url, body=patient() if method in ("POST", "PUT") else None)
    assert 400 <= response.status_code < 500
    assert response.json()["resourceType"] == "OperationOutcome"


def test_bad_if_match_and_dates_are_400(fhir: Fhir) -> None:
    created = fhir.create(patient())
    assert fhir.put(f"Patient/{created['id']}", created, If_Match="banana").status_code == 400
    assert fhir.get(f"Patient/{created['id']}", If_Modified_Since="not a date").status_code == 400


def test_health_ready_metrics_and_landing(fhir: Fhir) -> None:
    assert fhir.http.get("/healthz").json() == {"status": "ok"}
    assert fhir.http.get("/readyz").json()["status"] == "ready"
    assert "opengp_http_requests" in fhir.http.get("/metrics").text
    landing = fhir.http.get("/")
    assert 'href="/patient"' in landing.text and 'href="/staff"' in landing.text


def test_inputs_a_database_column_would_refuse_are_4xx(fhir: Fhir) -> None:
    # PostgreSQL refuses NUL characters and over-long column values: they must never reach it.
    nul = {**patient(), "identifier": [{"system": "s", "value": "a\u0000"}]}
    assert fhir.post("Patient", nul).status_code == 400
    assert fhir.put("Patient/" + "x" * 65, {**patient(), "id": "x" * 65}).status_code == 400
    assert fhir.get("Patient/a%00").status_code == 400
    strict = {"Prefer": "handling=strict"}
    assert fhir.get("Patient?identifier=a%00", **strict).status_code == 400
    assert fhir.get("Patient?_cursor=a%00", **strict).status_code == 400
    assert fhir.get("Patient?_cursor=not-ours").status_code == 400
    # Lenient handling drops the parameter, and says so in the Bundle.
    lenient = fhir.get("Patient?identifier=a%00").json()
    assert lenient["entry"][-1]["search"]["mode"] == "outcome"
    assert "identifier" not in lenient["link"][0]["url"]
    _nothing_written(fhir)


def test_long_identifiers_are_stored_and_found(fhir: Fhir) -> None:
    long_value = "v" * 5000
    body = {
        **patient(),
        "identifier": [{"system": "urn:example:" + "s" * 300, "value": long_value}],
    }
    created = fhir.create(body)
    found = fhir.get(f"Patient?identifier={long_value}").json()
    assert [e["resource"]["id"] for e in found["entry"]] == [created["id"]]


class _FailingStore(SqlStore):
    """A real store whose reads fail unexpectedly, as a lost database connection would."""

    def reading(self):  # type: ignore[no-untyped-def,override]
        raise RuntimeError("secret detail: Patient 9434765919")


def test_an_unexpected_failure_is_a_500_outcome_that_reveals_nothing(
    settings: Settings, store: SqlStore
) -> None:
    with TestClient(create_app(settings, store), base_url=BASE) as working:
        token = bearer_token(working, store)
    failing = _FailingStore(store.engine)
    app = create_app(settings, failing)
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as client:
        response = client.get("/fhir/Patient/1", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 500
        assert response.json()["issue"][0]["code"] == "exception"
        assert "9434765919" not in response.text
        assert 'status="500"' in client.get("/metrics").text
