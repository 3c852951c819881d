"""Conditional create, update, delete and patch (http://hl7.org/fhir/R4/http.html#ccreate)."""

from __future__ import annotations

import base64

import orjson

from tests.functional.conftest import NHS_NUMBER, Fhir, patient

BY_NHS = f"identifier={NHS_NUMBER}|9434765919"


def test_conditional_create_creates_once_then_returns_the_match(fhir: Fhir) -> None:
    first = fhir.post("Patient", patient(), If_None_Exist=BY_NHS)
    assert first.status_code == 201
    again = fhir.post("Patient", patient(), If_None_Exist=BY_NHS)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert fhir.get(f"Patient?{BY_NHS}").json()["total"] == 1


def test_conditional_create_with_several_matches_is_412(fhir: Fhir) -> None:
    fhir.create(patient())
    fhir.create(patient())
    response = fhir.post("Patient", patient(), If_None_Exist=BY_NHS)
    assert response.status_code == 412


def test_conditional_update_creates_then_updates_the_match(fhir: Fhir) -> None:
    created = fhir.put(f"Patient?{BY_NHS}", patient())
    assert created.status_code == 201
    updated = fhir.put(f"Patient?{BY_NHS}", patient(gender="male"))
    assert updated.status_code == 200
    assert updated.json()["id"] == created.json()["id"]
    assert updated.json()["meta"]["versionId"] == "2"


def test_conditional_update_and_delete_on_id(fhir: Fhir) -> None:
    created = fhir.create(patient())
    updated = fhir.put(f"Patient?_id={created['id']}", patient(gender="other"))
    assert updated.status_code == 200
    assert updated.json()["gender"] == "other"
    assert fhir.delete(f"Patient?_id={created['id']}").status_code == 204
    assert fhir.get(f"Patient/{created['id']}").status_code == 410


def test_conditional_delete_with_several_matches_is_412_and_deletes_nothing(fhir: Fhir) -> None:
    a = fhir.create(patient())
    fhir.create(patient())
    assert fhir.delete(f"Patient?{BY_NHS}").status_code == 412
    assert fhir.get(f"Patient/{a['id']}").status_code == 200


def test_unknown_conditional_parameter_is_400_naming_it(fhir: Fhir) -> None:
    # Conditional criteria are always strict: a dropped one would widen the match.
    response = fhir.post("Patient", patient(), If_None_Exist="colour=blue")
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["colour"]
    assert fhir.post("Patient", patient(), If_None_Exist="name=Smith").status_code == 201


def test_json_patch_applies_and_versions(fhir: Fhir) -> None:
    created = fhir.create(patient())
    url = f"/fhir/Patient/{created['id']}"
    ops = [{"op": "replace", "path": "/gender", "value": "male"}]
    headers = {"Content-Type": "application/json-patch+json"}
    response = fhir.http.patch(url, content=orjson.dumps(ops), headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["gender"] == "male"
    assert response.json()["meta"]["versionId"] == "2"
    stale = fhir.http.patch(
        url, content=orjson.dumps(ops), headers={**headers, "If-Match": 'W/"1"'}
    )
    assert stale.status_code == 412


def test_json_patch_that_makes_an_invalid_resource_is_rejected(fhir: Fhir) -> None:
    created = fhir.create(patient())
    url = f"/fhir/Patient/{created['id']}"
    headers = {"Content-Type": "application/json-patch+json"}
    bad = [{"op": "replace", "path": "/gender", "value": "bogus"}]
    response = fhir.http.patch(url, content=orjson.dumps(bad), headers=headers)
    assert response.status_code in (400, 422)
    failed_test = [{"op": "test", "path": "/gender", "value": "male"}]
    assert (
        fhir.http.patch(url, content=orjson.dumps(failed_test), headers=headers).status_code == 422
    )
    wrong_type = fhir.http.patch(
        url, content=orjson.dumps(bad), headers={"Content-Type": "application/fhir+json"}
    )
    assert wrong_type.status_code == 415
    assert fhir.get(url.removeprefix("/fhir/")).json()["meta"]["versionId"] == "1"


def test_patch_in_a_transaction_as_binary(fhir: Fhir) -> None:
    created = fhir.create(patient())
    ops = orjson.dumps([{"op": "replace", "path": "/gender", "value": "other"}])
    binary = {
        "resourceType": "Binary",
        "contentType": "application/json-patch+json",
        "data": base64.b64encode(ops).decode(),
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": binary, "request": {"method": "PATCH", "url": f"Patient/{created['id']}"}}
        ],
    }
    response = fhir.post("", bundle)
    assert response.status_code == 200, response.text
    assert fhir.get(f"Patient/{created['id']}").json()["gender"] == "other"
