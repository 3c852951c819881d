"""History (instance, type, system), paging, and the CapabilityStatement."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from tests.functional.conftest import Fhir, patient


def test_history_levels_and_paging_never_skip_or_repeat(fhir: Fhir) -> None:
    ids = [fhir.create(patient())["id"] for _ in range(5)]
    fhir.put(f"Patient/{ids[0]}", {**patient(), "id": ids[0], "gender": "male"})
    fhir.create({"resourceType": "Organization", "name": "Practice"})
    assert fhir.get(f"Patient/{ids[0]}/_history").json()["total"] == 2
    assert fhir.get("Patient/_history").json()["total"] == 6
    seen = []
    # Seven writes, each with its Provenance (written in the same transaction).
    page = fhir.get("_history?_count=3").json()
    assert page["total"] == 14 and page["type"] == "history"
    while True:
        seen += [(e["fullUrl"], e["response"]["etag"]) for e in page["entry"]]
        following = [link["url"] for link in page["link"] if link["relation"] == "next"]
        if not following:
            break
        page = fhir.http.get(following[0].removeprefix("https://testserver")).json()
    assert len(seen) == 14 and len(set(seen)) == 14
    assert sum("/Provenance/" in url for url, _ in seen) == 7


def test_history_since(fhir: Fhir) -> None:
    fhir.create(patient())
    time.sleep(0.01)
    since = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    time.sleep(0.01)
    fhir.create(patient())
    assert fhir.get(f"Patient/_history?_since={since}").json()["total"] == 1
    assert fhir.get(f"_history?_since={since}").json()["total"] == 2  # and its Provenance
    bad = fhir.get("_history?_since=yesterday")
    assert bad.status_code == 400
    assert bad.json()["issue"][0]["expression"] == ["_since"]


def test_capability_statement_states_what_is_implemented(fhir: Fhir) -> None:
    response = fhir.get("metadata")
    assert response.status_code == 200
    statement = response.json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    rest = statement["rest"][0]
    patient_entry = next(r for r in rest["resource"] if r["type"] == "Patient")
    codes = {i["code"] for i in patient_entry["interaction"]}
    assert {
        "read",
        "vread",
        "create",
        "update",
        "patch",
        "delete",
        "history-instance",
        "history-type",
    } <= codes
    assert patient_entry["conditionalCreate"] is True
    assert {i["code"] for i in rest["interaction"]} >= {"transaction", "batch", "history-system"}
