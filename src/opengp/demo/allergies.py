"""Allergies, recorded when the patient joined the list (or at the new patient check).

About 7% of adults carry a penicillin allergy label, and fewer a food (peanut), aspirin or
latex allergy. Of those with no drug allergy, about half have "no known drug allergy"
recorded (the starter set's `no_known_allergy`, an AllergyIntolerance with that code and
no reaction: the question was asked); the others have nothing recorded.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from opengp.demo.chart import Chart, Visit, coded
from opengp.demo.dates import add_years

_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
ACTIVE = {"coding": [{"system": _CLINICAL, "code": "active", "display": "Active"}]}
CONFIRMED = {"coding": [{"system": _VERIFICATION, "code": "confirmed", "display": "Confirmed"}]}

# allergen -> (category, chance child / adult / 65+, reactions with weights, onset ages)
ALLERGENS: dict[str, tuple[str, tuple[float, float, float], tuple[tuple[str, float], ...]]] = {
    "penicillin": (
        "medication",
        (0.03, 0.07, 0.09),
        (("rash", 0.55), ("urticaria", 0.33), ("anaphylaxis", 0.05), ("wheeze", 0.07)),
    ),
    "peanut": (
        "food",
        (0.02, 0.012, 0.004),
        (("urticaria", 0.5), ("anaphylaxis", 0.3), ("wheeze", 0.2)),
    ),
    "aspirin_substance": (
        "medication",
        (0.0, 0.005, 0.008),
        (("wheeze", 0.5), ("urticaria", 0.5)),
    ),
    "latex": ("environment", (0.001, 0.005, 0.004), (("rash", 0.6), ("urticaria", 0.4))),
}


def _reaction(rng: random.Random, reactions: tuple[tuple[str, float], ...]) -> dict[str, Any]:
    keys = [k for k, _ in reactions]
    key = rng.choices(keys, [w for _, w in reactions])[0]
    severity = "severe" if key == "anaphylaxis" else rng.choice(("mild", "mild", "moderate"))
    return {"manifestation": [coded(key)], "severity": severity}


def record_allergies(chart: Chart, visit: Visit | None) -> None:
    """Allergies as recorded on joining: in `visit` (the new patient check) if there was
    one, else on the day of registration."""
    rng = chart.rng
    registration = chart.summary.registration_date
    age = chart.age(registration)
    band = 0 if age < 16 else 1 if age < 65 else 2
    found: list[str] = []
    for allergen, (_, chances, _) in ALLERGENS.items():
        if rng.random() < chances[band] and age >= 2:  # none known yet in a baby
            found.append(allergen)
    drug_allergy = any(ALLERGENS[a][0] == "medication" for a in found)
    if not drug_allergy and rng.random() < 0.5:
        found.insert(0, "no_known_allergy")
    recorded = visit.when if visit else registration.isoformat()
    recorder = chart.role(visit.staff if visit else chart.usual_gp)
    for allergen in found:
        allergy: dict[str, Any] = {
            "resourceType": "AllergyIntolerance",
            "id": chart.new_id("AllergyIntolerance"),
            "clinicalStatus": ACTIVE,
            "verificationStatus": CONFIRMED,
        }
        if allergen != "no_known_allergy":
            category, _, reactions = ALLERGENS[allergen]
            reaction = _reaction(rng, reactions)
            allergy["type"] = "allergy"
            allergy["category"] = [category]
            allergy["criticality"] = "high" if reaction["severity"] == "severe" else "low"
        allergy["code"] = coded(allergen)
        allergy["patient"] = chart.subject
        if visit is not None:
            allergy["encounter"] = visit.ref
        if allergen != "no_known_allergy":
            allergy["onsetDateTime"] = _onset(rng, chart, registration).isoformat()
        allergy["recordedDate"] = recorded
        allergy["recorder"] = recorder
        if allergen != "no_known_allergy":
            allergy["reaction"] = [reaction]
        chart.add(allergy)


def _onset(rng: random.Random, chart: Chart, before: date) -> date:
    birth = chart.summary.birth_date
    onset = add_years(birth, rng.uniform(0.5, max(0.6, chart.age(before) * 0.8)))
    return min(onset, before - timedelta(days=1)) if before > birth else birth
