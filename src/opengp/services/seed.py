"""A handful of synthetic resources for `opengp demo` (no real patient: test-range NHS numbers).

Seeded as one transaction Bundle of conditional creates, so running it again changes nothing.
"""

from __future__ import annotations

import random
from datetime import date
from typing import Any

import orjson

from opengp.config import Settings
from opengp.fhir.nhs_number import check_digit
from opengp.services.fhir.interactions import Context
from opengp.services.fhir.messages import FhirRequest
from opengp.services.fhir.router import dispatch
from opengp.store.migrate import upgrade
from opengp.store.sql import SqlStore

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
SNOMED = "http://snomed.info/sct"
PRACTICE_URL = "urn:uuid:00000000-0000-4000-8000-000000000001"
FAMILY = [
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Evans",
    "Patel",
    "Khan",
    "Walker",
]
GIVEN = {
    "female": ["Olivia", "Amelia", "Isla", "Ava", "Priya"],
    "male": ["Oliver", "George", "Harry", "Noah", "Arjun"],
}


def test_nhs_number(rng: random.Random) -> str:
    """A valid NHS number from the national test range (starting 999)."""
    while True:
        stem = "999" + "".join(rng.choice("0123456789") for _ in range(6))
        digit = check_digit(stem)
        if digit is not None:
            return stem + str(digit)


def _entry(full_url: str, resource: dict[str, Any], if_none_exist: str) -> dict[str, Any]:
    request = {"method": "POST", "url": resource["resourceType"], "ifNoneExist": if_none_exist}
    return {"fullUrl": full_url, "resource": resource, "request": request}


def demo_bundle(patients: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)  # noqa: S311 - reproducible synthetic data, not secrets
    practice = {
        "resourceType": "Organization",
        "identifier": [{"system": ODS, "value": "Y99999"}],
        "name": "OpenGP Demo Surgery",
        "type": [
            {
                "coding": [
                    {
                        "system": "https://fhir.nhs.uk/CodeSystem/organisation-role",
                        "code": "76",
                        "display": "GP PRACTICE",
                    }
                ]
            }
        ],
    }
    entries = [_entry(PRACTICE_URL, practice, f"identifier={ODS}|Y99999")]
    for n in range(patients):
        gender = rng.choice(["female", "male"])
        nhs = test_nhs_number(rng)
        patient_url = f"urn:uuid:00000000-0000-4000-8000-{n + 2:012d}"
        patient = {
            "resourceType": "Patient",
            "identifier": [{"system": NHS_NUMBER, "value": nhs}],
            "name": [
                {
                    "use": "official",
                    "family": rng.choice(FAMILY),
                    "given": [rng.choice(GIVEN[gender])],
                }
            ],
            "gender": gender,
            "birthDate": date(
                rng.randint(1935, 2020), rng.randint(1, 12), rng.randint(1, 28)
            ).isoformat(),
            "managingOrganization": {"reference": PRACTICE_URL},
        }
        entries.append(_entry(patient_url, patient, f"identifier={NHS_NUMBER}|{nhs}"))
        systolic = rng.randint(105, 165)
        observation = {
            "resourceType": "Observation",
            "identifier": [
                {"system": "https://opengp.example/Id/demo-observation", "value": f"{seed}-{n}"}
            ],
            "status": "final",
            "code": {
                "coding": [
                    {"system": SNOMED, "code": "72313002", "display": "Systolic arterial pressure"}
                ]
            },
            "subject": {"reference": patient_url},
            "effectiveDateTime": "2026-10-01",
            "valueQuantity": {
                "value": systolic,
                "unit": "mmHg",
                "system": "http://unitsofmeasure.org",
                "code": "mm[Hg]",
            },
        }
        entries.append(
            _entry(
                f"urn:uuid:10000000-0000-4000-8000-{n:012d}",
                observation,
                f"identifier=https://opengp.example/Id/demo-observation|{seed}-{n}",
            )
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def seed_demo(settings: Settings, *, patients: int, seed: int) -> str:
    store = SqlStore.from_url(settings.database_url)
    try:
        upgrade(store.engine)
        request = FhirRequest("POST", "", body=demo_bundle(patients, seed), prefer_return="minimal")
        response = dispatch(store, request, Context("http://127.0.0.1:8000/fhir"))
    finally:
        store.dispose()
    statuses = [e["response"]["status"] for e in orjson.loads(response.body or b"{}")["entry"]]
    created = sum(s.startswith("201") for s in statuses)
    return (
        f"Demo practice ready: {created} resources created,"
        f" {len(statuses) - created} already there.\n"
        "Serve it with 'opengp serve' and open http://127.0.0.1:8000/fhir/Patient.\n"
        "This build has no sign-in yet: keep it on 127.0.0.1."
    )
