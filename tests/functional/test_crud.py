"""Read, vread, create, update, delete and their headers (http://hl7.org/fhir/R4/http.html)."""

from __future__ import annotations

from email.utils import format_datetime, parsedate_to_datetime

from tests.functional.conftest import FHIR_JSON, Fhir, patient


def test_create_assigns_id_and_answers_201_with_location_etag_and_body(fhir: Fhir) -> None:
    response = fhir.post("Patient", {**patient(), "id": "client-chosen"})
    assert response.status_code == 201
    body = response.json()
    assert body["id"] != "client-chosen"  # the server assigns ids on create
    assert body["meta"]["versionId"] == "1"
    assert response.headers["ETag"] == 'W/"1"'
    assert (
        response.headers["Location"] == f"https://testserver/fhir/Patient/{body['id']}/_history/1"
    )
    assert parsedate_to_datetime(response.headers["Last-Modified"])
    assert response.headers["Content-Type"].startswith("application/fhir+json")


def test_read_returns_what_was_written(fhir: Fhir) -> None:
    created = fhir.create(patient())
    response = fhir.get(f"Patient/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created
    assert response.headers["ETag"] == 'W/"1"'


def test_read_of_unknown_resource_is_404_operation_outcome(fhir: Fhir) -> None:
    response = fhir.get("Patient/does-not-exist")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"
    assert response.json()["issue"][0]["code"] == "not-found"


def test_update_makes_a_new_version_and_vread_keeps_the_old(fhir: Fhir) -> None:
    created = fhir.create(patient())
    changed = {**created, "gender": "male"}
    response = fhir.put(f"Patient/{created['id']}", changed)
    assert response.status_code == 200
    assert response.json()["meta"]["versionId"] == "2"
    assert response.headers["ETag"] == 'W/"2"'
    old = fhir.get(f"Patient/{created['id']}/_history/1")
    assert old.status_code == 200
    assert old.json()["gender"] == "female"
    assert fhir.get(f"Patient/{created['id']}").json()["gender"] == "male"
    assert fhir.get(f"Patient/{created['id']}/_history/3").status_code == 404


def test_update_as_create_with_client_id_answers_201(fhir: Fhir) -> None:
    response = fhir.put("Patient/my-id-1", {**patient(), "id": "my-id-1"})
    assert response.status_code == 201
    assert response.headers["Location"].endswith("/Patient/my-id-1/_history/1")
    assert fhir.get("Patient/my-id-1").json()["id"] == "my-id-1"


def test_update_without_id_or_with_other_id_is_400(fhir: Fhir) -> None:
    created = fhir.create(patient())
    no_id = fhir.put(f"Patient/{created['id']}", patient())
    assert no_id.status_code == 400
    other = fhir.put(f"Patient/{created['id']}", {**patient(), "id": "someone-else"})
    assert other.status_code == 400
    assert other.json()["issue"][0]["expression"] == ["id"]
    assert fhir.get(f"Patient/{created['id']}").json()["meta"]["versionId"] == "1"


def test_if_match_mismatch_is_412_and_changes_nothing(fhir: Fhir) -> None:
    created = fhir.create(patient())
    url = f"Patient/{created['id']}"
    stale = fhir.put(url, {**created, "gender": "male"}, If_Match='W/"7"')
    assert stale.status_code == 412
    assert stale.json()["resourceType"] == "OperationOutcome"
    fresh = fhir.put(url, {**created, "gender": "male"}, If_Match='W/"1"')
    assert fresh.status_code == 200
    assert fhir.get(url).json()["gender"] == "male"


def test_delete_keeps_history_and_read_answers_410(fhir: Fhir) -> None:
    created = fhir.create(patient())
    url = f"Patient/{created['id']}"
    assert fhir.delete(url).status_code == 204
    gone = fhir.get(url)
    assert gone.status_code == 410
    assert gone.json()["issue"][0]["code"] == "deleted"
    assert fhir.get(f"{url}/_history/1").status_code == 200
    history = fhir.get(f"{url}/_history").json()
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]
    assert fhir.delete(url).status_code == 204  # deleting again is harmless
    recreated = fhir.put(url, {**created})
    assert recreated.status_code == 201
    assert recreated.json()["meta"]["versionId"] == "3"


