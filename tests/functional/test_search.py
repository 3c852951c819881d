"""FHIR search over HTTP on both databases: the parameters a GP system uses, every kind of
value, modifiers, chains, _has, _include/_revinclude, sorting, paging while data changes,
strict and lenient handling (http://hl7.org/fhir/R4/search.html)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from opengp.fhir.nhs_number import check_digit
from tests.functional.conftest import NHS_NUMBER, Fhir

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"


def nhs_number(n: int) -> str:
    for serial in range(n * 10, n * 10 + 10):
        first = f"999{serial:06d}"
        digit = check_digit(first)
        if digit is not None:
            return f"{first}{digit}"
    raise AssertionError(n)


def a_patient(
    n: int, family: str, given: str, birth: str, gender: str = "female", **extra: Any
) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": NHS_NUMBER, "value": nhs_number(n)}],
        "name": [{"family": family, "given": [given]}],
        "gender": gender,
        "birthDate": birth,
        **extra,
    }


def observation(
    patient_id: str, code: str, value: float | str, unit: str, when: str, **extra: Any
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
        **extra,
    }


def ids(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    return [
        e["resource"]["id"]
        for e in bundle.get("entry", [])
        if e.get("search", {}).get("mode") == mode
    ]


def search(fhir: Fhir, url: str, **headers: str) -> dict[str, Any]:
    response = fhir.get(url, **headers)
    assert response.status_code == 200, response.text
    bundle: dict[str, Any] = response.json()
    assert bundle["type"] == "searchset"
    return bundle


@pytest.fixture
def practice(fhir: Fhir) -> dict[str, str]:
    """Three patients with results and conditions."""
    made: dict[str, str] = {}
    people = [
        ("jo", a_patient(1, "Smith", "Jo", "1970-05-01")),
        ("sam", a_patient(2, "Smythe", "Sam", "1985-11-20", "male")),
        ("ann", a_patient(3, "Ng", "Ánn", "2010-02-03")),
    ]
    for key, body in people:
        made[key] = fhir.create(body)["id"]
    results = [
        ("jo-hba1c-old", observation(made["jo"], "4548-4", 48, "mmol/mol", "2023-01-10T09:00:00Z")),
        ("jo-hba1c-new", observation(made["jo"], "4548-4", 58, "mmol/mol", "2025-06-01T09:00:00Z")),
        ("jo-bmi", observation(made["jo"], "39156-5", 31.2, "kg/m2", "2025-06-01T09:05:00Z")),
        ("sam-hba1c", observation(made["sam"], "4548-4", 40, "mmol/mol", "2025-03-03T10:00:00Z")),
    ]
    for key, body in results:
        made[key] = fhir.create(body)["id"]
    for key, who, status in (("jo-dm", "jo", "active"), ("sam-dm", "sam", "resolved")):
        made[key] = fhir.create(
            {
                "resourceType": "Condition",
                "clinicalStatus": {"coding": [{"system": CLINICAL, "code": status}]},
                "code": {"coding": [{"system": SNOMED, "code": "44054006"}]},
                "subject": {"reference": f"Patient/{made[who]}"},
            }
        )["id"]
    return made


def test_patients_by_nhs_number_name_and_birth_date(fhir: Fhir, practice: dict[str, str]) -> None:
    assert ids(search(fhir, f"Patient?identifier={NHS_NUMBER}|{nhs_number(2)}")) == [
        practice["sam"]
    ]
    assert ids(search(fhir, f"Patient?identifier={nhs_number(1)}")) == [practice["jo"]]
    # Names match from the start, ignoring case and accents.
    assert set(ids(search(fhir, "Patient?family=sm"))) == {practice["jo"], practice["sam"]}
    assert ids(search(fhir, "Patient?given=ann")) == [practice["ann"]]
    assert ids(search(fhir, "Patient?family:exact=Smith")) == [practice["jo"]]
    assert ids(search(fhir, "Patient?family:exact=smith")) == []
    assert ids(search(fhir, "Patient?name:contains=myth")) == [practice["sam"]]
    assert ids(search(fhir, "Patient?family=smith&birthdate=1970-05-01")) == [practice["jo"]]
    assert ids(search(fhir, "Patient?birthdate=1970")) == [practice["jo"]]
    assert set(ids(search(fhir, "Patient?birthdate=lt1990"))) == {practice["jo"], practice["sam"]}
    assert ids(search(fhir, "Patient?birthdate=ge2000-01-01")) == [practice["ann"]]
    assert ids(search(fhir, "Patient?gender=male")) == [practice["sam"]]
    gender = "http://hl7.org/fhir/administrative-gender"
    assert ids(search(fhir, f"Patient?gender={gender}|male")) == [practice["sam"]]
    # OR with commas, AND by repetition.
    assert set(ids(search(fhir, "Patient?family=ng,smythe"))) == {practice["ann"], practice["sam"]}
    assert ids(search(fhir, "Patient?family=sm&family=smy")) == [practice["sam"]]


def test_results_by_patient_code_date_and_value(fhir: Fhir, practice: dict[str, str]) -> None:
    jo = practice["jo"]
    found = search(fhir, f"Observation?patient={jo}&code={LOINC}|4548-4&date=ge2024-01-01")
    assert ids(found) == [practice["jo-hba1c-new"]]
    assert set(ids(search(fhir, f"Observation?subject=Patient/{jo}"))) == {
        practice["jo-hba1c-old"],
        practice["jo-hba1c-new"],
        practice["jo-bmi"],
    }
    assert set(ids(search(fhir, "Observation?value-quantity=gt45"))) == {
        practice["jo-hba1c-old"],
        practice["jo-hba1c-new"],
    }
    assert ids(search(fhir, f"Observation?value-quantity=le40|{UCUM}|mmol/mol")) == [
        practice["sam-hba1c"]
    ]
    assert ids(search(fhir, "Observation?value-quantity=31.2")) == [practice["jo-bmi"]]
    assert ids(search(fhir, f"Observation?code-value-quantity={LOINC}|4548-4$gt50")) == [
        practice["jo-hba1c-new"]
    ]
    assert ids(search(fhir, "Observation?date=2023")) == [practice["jo-hba1c-old"]]
    assert ids(search(fhir, "Observation?date=sa2025-06-01")) == []
    assert ids(search(fhir, "Observation?date=eb2024")) == [practice["jo-hba1c-old"]]


def test_conditions_by_clinical_status_and_not(fhir: Fhir, practice: dict[str, str]) -> None:
    assert ids(search(fhir, "Condition?clinical-status=active")) == [practice["jo-dm"]]
    assert ids(search(fhir, "Condition?clinical-status:not=active")) == [practice["sam-dm"]]
    jo = practice["jo"]
    assert ids(search(fhir, f"Condition?patient={jo}&clinical-status=active")) == [
        practice["jo-dm"]
    ]
    assert ids(search(fhir, f"Condition?patient={jo}&clinical-status=resolved")) == []
    assert ids(search(fhir, "Condition?onset-date:missing=false")) == []
    assert len(ids(search(fhir, "Condition?onset-date:missing=true"))) == 2


def test_chains_and_has(fhir: Fhir, practice: dict[str, str]) -> None:
    chained = search(fhir, "Observation?subject:Patient.name=smythe")
    assert ids(chained) == [practice["sam-hba1c"]]
    assert len(ids(search(fhir, "Observation?patient.birthdate=1970-05-01"))) == 3
    has = search(fhir, f"Patient?_has:Observation:patient:code={LOINC}|39156-5")
    assert ids(has) == [practice["jo"]]
    both = search(fhir, "Patient?_has:Condition:patient:clinical-status=active&gender=female")
    assert ids(both) == [practice["jo"]]


def test_include_and_revinclude(fhir: Fhir, practice: dict[str, str]) -> None:
    bundle = search(fhir, "Observation?code=39156-5&_include=Observation:patient")
    assert ids(bundle) == [practice["jo-bmi"]]
    assert ids(bundle, "include") == [practice["jo"]]
    rev = search(fhir, f"Patient?_id={practice['sam']}&_revinclude=Observation:subject")
    assert ids(rev) == [practice["sam"]]
    assert ids(rev, "include") == [practice["sam-hba1c"]]
    iterate = search(
        fhir,
        f"Condition?_id={practice['jo-dm']}&_include=Condition:subject"
        "&_revinclude:iterate=Observation:patient",
    )
    assert ids(iterate, "include")[0] == practice["jo"]
    assert set(ids(iterate, "include")[1:]) == {
        practice["jo-hba1c-old"],
        practice["jo-hba1c-new"],
        practice["jo-bmi"],
    }


def test_sort_several_keys_and_descending(fhir: Fhir, practice: dict[str, str]) -> None:
    by_birth = ids(search(fhir, "Patient?_sort=-birthdate"))
    assert by_birth == [practice["ann"], practice["sam"], practice["jo"]]
    by_code_then_date = ids(search(fhir, "Observation?_sort=code,-date"))
    assert by_code_then_date == [
        practice["jo-bmi"],  # 39156-5 before 4548-4
        practice["jo-hba1c-new"],
        practice["sam-hba1c"],
        practice["jo-hba1c-old"],
    ]


def _next(bundle: dict[str, Any], relation: str = "next") -> str | None:
    for link in bundle["link"]:
        if link["relation"] == relation:
            parts = urlsplit(link["url"])
            return f"{parts.path.removeprefix('/fhir/')}?{parts.query}"
    return None


def test_paging_never_skips_or_repeats_while_data_changes(fhir: Fhir) -> None:
    made = [
        fhir.create(a_patient(10 + n, f"Page{n:02d}", "Pat", "1990-01-01"))["id"] for n in range(7)
    ]
    first = search(fhir, "Patient?given=pat&_sort=family&_count=3")
    assert first["total"] == 7
    seen = ids(first)
    # Meanwhile: one not yet shown is renamed to sort first, one shown is deleted, one added.
    renamed = a_patient(12, "Aaa", "Pat", "1990-01-01")
    assert fhir.put(f"Patient/{made[5]}", {**renamed, "id": made[5]}).status_code == 200
    assert fhir.delete(f"Patient/{made[0]}").status_code == 204
    fhir.create(a_patient(30, "Page99", "Pat", "1990-01-01"))
    page = first
    while (url := _next(page)) is not None:
        page = search(fhir, url)
        seen += ids(page)
    assert len(seen) == len(set(seen))  # nothing repeated
    assert set(made[1:]) <= set(seen)  # nothing that still matches skipped
    back = search(fhir, _next(page, "previous") or "")
    assert ids(back) == [made[3], made[4], made[5]]


def test_count_summary_and_total(fhir: Fhir, practice: dict[str, str]) -> None:
    counted = search(fhir, "Observation?code=4548-4&_summary=count")
    assert (counted["total"] == 3 and "entry" not in counted) or counted["entry"] == []
    one = search(fhir, "Observation?_count=1")
    assert len(ids(one)) == 1 and one["total"] == 4
    assert _next(one) is not None


def test_lenient_and_strict_handling(fhir: Fhir, practice: dict[str, str]) -> None:
    lenient = search(fhir, "Patient?family=ng&colour=blue")
    assert ids(lenient) == [practice["ann"]]
    outcome = [e for e in lenient["entry"] if e["search"]["mode"] == "outcome"]
    assert outcome and "colour" in str(outcome[0]["resource"])
    self_link = next(link["url"] for link in lenient["link"] if link["relation"] == "self")
    assert "colour" not in self_link
    strict = fhir.get("Patient?family=ng&colour=blue", Prefer="handling=strict")
    assert strict.status_code == 400
    assert strict.json()["resourceType"] == "OperationOutcome"
    assert "colour" in strict.text
    bad_date = fhir.get("Patient?birthdate=last-tuesday", Prefer="handling=strict")
    assert bad_date.status_code == 400 and "birthdate" in bad_date.text


def test_post_search_system_search_and_last_updated(fhir: Fhir, practice: dict[str, str]) -> None:
    response = fhir.http.post(
        "/fhir/Patient/_search",
        content="family=smythe",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    assert ids(response.json()) == [practice["sam"]]
    everything = search(fhir, f"?_type=Patient,Condition&_id={practice['jo']},{practice['jo-dm']}")
    assert set(ids(everything)) == {practice["jo"], practice["jo-dm"]}
    assert len(ids(search(fhir, "Patient?_lastUpdated=gt2020-01-01"))) == 3
    assert ids(search(fhir, "Patient?_lastUpdated=lt2020-01-01")) == []


def test_conditional_create_uses_search(fhir: Fhir, practice: dict[str, str]) -> None:
    again = fhir.post(
        "Patient",
        a_patient(1, "Smith", "Jo", "1970-05-01"),
        If_None_Exist="family=smith&birthdate=1970-05-01",
    )
    assert again.status_code == 200 and again.json()["id"] == practice["jo"]
    refused = fhir.post(
        "Patient", a_patient(4, "X", "Y", "2000-01-01"), If_None_Exist="colour=blue"
    )
    assert refused.status_code == 400


def test_search_sees_updates_and_deletes(fhir: Fhir, practice: dict[str, str]) -> None:
    body = a_patient(2, "Jones", "Sam", "1985-11-20", "male", id=practice["sam"])
    assert fhir.put(f"Patient/{practice['sam']}", body).status_code == 200
    assert ids(search(fhir, "Patient?family=smythe")) == []
    assert ids(search(fhir, "Patient?family=jones")) == [practice["sam"]]
    assert fhir.delete(f"Patient/{practice['ann']}").status_code == 204
    assert ids(search(fhir, "Patient?family=ng")) == []


def test_pages_belong_to_their_searcher(fhir: Fhir, practice: dict[str, str]) -> None:
    first = search(fhir, "Observation?_count=1")
    url = _next(first)
    assert url is not None
    cursor = dict(parse_qsl(urlsplit(url).query))["_cursor"]
    other = fhir.get(f"Patient?_cursor={cursor}")
    assert other.status_code == 400


def test_compartment_search(fhir: Fhir, practice: dict[str, str]) -> None:
    jo = practice["jo"]
    found = search(fhir, f"Patient/{jo}/Observation?code=4548-4")
    assert set(ids(found)) == {practice["jo-hba1c-old"], practice["jo-hba1c-new"]}
    assert ids(search(fhir, f"Patient/{jo}/Condition")) == [practice["jo-dm"]]
    assert ids(search(fhir, f"Patient/{jo}/Patient")) == [jo]
    assert fhir.get(f"Patient/{jo}/Organization").status_code == 404
    assert fhir.get(f"Observation/{jo}/Condition").status_code == 404


def test_everything_for_a_patient(fhir: Fhir, practice: dict[str, str]) -> None:
    practitioner = fhir.create({"resourceType": "Practitioner", "name": [{"family": "Shah"}]})
    jo = practice["jo"]
    body = {**a_patient(1, "Smith", "Jo", "1970-05-01"), "id": jo}
    body["generalPractitioner"] = [{"reference": f"Practitioner/{practitioner['id']}"}]
    assert fhir.put(f"Patient/{jo}", body).status_code == 200
    bundle = search(fhir, f"Patient/{jo}/$everything?_type=Patient,Observation,Condition")
    provenance = search(fhir, f"Patient/{jo}/$everything?_type=Provenance")
    assert len(ids(provenance)) == 2  # of the patient's creation and update
    mine = {
        jo,
        practice["jo-hba1c-old"],
        practice["jo-hba1c-new"],
        practice["jo-bmi"],
        practice["jo-dm"],
    }
    assert set(ids(bundle)) == mine
    assert ids(bundle, "include") == [practitioner["id"]]
    only = search(fhir, f"Patient/{jo}/$everything?_type=Condition")
    assert ids(only) == [practice["jo-dm"]]
    paged = search(fhir, f"Patient/{jo}/$everything?_count=2&_type=Patient,Observation,Condition")
    seen = ids(paged)
    while (url := _next(paged)) is not None:
        paged = search(fhir, url)
        seen += ids(paged)
    assert sorted(seen) == sorted(mine)
    future = search(fhir, f"Patient/{jo}/$everything?_since=2999-01-01T00:00:00Z")
    assert ids(future) == []
    assert fhir.get("Patient/nobody/$everything").status_code == 404
    assert fhir.get(f"Patient/{jo}/$everything?colour=blue").status_code == 400


def test_text_and_content(fhir: Fhir, practice: dict[str, str]) -> None:
    div = '<div xmlns="http://www.w3.org/1999/xhtml">Diabetes review: <b>feet</b> checked</div>'
    noted = fhir.create(
        {
            "resourceType": "Condition",
            "text": {"status": "generated", "div": div},
            "code": {"text": "Type 2 diabetes mellitus"},
            "note": [{"text": "Retinal screening booked"}],
            "subject": {"reference": f"Patient/{practice['jo']}"},
        }
    )["id"]
    assert ids(search(fhir, "Condition?_text=feet")) == [noted]
    assert ids(search(fhir, "Condition?_text=checked feet")) == [noted]
    assert ids(search(fhir, "Condition?_text=retinal")) == []  # not in the narrative
    assert ids(search(fhir, "Condition?_content=retinal screening")) == [noted]
    assert ids(search(fhir, "Condition?_content=mellitus")) == [noted]
    assert ids(search(fhir, "Condition?_content=retinal,nothing-like-it")) == [noted]
    assert ids(search(fhir, "Condition?_content=retinal clinic")) == []
    assert fhir.delete(f"Condition/{noted}").status_code == 204
    assert ids(search(fhir, "Condition?_content=retinal")) == []
