"""The real ASGI application, over HTTP (httpx through Starlette's TestClient)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import RSAKey
from starlette.testclient import TestClient

from opengp.access.clients import register_client
from opengp.app import create_app
from opengp.config import Settings
from opengp.store.sql import SqlStore
from tests.audit_completeness import audit_completeness

__all__ = ["audit_completeness"]  # every test's requests leave their audit entries

BASE = "https://testserver"
FULL_ACCESS = "system/*.cruds"
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


@pytest.fixture(scope="session")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The server's token-signing key for the test session."""
    path = tmp_path_factory.mktemp("keys") / "signing-key.pem"
    path.write_bytes(RSAKey.generate_key(2048).as_pem(private=True))
    return path


@pytest.fixture
def settings(database_url: str, key_file: Path) -> Settings:
    return Settings(
        database_url=database_url, max_body_bytes=200_000, signing_key_path=str(key_file)
    )


def register(store: SqlStore, scopes: str = FULL_ACCESS) -> tuple[str, str]:
    """A system client (client_secret_basic) registered straight in the database."""
    with store.writing() as tx:
        client_id, secret = register_client(tx.conn, "functional tests", scopes)
    assert secret is not None
    return client_id, secret


def bearer_token(client: TestClient, store: SqlStore, scopes: str = FULL_ACCESS) -> str:
    """An access token from the token endpoint, for a newly registered client."""
    client_id, secret = register(store, scopes)
    form = {"grant_type": "client_credentials", "scope": scopes}
    response = client.post("/oauth2/token", data=form, auth=(client_id, secret))
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


@pytest.fixture
def fhir(settings: Settings, store: SqlStore) -> Iterator[Fhir]:
    with TestClient(create_app(settings, store), base_url=BASE) as client:
        client.headers["Authorization"] = f"Bearer {bearer_token(client, store)}"
        yield Fhir(client)