def test_conditional_read_if_none_match_and_if_modified_since(fhir: Fhir) -> None:
    created = fhir.create(patient())
    url = f"Patient/{created['id']}"
    assert fhir.get(url, If_None_Match='W/"1"').status_code == 304
    assert fhir.get(url, If_None_Match='W/"0"').status_code == 200
    modified = parsedate_to_datetime(fhir.get(url).headers["Last-Modified"])
    assert (
        fhir.get(url, If_Modified_Since=format_datetime(modified, usegmt=True)).status_code == 304
    )
    earlier = modified.replace(year=modified.year - 1)
    assert fhir.get(url, If_Modified_Since=format_datetime(earlier, usegmt=True)).status_code == 200


def test_prefer_return_minimal_representation_and_outcome(fhir: Fhir) -> None:
    minimal = fhir.post("Patient", patient(), Prefer="return=minimal")
    assert minimal.status_code == 201
    assert minimal.content == b""
    assert minimal.headers["Location"]
    outcome = fhir.post("Patient", patient(), Prefer="return=OperationOutcome")
    assert outcome.json()["resourceType"] == "OperationOutcome"
    full = fhir.post("Patient", patient(), Prefer="return=representation")
    assert full.json()["resourceType"] == "Patient"


def test_head_read_has_headers_and_no_body(fhir: Fhir) -> None:
    created = fhir.create(patient())
    response = fhir.http.head(f"/fhir/Patient/{created['id']}")
    assert response.status_code == 200
    assert response.headers["ETag"] == 'W/"1"'
    assert response.content == b""


def test_decimal_precision_is_kept_exactly(fhir: Fhir) -> None:
    # FHIR decimals carry precision in their digits: a result of 7.10 is not 7.1.
    body = (
        b'{"resourceType":"Observation","status":"final","code":{"text":"HbA1c"},'
        b'"valueQuantity":{"value":7.10,"unit":"%"},"component":[{"code":{"text":"x"},'
        b'"valueQuantity":{"value":1.0E+2}}]}'
    )
    created = fhir.http.post("/fhir/Observation", content=body, headers={"Content-Type": FHIR_JSON})
    assert created.status_code == 201, created.text
    read = fhir.get(f"Observation/{created.json()['id']}")
    assert b'"value":7.10,' in read.content
    assert b'"value":1.0E+2}' in read.content


def test_every_write_records_its_provenance(fhir: Fhir) -> None:
    created = fhir.create(patient())
    body = {**created, "gender": "male"}
    assert fhir.put(f"Patient/{created['id']}", body).status_code == 200
    assert fhir.delete(f"Patient/{created['id']}").status_code == 204
    found = fhir.get(
        f"Provenance?target=Patient/{created['id']}/_history/1,Patient/{created['id']}/_history/2,Patient/{created['id']}/_history/3&_sort=_lastUpdated"
    )
    assert found.status_code == 200, found.text
    provenance = [e["resource"] for e in found.json()["entry"] if e["search"]["mode"] == "match"]
    assert [p["activity"]["coding"][0]["code"] for p in provenance] == [
        "CREATE",
        "UPDATE",
        "DELETE",
    ]
    assert [p["target"][0]["reference"] for p in provenance] == [
        f"Patient/{created['id']}/_history/{v}" for v in (1, 2, 3)
    ]
    author = provenance[0]["agent"][0]
    assert author["who"]["identifier"]["value"].startswith("system/")
    # A conditional create that finds its match writes nothing, and records nothing.
    before = fhir.get("Provenance?_summary=count").json()["total"]
    again = fhir.post("Patient", patient("9434765870"), If_None_Exist="identifier=9434765870")
    assert again.status_code == 201
    same = fhir.post("Patient", patient("9434765870"), If_None_Exist="identifier=9434765870")
    assert same.status_code == 200
    assert fhir.get("Provenance?_summary=count").json()["total"] == before + 1
