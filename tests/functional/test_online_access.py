"""Only what the practice released online: a patient (or proxy) sees the clinical entries
their level of online record access covers, over HTTP on both databases — reads, searches
(pages and `_total`), includes and `$everything` — and nothing else exists for them.

The level is a Consent in the patient's record (opengp.access.online_access), set by staff
through the FHIR API like any other resource.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from opengp.access import accounts
from opengp.access.online_access import consent
from opengp.access.policy import OnlineLevel, OnlineRecordAccess
from opengp.store.sql import SqlStore
from tests.functional.conftest import FHIR_JSON, bearer_token
from tests.functional.test_smart_launch import (
    http,
    launched,
    new_app,
    new_patient,
    new_user,
    settings,
)

__all__ = ["http", "settings"]  # fixtures, from the SMART launch tests

NOW = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
SUMMARY = {"allergy", "immunisation", "old-medication"}
CODED = {"allergy", "immunisation", "old-medication", "old-result", "new-result", "problem"}


class Practice:
    """A patient's record with entries of each kind and date, written through the API."""

    def __init__(self, http: TestClient, store: SqlStore) -> None:
        self.http = http
        self.store = store
        token = bearer_token(http, store, "system/*.cruds")
        self.system = {"Authorization": f"Bearer {token}", "Content-Type": FHIR_JSON}
        self.patient = new_patient(http, store, "9434765919")
        subject = {"reference": f"Patient/{self.patient}"}
        code = {"text": "an entry"}
        self.ids = {
            "allergy": self.write(
                {"resourceType": "AllergyIntolerance", "patient": subject, "code": code}
                | {"recordedDate": "2019-03-01"}
            ),
            "immunisation": self.write(
                {"resourceType": "Immunization", "status": "completed", "patient": subject}
                | {"vaccineCode": code, "occurrenceDateTime": "2024-10-01"}
            ),
            "old-medication": self.write(
                {"resourceType": "MedicationRequest", "status": "active", "intent": "order"}
                | {"subject": subject, "medicationCodeableConcept": code}
                | {"authoredOn": "2021-05-05"}
            ),
            "old-result": self.observation(subject, "2020-02-02"),
            "new-result": self.observation(subject, "2025-06-01"),
            "problem": self.write(
                {"resourceType": "Condition", "subject": subject, "code": code}
                | {"recordedDate": "2025-02-01"}
            ),
            "letter": self.write(
                {"resourceType": "DocumentReference", "status": "current", "subject": subject}
                | {"date": "2025-07-01T10:00:00Z"}
                | {"content": [{"attachment": {"contentType": "text/plain", "data": "eA=="}}]}
            ),
        }
        self.names = {id: name for name, id in self.ids.items()}

    def write(self, body: dict[str, Any]) -> str:
        response = self.http.post(
            f"/fhir/{body['resourceType']}", content=orjson.dumps(body), headers=self.system
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def observation(self, subject: dict[str, str], when: str) -> str:
        return self.write(
            {"resourceType": "Observation", "status": "final", "code": {"text": "HbA1c"}}
            | {"subject": subject, "effectiveDateTime": when}
        )

    def set_level(
        self,
        level: OnlineLevel,
        since: date | None = None,
        *,
        proxy: str | None = None,
        patient: str | None = "own",
    ) -> str:
        """Staff set a level through the FHIR API: a Consent in the patient's record."""
        body = consent(
            OnlineRecordAccess(level, since),
            patient_id=self.patient if patient == "own" else patient,
            recorded=NOW,
            proxy=proxy,
        )
        return self.write(body)

    def seen(self, bearer: dict[str, str]) -> set[str]:
        """The entries `bearer` finds, the same way through every route: `$everything`,
        type-level and compartment searches (with `_total`), and reads by id."""
        everything = self.http.get(f"/fhir/Patient/{self.patient}/$everything", headers=bearer)
        assert everything.status_code == 200, everything.text
        found = {self.names[e["resource"]["id"]] for e in _entries(everything) if _entry(e, self)}
        for kind in (
            "AllergyIntolerance",
            "Immunization",
            "MedicationRequest",
            "Observation",
            "Condition",
            "DocumentReference",
        ):
            names = {n for n in found if self.kind_of(n) == kind}
            for url in (
                f"/fhir/{kind}?_total=accurate",
                f"/fhir/Patient/{self.patient}/{kind}?_total=accurate",
            ):
                page = self.http.get(url, headers=bearer)
                assert page.status_code == 200, page.text
                assert page.json()["total"] == len(names), url  # hidden ones are not counted
                assert {self.names[e["resource"]["id"]] for e in _entries(page)} == names, url
        for name, id in self.ids.items():
            read = self.http.get(f"/fhir/{self.kind_of(name)}/{id}", headers=bearer)
            # Not released: as if it did not exist (404, not 403).
            assert read.status_code == (200 if name in found else 404), (name, read.text)
        return found

    def kind_of(self, name: str) -> str:
        kinds = {
            "allergy": "AllergyIntolerance",
            "immunisation": "Immunization",
            "old-medication": "MedicationRequest",
            "problem": "Condition",
            "letter": "DocumentReference",
        }
        return kinds.get(name, "Observation")


def _entries(response: Any) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = response.json().get("entry", [])
    return [e for e in entries if e.get("search", {}).get("mode") == "match"]


def _entry(entry: dict[str, Any], practice: Practice) -> bool:
    """One of the test's entries (not the patient, their Consents, or Provenance)."""
    return entry["resource"]["id"] in practice.names


def _patient_bearer(http: TestClient, store: SqlStore, practice: Practice) -> dict[str, str]:
    new_user(store, "jo.smith", "patient", fhir_user=f"Patient/{practice.patient}")
    client_id, _ = new_app(store)
    token = launched(http, store, client_id, "jo.smith")["access_token"]
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def practice(http: TestClient, store: SqlStore) -> Practice:
    return Practice(http, store)


def test_without_a_level_the_practice_default_applies(
    http: TestClient, store: SqlStore, practice: Practice
) -> None:
    bearer = _patient_bearer(http, store, practice)
    # No level set anywhere: the detailed coded record, full history; never letters.
    assert practice.seen(bearer) == CODED
    # The practice's own default (a Consent without a patient) replaces it.
    practice.set_level(OnlineLevel.SUMMARY, patient=None)
    assert practice.seen(bearer) == SUMMARY


@pytest.mark.parametrize(
    ("level", "expected"),
    [(OnlineLevel.NONE, set()), (OnlineLevel.SUMMARY, SUMMARY), (OnlineLevel.DETAILED, CODED)],
)
def test_each_level_shows_exactly_what_it_covers(
    http: TestClient,
    store: SqlStore,
    practice: Practice,
    level: OnlineLevel,
    expected: set[str],
) -> None:
    bearer = _patient_bearer(http, store, practice)
    practice.set_level(level)
    assert practice.seen(bearer) == expected
    # Their own details are shown whatever the level.
    assert http.get(f"/fhir/Patient/{practice.patient}", headers=bearer).status_code == 200


def test_prospective_access_hides_entries_dated_before_the_start(
    http: TestClient, store: SqlStore, practice: Practice
) -> None:
    bearer = _patient_bearer(http, store, practice)
    practice.set_level(OnlineLevel.DETAILED, date(2025, 1, 1))
    assert practice.seen(bearer) == {"new-result", "problem"}
    # Paging counts only what is shown: one result a page, one page.
    page = http.get("/fhir/Observation?_count=1&_total=accurate", headers=bearer).json()
    assert page["total"] == 1
    assert not [link for link in page["link"] if link["relation"] == "next"]
    # What a search includes is judged like a read.
    included = http.get(
        f"/fhir/Patient?_id={practice.patient}&_revinclude=Observation:subject", headers=bearer
    )
    assert included.status_code == 200, included.text
    ids = {e["resource"].get("id") for e in included.json()["entry"]}
    assert practice.ids["new-result"] in ids and practice.ids["old-result"] not in ids


def test_changing_the_level_takes_effect_at_once(
    http: TestClient, store: SqlStore, practice: Practice
) -> None:
    bearer = _patient_bearer(http, store, practice)
    chosen = practice.set_level(OnlineLevel.SUMMARY)
    assert practice.seen(bearer) == SUMMARY
    # The same token, the same Consent updated: the new level at the next request.
    body = consent(
        OnlineRecordAccess(OnlineLevel.DETAILED, date(2025, 1, 1)),
        patient_id=practice.patient,
        recorded=NOW,
    )
    updated = http.put(
        f"/fhir/Consent/{chosen}",
        content=orjson.dumps(body | {"id": chosen}),
        headers=practice.system,
    )
    assert updated.status_code == 200, updated.text
    assert practice.seen(bearer) == {"new-result", "problem"}
    withdrawn = http.delete(f"/fhir/Consent/{chosen}", headers=practice.system)
    assert withdrawn.status_code == 204
    assert practice.seen(bearer) == CODED  # back to the practice default


def test_a_proxy_sees_no_more_than_their_own_level_and_the_patients(
    http: TestClient, store: SqlStore, practice: Practice
) -> None:
    carer = practice.write(
        {"resourceType": "RelatedPerson", "patient": {"reference": f"Patient/{practice.patient}"}}
    )
    proxy_id = new_user(store, "a.parent", "proxy", fhir_user=f"RelatedPerson/{carer}")
    with store.writing() as tx:
        accounts.grant_proxy(tx.conn, proxy_id, practice.patient, "patient/*.rs", "admin")
    client_id, _ = new_app(store)
    token = launched(http, store, client_id, "a.parent")["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    patient_bearer = _patient_bearer(http, store, practice)

    practice.set_level(OnlineLevel.DETAILED)
    assert practice.seen(bearer) == CODED  # no level of their own: the patient's
    practice.set_level(OnlineLevel.SUMMARY, proxy=f"RelatedPerson/{carer}")
    assert practice.seen(bearer) == SUMMARY  # narrower than the patient's
    assert practice.seen(patient_bearer) == CODED  # the patient's own is unchanged
    # A proxy's level never widens the patient's: the lower level, the later start.
    practice.set_level(OnlineLevel.DETAILED, date(2025, 1, 1), proxy=f"RelatedPerson/{carer}")
    practice.set_level(OnlineLevel.SUMMARY)
    assert practice.seen(bearer) == set()  # summary entries, all dated before 2025
    assert practice.seen(patient_bearer) == SUMMARY


def test_staff_and_systems_see_the_whole_record_whatever_the_level(
    http: TestClient, store: SqlStore, practice: Practice
) -> None:
    practice.set_level(OnlineLevel.NONE)
    everything = http.get(f"/fhir/Patient/{practice.patient}/$everything", headers=practice.system)
    names = {practice.names.get(e["resource"]["id"]) for e in _entries(everything)}
    assert set(practice.ids) <= names
