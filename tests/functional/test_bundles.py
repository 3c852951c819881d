"""Batch and transaction Bundles (http://hl7.org/fhir/R4/http.html#transaction)."""

from __future__ import annotations

from typing import Any

from tests.functional.conftest import NHS_NUMBER, Fhir, patient

PATIENT_URN = "urn:uuid:6f1a4b9e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"


def observation(subject: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "Blood pressure"},
        "subject": {"reference": subject},
    }


def transaction(*entries: dict[str, Any], kind: str = "transaction") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def post(resource: dict[str, Any], full_url: str | None = None, **request: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"], **request},
    }
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def test_transaction_rewrites_urn_uuid_references(fhir: Fhir) -> None:
    response = fhir.post(
        "", transaction(post(observation(PATIENT_URN)), post(patient(), PATIENT_URN))
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["type"] == "transaction-response"
    observation_status, patient_status = (e["response"]["status"] for e in body["entry"])
    assert observation_status.startswith("201") and patient_status.startswith("201")
    patient_id = body["entry"][1]["resource"]["id"]
    stored = fhir.get(
        body["entry"][0]["response"]["location"].split("/fhir/")[1].split("/_history")[0]
    ).json()
    assert stored["subject"]["reference"] == f"Patient/{patient_id}"


def test_transaction_is_atomic(fhir: Fhir) -> None:
    bad = {**patient(), "gender": "bogus"}
    response = fhir.post("", transaction(post(patient(nhs_number="9000000009")), post(bad)))
    assert response.status_code in (400, 422)
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "Bundle.entry[1]" in outcome["issue"][0]["diagnostics"]
    assert outcome["issue"][0]["expression"] == ["Bundle.entry[1].resource.gender"]
    assert fhir.get("Patient").json()["total"] == 0
    assert fhir.get("_history").json()["total"] == 0


def test_transaction_resolves_conditional_references_and_if_none_exist(fhir: Fhir) -> None:
    existing = fhir.create(patient())
    entries = transaction(
        post(patient(), PATIENT_URN, ifNoneExist=f"identifier={NHS_NUMBER}|9434765919"),
        post(observation(PATIENT_URN)),
        post(observation(f"Patient?identifier={NHS_NUMBER}|9434765919")),
    )
    body = fhir.post("", entries).json()
    assert body["entry"][0]["response"]["status"].startswith("200")
    for entry in body["entry"][1:]:
        assert entry["resource"]["subject"]["reference"] == f"Patient/{existing['id']}"


def test_conditional_reference_matching_nothing_fails_the_transaction(fhir: Fhir) -> None:
    response = fhir.post(
        "", transaction(post(observation(f"Patient?identifier={NHS_NUMBER}|9434765919")))
    )
    assert response.status_code == 412
    assert fhir.get("_history").json()["total"] == 0


def test_transaction_runs_deletes_before_creates_and_reports_in_request_order(fhir: Fhir) -> None:
    old = fhir.create(patient())
    bundle = transaction(
        post(patient(nhs_number="9000000009")),
        {"request": {"method": "DELETE", "url": f"Patient/{old['id']}"}},
        {"request": {"method": "GET", "url": f"Patient/{old['id']}/_history/1"}},
    )
    body = fhir.post("", bundle).json()
    statuses = [e["response"]["status"] for e in body["entry"]]
    assert (
        statuses[0].startswith("201")
        and statuses[1].startswith("204")
        and statuses[2].startswith("200")
    )


def test_batch_entries_succeed_or_fail_independently(fhir: Fhir) -> None:
    bundle = transaction(
        post(patient()),
        post({**patient(), "gender": "bogus"}),
        {"request": {"method": "GET", "url": "Patient/nope"}},
        kind="batch",
    )
    response = fhir.post("", bundle)
    assert response.status_code == 200
    entries = response.json()["entry"]
    assert entries[0]["response"]["status"].startswith("201")
    assert entries[1]["response"]["status"] in ("400", "422")
    assert entries[1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert entries[2]["response"]["status"] == "404"
    assert fhir.get("Patient").json()["total"] == 1


def test_bundle_of_wrong_type_or_shape_is_400(fhir: Fhir) -> None:
    assert fhir.post("", {"resourceType": "Bundle", "type": "collection"}).status_code == 400
    assert fhir.post("", {"resourceType": "Patient"}).status_code == 400
    missing_request = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"resource": patient()}],
    }
    response = fhir.post("", missing_request)
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["Bundle.entry[0].request"]


def test_reference_to_an_unknown_urn_uuid_fails_the_transaction(fhir: Fhir) -> None:
    response = fhir.post(
        "", transaction(post(observation("urn:uuid:11111111-2222-4333-8444-555555555555")))
    )
    assert response.status_code == 400
