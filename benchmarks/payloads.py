"""The request bodies: a UK Core-ish Patient (about 1 KB) and a 10-entry transaction Bundle."""

from __future__ import annotations

import uuid
from typing import Any

NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
UK_CORE = "https://fhir.hl7.org.uk/StructureDefinition"


def patient(i: int) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "meta": {"profile": [f"{UK_CORE}/UKCore-Patient"]},
        "identifier": [
            {
                "extension": [
                    {
                        "url": f"{UK_CORE}/Extension-UKCore-NHSNumberVerificationStatus",
                        "valueCodeableConcept": {
                            "coding": [
                                {
                                    "system": "https://fhir.hl7.org.uk/CodeSystem/"
                                    "UKCore-NHSNumberVerificationStatusEngland",
                                    "code": "01",
                                    "display": "Number present and verified",
                                }
                            ]
                        },
                    }
                ],
                "system": NHS_NUMBER,
                "value": "9434765919",
            }
        ],
        "active": True,
        "name": [
            {"use": "official", "family": f"Smith{i}", "given": ["Jane", "Anne"], "prefix": ["Mrs"]}
        ],
        "telecom": [
            {"system": "phone", "value": "01632 960587", "use": "home"},
            {"system": "email", "value": f"jane.smith{i}@example.org", "use": "home"},
        ],
        "gender": "female",
        "birthDate": "1978-04-12",
        "address": [
            {
                "use": "home",
                "line": ["1 Trevelyan Square", "Boar Lane"],
                "city": "Leeds",
                "district": "West Yorkshire",
                "postalCode": "LS1 6AE",
                "country": "GB",
            }
        ],
        "generalPractitioner": [
            {
                "identifier": {
                    "system": "https://fhir.nhs.uk/Id/ods-organization-code",
                    "value": "Y12345",
                }
            }
        ],
    }


def observation(subject: str, i: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {
            "coding": [
                {"system": "http://snomed.info/sct", "code": "27113001", "display": "Body weight"}
            ]
        },
        "subject": {"reference": subject},
        "effectiveDateTime": f"2024-01-{1 + i % 28:02d}T09:30:00Z",
        "valueQuantity": {
            "value": 60 + i,
            "unit": "kg",
            "system": "http://unitsofmeasure.org",
            "code": "kg",
        },
    }


def transaction(i: int, size: int = 10) -> dict[str, Any]:
    """A Patient (fullUrl urn:uuid) and size - 1 Observations referring to it."""
    full_url = f"urn:uuid:{uuid.uuid4()}"
    entries = [
        {
            "fullUrl": full_url,
            "resource": patient(i),
            "request": {"method": "POST", "url": "Patient"},
        }
    ]
    entries += [
        {
            "fullUrl": f"urn:uuid:{uuid.uuid4()}",
            "resource": observation(full_url, k),
            "request": {"method": "POST", "url": "Observation"},
        }
        for k in range(size - 1)
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}
