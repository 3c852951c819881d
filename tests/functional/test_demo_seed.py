"""Seeding the synthetic practice: bulk path, FHIR API check, NDJSON, CLI, all or nothing."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from opengp.app import create_app
from opengp.config import Settings
from opengp.demo import load
from opengp.demo.generator import Part, generate
from opengp.demo.model import DemoConfig
from opengp.fhir.references import iter_references, parse_relative
from opengp.fhir.validation import validate_resource
from opengp.services.oauth import add_client
from opengp.store.migrate import upgrade
from opengp.store.sql import SqlStore
from opengp.store.sql.tables import resource
from tests.functional.conftest import BASE, bearer_token

APP = "https://app.example/callback"
CONFIG = DemoConfig(patients=12, seed=7, as_of=date(2026, 11, 1))


def _stored(store: SqlStore) -> dict[tuple[str, str], dict[str, Any]]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(resource.c.resource_type, resource.c.id, resource.c.content))
        return {(r.resource_type, r.id): orjson.loads(r.content) for r in rows}


def test_seed_loads_a_valid_connected_practice_and_reuses_it(store: SqlStore) -> None:
    first = load.seed(store, CONFIG)
    assert not first.reused
    assert first.counts["Patient"] == CONFIG.patients
    stored = _stored(store)
    assert len(stored) == first.total
    for (kind, id), body in stored.items():
        validate_resource(body)
        for path, ref in iter_references(body):
            literal = parse_relative(ref["reference"])
            assert literal is not None, f"{kind}/{id} {path}: {ref['reference']}"
            assert (literal.resource_type, literal.id) in stored, f"{kind}/{id} {path} dangles"
    again = load.seed(store, CONFIG)
    assert again.reused
    assert len(_stored(store)) == first.total


def test_bulk_path_stores_what_the_fhir_api_would(
    store: SqlStore, tmp_path: Path, key_file: Path
) -> None:
    small = DemoConfig(patients=3, seed=3, as_of=date(2026, 11, 1))
    load.seed(store, small)
    bulk = _stored(store)
    api_url = f"sqlite:///{tmp_path / 'api.db'}"
    api_store = SqlStore.from_url(api_url)
    upgrade(api_store.engine)
    settings = Settings(database_url=api_url, signing_key_path=str(key_file))
    with TestClient(create_app(settings, api_store), base_url=BASE) as client:
        client.headers["Authorization"] = f"Bearer {bearer_token(client, api_store)}"
        for part in generate(small):
            entries = [
                {
                    "resource": r,
                    "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
                }
                for r in part.resources
            ]
            bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
            response = client.post(
                "/fhir",
                content=orjson.dumps(bundle),
                headers={"Content-Type": "application/fhir+json"},
            )
            assert response.status_code == 200, response.text[:2000]
    through_api = _stored(api_store)
    api_store.dispose()
    # The API also records the Provenance of each write; the bulk path writes only the data.
    provenance = {key for key in through_api if key[0] == "Provenance"}
    assert len(provenance) == len(bulk)
    through_api = {key: body for key, body in through_api.items() if key not in provenance}
    assert through_api.keys() == bulk.keys()
    for key, body in bulk.items():
        for copy in (body, through_api[key]):
            copy["meta"].pop("lastUpdated")
        assert through_api[key] == body, key


def test_a_failed_seed_leaves_nothing(store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(config: DemoConfig) -> Iterator[Part]:
        parts = generate(config)
        yield next(parts)
        yield next(parts)
        raise RuntimeError("disk full")

    monkeypatch.setattr(load, "generate", failing)
    with pytest.raises(RuntimeError):
        load.seed(store, CONFIG)
    assert _stored(store) == {}


def test_ndjson_has_one_file_per_type_matching_the_counts(tmp_path: Path) -> None:
    result = load.write_ndjson(CONFIG, tmp_path)
    files = {p.stem: p for p in tmp_path.glob("*.ndjson")}
    assert set(files) == set(result.counts)
    for kind, path in files.items():
        lines = path.read_bytes().splitlines()
        assert len(lines) == result.counts[kind]
        assert all(orjson.loads(line)["resourceType"] == kind for line in lines)


def test_opengp_demo_command_seeds_prints_sign_ins_then_reuses(
    tmp_path: Path, key_file: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    command = [sys.executable, "-m", "opengp", "demo", "--patients", "40", "--database", url]
    first = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "Demo practice: 40 patients" in first.stdout
    printed = dict(re.findall(r"username (\S+)\s+one-time password (\S+)", first.stdout))
    assert set(printed) == {
        "demo.gp",
        "demo.nurse",
        "demo.reception",
        "demo.manager",
        "demo.patient",
        "demo.parent",
    }
    assert first.stdout.count("otpauth://totp/") == 4  # staff have a second factor

    # The printed one-time password signs the patient in, straight to choosing a new one.
    store = SqlStore.from_url(url)
    settings = Settings(database_url=url, signing_key_path=str(key_file))
    with TestClient(create_app(settings, store), base_url=BASE) as client:
        client_id, _ = add_client(
            store, "App", "openid patient/*.rs", "direct-care", redirect_uris=[APP], public=True
        )
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": APP,
            "scope": "openid patient/*.rs",
            "aud": f"{BASE}/fhir",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
        }
        page = client.get("/oauth2/authorize", params=params)
        hidden = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page.text))
        form = {**hidden, "username": "demo.patient", "password": printed["demo.patient"]}
        response = client.post("/oauth2/authorize", data=form)
        assert response.status_code == 200, response.text
        assert "Create a new password" in response.text
    store.dispose()

    second = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "reusing it" in second.stdout
    assert "one-time password" not in second.stdout
    bad = subprocess.run([*command, "--as-of", "yesterday"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "not a date" in bad.stderr
