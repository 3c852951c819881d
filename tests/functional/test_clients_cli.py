"""`opengp clients add|list` as real processes, and their credentials at a real `opengp serve`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.functional.server import Server

pytestmark = pytest.mark.slow


def _opengp(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "opengp", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def server(database_url: str, tmp_path: Path, key_file: Path) -> Iterator[Server]:
    running = Server(database_url, tmp_path / "serve.log", key_file).start()
    yield running
    running.stop()


def _add(database_url: str, *args: str) -> dict[str, Any]:
    done = _opengp("clients", "add", *args, "--json", "--database", database_url)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_a_client_added_on_the_command_line_gets_a_token_from_the_server(
    database_url: str, server: Server
) -> None:
    added = _add(database_url, "--name", "X", "--scopes", "system/*.rs")
    assert set(added) == {"client_id", "client_secret"}
    auth = (added["client_id"], added["client_secret"])
    with httpx.Client(base_url=server.url, timeout=30) as http:
        config = http.get("/fhir/.well-known/smart-configuration").json()
        assert config["token_endpoint"] == f"{server.url}/oauth2/token"
        form = {"grant_type": "client_credentials", "scope": "system/Patient.rs"}
        response = http.post(config["token_endpoint"], data=form, auth=auth)
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        assert response.json()["scope"] == "system/Patient.rs"
        introspected = http.post("/oauth2/introspect", data={"token": token}, auth=auth).json()
        assert introspected["active"] is True
        assert introspected["aud"] == f"{server.url}/fhir"
        wrong = http.post(config["token_endpoint"], data=form, auth=(auth[0], "wrong"))
        assert wrong.status_code == 401


def test_a_client_with_a_jwks_file_signs_its_way_to_a_token(
    database_url: str, server: Server, tmp_path: Path
) -> None:
    key = RSAKey.generate_key(2048)
    kid = uuid.uuid4().hex
    jwks = tmp_path / "client-jwks.json"
    public = {**key.as_dict(private=False), "kid": kid, "alg": "RS384"}
    jwks.write_text(json.dumps({"keys": [public]}))
    added = _add(
        database_url, "--name", "Migrator", "--scopes", "system/*.cruds", "--purpose",
        "migration", "--jwks", str(jwks),
    )  # fmt: skip
    assert added["client_secret"] is None
    token_url = f"{server.url}/oauth2/token"
    claims = {
        "iss": added["client_id"],
        "sub": added["client_id"],
        "aud": token_url,
        "exp": int(time.time()) + 120,
        "jti": uuid.uuid4().hex,
    }
    assertion = jwt.encode({"alg": "RS384", "kid": kid}, claims, key, algorithms=["RS384"])
    form = {
        "grant_type": "client_credentials",
        "scope": "system/*.rs",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }
    response = httpx.post(token_url, data=form, timeout=30)
    assert response.status_code == 200, response.text
    assert httpx.post(token_url, data=form, timeout=30).status_code == 401  # replayed


def test_clients_list(database_url: str) -> None:
    first = _add(database_url, "--name", "Lab feed", "--scopes", "system/Observation.cruds")
    _add(database_url, "--name", "Export", "--scopes", "system/*.rs", "--purpose", "migration")
    done = _opengp("clients", "list", "--json", "--database", database_url)
    assert done.returncode == 0, done.stderr
    listed = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(c["name"], c["purpose"], c["scopes"]) for c in listed] == [
        ("Lab feed", "direct-care", "system/Observation.cruds"),
        ("Export", "migration", "system/*.rs"),
    ]
    assert listed[0]["client_id"] == first["client_id"]
    assert first["client_secret"] not in done.stdout
    plain = _opengp("clients", "list", "--database", database_url)
    assert "Lab feed" in plain.stdout and first["client_secret"] not in plain.stdout


def test_human_output_shows_the_secret_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'var' / 'opengp.db'}"
    done = _opengp("clients", "add", "--name", "X", "--scopes", "system/*.rs", "--database", url)
    assert done.returncode == 0, done.stderr
    assert "client_id:" in done.stdout and "client_secret:" in done.stdout


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--name", "X", "--scopes", "system/Patinet.rs"], "'Patinet' is not a FHIR R4"),
        (["--name", "X", "--scopes", "patient/*.rs"], "only system/ scopes"),
        (
            ["--name", "X", "--scopes", "system/*.rs", "--purpose", "research"],
            "purpose must be one of",
        ),
        (["--name", "X", "--scopes", "system/*.rs", "--jwks", "/no/such.json"], "cannot read"),
        (["--scopes", "system/*.rs"], "--name"),
        (
            ["--name", "X", "--scopes", "system/*.rs", "--redirect-uri", "https://a.example/cb"],
            "only patient/ and user/ scopes",
        ),
        (
            ["--name", "X", "--scopes", "patient/*.rs", "--redirect-uri", "http://a.example/cb"],
            "must be an absolute https URI",
        ),
        (["--name", "X", "--scopes", "system/*.rs", "--public"], "--public is for apps"),
    ],
)
def test_bad_usage_exits_2_with_the_reason(tmp_path: Path, args: list[str], complaint: str) -> None:
    url = f"sqlite:///{tmp_path / 'opengp.db'}"
    done = _opengp("clients", "add", *args, "--database", url)
    assert done.returncode == 2
    assert complaint in done.stderr
    assert done.stdout == ""


def test_other_failures_exit_1_with_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'opengp.db'}"
    done = _opengp("clients", "add", "--name", " ", "--scopes", "system/*.rs", "--database", url)
    assert (done.returncode, done.stderr.strip()) == (
        1,
        "opengp: the client name must be 1 to 255 characters",
    )
    unreachable = "postgresql://nobody@127.0.0.1:1/none"
    done = _opengp("clients", "list", "--database", unreachable)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1


def test_an_app_is_registered_with_its_redirect_uris(database_url: str) -> None:
    added = _add(
        database_url,
        "--name",
        "Patient app",
        "--scopes",
        "openid fhirUser launch/patient offline_access patient/*.rs",
        "--redirect-uri",
        "https://app.example/callback",
        "--redirect-uri",
        "http://127.0.0.1:8765/cb",
        "--public",
    )
    assert added["client_secret"] is None
    done = _opengp("clients", "list", "--json", "--database", database_url)
    assert done.returncode == 0, done.stderr
    (listed,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert listed["auth_method"] == "none"
    assert listed["redirect_uris"] == ["https://app.example/callback", "http://127.0.0.1:8765/cb"]
