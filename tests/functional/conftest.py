"""The real ASGI application, over HTTP (httpx through Starlette's TestClient)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from opengp.app import create_app
from opengp.config import Settings
from opengp.store.sql import SqlStore

FHIR_JSON = "application/fhir+json"
NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"


class Fhir:
    """A FHIR client for tests: JSON in, httpx responses out."""

    def __init__(self, client: TestClient) -> None:
        self.http = client

    def request(self, method: str, url: str, body: Any = None, **headers: str) -> Any:
        import orjson

        content = None if body is None else orjson.dumps(body)
        sent = {"Content-Type": FHIR_JSON} if body is not None else {}
        sent.update({k.replace("_", "-"): v for k, v in headers.items()})
        return self.http.request(method, f"/fhir/{url}".rstrip("/"), content=content, headers=sent)

    def post(self, url: str, body: Any, **headers: str) -> Any:
        return self.request("POST", url, body, **headers)

    def put(self, url: str, body: Any, **headers: str) -> Any:
        return self.request("PUT", url, body, **headers)

    def get(self, url: str, **headers: str) -> Any:
        return self.request("GET", url, **headers)

    def delete(self, url: str, **headers: str) -> Any:
        return self.request("DELETE", url, **headers)

    def create(self, resource: dict[str, Any]) -> dict[str, Any]:
        response = self.post(resource["resourceType"], resource)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created


def patient(nhs_number: str = "9434765919", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": NHS_NUMBER, "value": nhs_number}],
        "name": [{"family": "Smith", "given": ["Jo"]}],
        "gender": "female",
        "birthDate": "1970-05-01",
        **extra,
    }


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, max_body_bytes=200_000)


@pytest.fixture
def fhir(settings: Settings, store: SqlStore) -> Iterator[Fhir]:
    with TestClient(create_app(settings, store), raise_server_exceptions=True) as client:
        yield Fhir(client)
