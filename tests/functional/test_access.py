"""Nothing at /fhir without an identity; scopes limit what a token may do; every access audited."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import select
from starlette.testclient import TestClient

from opengp.store.sql import SqlStore
from opengp.store.sql.access_tables import audit_event
from opengp.store.sql.audit import verify
from tests.functional.conftest import FHIR_JSON, Fhir, bearer_token, patient


def _trail(store: SqlStore) -> list[Any]:
    with store.engine.connect() as conn:
        return list(conn.execute(select(audit_event).order_by(audit_event.c.seq)))


def _anonymous(fhir: Fhir) -> TestClient:
    fhir.http.headers.pop("Authorization")
    return fhir.http


def test_no_token_is_401_with_a_challenge_and_is_audited(fhir: Fhir, store: SqlStore) -> None:
    before = len(_trail(store))
    http = _anonymous(fhir)
    response = http.get("/fhir/Patient")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["resourceType"] == "OperationOutcome"
    refused = http.post(
        "/fhir/Patient", content=orjson.dumps(patient()), headers={"Content-Type": FHIR_JSON}
    )
    assert refused.status_code == 401
    trail = _trail(store)[before:]
    assert [(e.principal, e.outcome) for e in trail] == [("anonymous", "denied")] * 2
    assert http.get("/fhir/metadata").status_code == 200  # the CapabilityStatement is public


def test_a_bad_token_is_401_invalid_token(fhir: Fhir) -> None:
    http = _anonymous(fhir)
    response = http.get("/fhir/Patient", headers={"Authorization": "Bearer not.a.token"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_scopes_limit_what_a_token_may_do(fhir: Fhir, store: SqlStore) -> None:
    created = fhir.create(patient())
    reader = bearer_token(fhir.http, store, scopes="system/Patient.rs")
    headers = {"Authorization": f"Bearer {reader}", "Content-Type": FHIR_JSON}
    assert fhir.http.get(f"/fhir/Patient/{created['id']}", headers=headers).status_code == 200
    denied = fhir.http.post("/fhir/Patient", content=orjson.dumps(patient()), headers=headers)
    assert denied.status_code == 403
    assert denied.json()["issue"][0]["code"] == "forbidden"
    assert fhir.http.get("/fhir/Observation", headers=headers).status_code == 403
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": patient(), "request": {"method": "POST", "url": "Patient"}}],
    }
    assert fhir.http.post("/fhir", content=orjson.dumps(bundle), headers=headers).status_code == 403
    last = _trail(store)[-1]  # the refused transaction (its entries rolled back with it)
    assert (last.outcome, orjson.loads(last.detail)["status"]) == ("denied", 403)
    assert fhir.get("Patient").json()["total"] == 1  # nothing was written


def test_every_access_appends_one_audit_entry_and_the_trail_verifies(
    fhir: Fhir, store: SqlStore
) -> None:
    before = len(_trail(store))
    created = fhir.create(patient())
    pid = created["id"]
    fhir.get(f"Patient/{pid}")
    fhir.get(f"Patient/{pid}/_history/1")
    fhir.put(f"Patient/{pid}", {**created, "gender": "male"})
    fhir.get("Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919")
    fhir.get(f"Patient/{pid}/_history")
    fhir.delete(f"Patient/{pid}")
    fhir.get(f"Patient/{pid}")  # 410: a failed read is recorded too
    trail = _trail(store)[before:]
    assert [(e.action, e.outcome) for e in trail] == [
        ("create", "success"),
        ("read", "success"),
        ("vread", "success"),
        ("update", "success"),
        ("search", "success"),
        ("history", "success"),
        ("delete", "success"),
        ("read", "failed"),
    ]
    assert all(e.principal.startswith("system/") for e in trail)
    assert trail[1].patient_id == pid
    assert "9434765919" not in str([tuple(e) for e in trail])  # search values are never kept
    assert verify(store.engine).intact
