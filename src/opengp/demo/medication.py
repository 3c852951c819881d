"""Medication that fits the conditions: repeat templates, their issues, and acute courses.

A long-term drug is a repeat template: a MedicationRequest (intent "order", course of
therapy "continuous") carrying UK Core's repeat information extension, its reason the
Condition. Each prescription issued from it is a MedicationRequest of its own, `basedOn`
the template (UK Core's rule for continuous issues), every 28 or 56 days over the last
year of the record. Acute courses (intent "order", course "acute") are issued in the
consultation that prompted them.

Every diabetic is treated (metformin, else gliclazide; insulin for type 1); other
conditions are treated at roughly England's rates, first-line drugs chosen as NICE advises
(for hypertension, ACE inhibitor under 55, calcium-channel blocker from 55 or for people of
Black African or African-Caribbean family origin).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from opengp.demo.chart import UCUM, Chart, Visit, coded
from opengp.demo.dates import random_day, stamp, weekday_within

REPEAT_INFORMATION = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-MedicationRepeatInformation"
)
# GP Connect's convention is intent "plan" for the authorisation; OpenGP keeps "order" for
# both (the template is told apart by the extension and by having no basedOn).
TEMPLATE_INTENT = "order"
_COURSE = "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy"
CONTINUOUS = {
    "coding": [{"system": _COURSE, "code": "continuous", "display": "Continuous long term therapy"}]
}
ACUTE = {
    "coding": [{"system": _COURSE, "code": "acute", "display": "Short course (acute) therapy"}]
}
_CATEGORY = "http://terminology.hl7.org/CodeSystem/medicationrequest-category"
COMMUNITY = [{"coding": [{"system": _CATEGORY, "code": "community", "display": "Community"}]}]


@dataclass(frozen=True, slots=True)
class Drug:
    dosage: str
    quantity: int  # per supply of `days`
    unit: str
    days: int = 28
    as_needed: bool = False


DRUGS: dict[str, Drug] = {
    "amlodipine_5mg_tablets": Drug("One tablet once a day", 28, "tablet"),
    "ramipril_5mg_capsules": Drug("One capsule once a day", 28, "capsule"),
    "indapamide_2_5mg_tablets": Drug("One tablet each morning", 28, "tablet"),
    "metformin_500mg_tablets": Drug("One tablet twice a day with meals", 56, "tablet"),
    "gliclazide_80mg_tablets": Drug("One tablet twice a day with meals", 56, "tablet"),
    "insulin_glargine_100u_per_ml_pen": Drug(
        "Inject once a day at the same time, dose as directed by the diabetes team",
        5,
        "pre-filled disposable device",
        days=56,
    ),
    "salbutamol_100mcg_inhaler": Drug(
        "Two puffs when required for breathlessness or wheeze, up to four times a day",
        1,
        "inhaler",
        days=56,
        as_needed=True,
    ),
    "beclometasone_100mcg_inhaler": Drug(
        "Two puffs twice a day; rinse mouth after use", 1, "inhaler", days=49
    ),
    "tiotropium_inhaler": Drug(
        "Inhale the contents of one capsule once a day", 30, "capsule", days=30
    ),
    "atorvastatin_20mg_tablets": Drug("One tablet at night", 28, "tablet"),
    "apixaban_5mg_tablets": Drug("One tablet twice a day", 56, "tablet"),
    "bisoprolol_2_5mg_tablets": Drug("One tablet once a day", 28, "tablet"),
    "aspirin_75mg_dispersible_tablets": Drug(
        "One tablet once a day, dissolved in water", 28, "tablet"
    ),
    "clopidogrel_75mg_tablets": Drug("One tablet once a day", 28, "tablet"),
    "furosemide_40mg_tablets": Drug("One tablet each morning", 28, "tablet"),
    "sertraline_50mg_tablets": Drug("One tablet once a day", 28, "tablet"),
    "citalopram_20mg_tablets": Drug("One tablet once a day", 28, "tablet"),
    "donepezil_10mg_tablets": Drug("One tablet at night", 28, "tablet"),
    "levothyroxine_50mcg_tablets": Drug(
        "One tablet each morning, 30 minutes before breakfast", 28, "tablet"
    ),
    "paracetamol_500mg_tablets": Drug(
        "One or two tablets up to four times a day when required; no more than eight in 24 hours",
        100,
        "tablet",
        days=42,
        as_needed=True,
    ),
}
ACUTE_PARACETAMOL = Drug(
    "One or two tablets up to four times a day when required for pain", 32, "tablet", 7, True
)


@dataclass(slots=True)
class Repeat:
    drug: str
    condition: str
    start: date  # authorised (on or after registration)
    visit: Visit | None  # started in this consultation


def choose_repeats(chart: Chart) -> list[Repeat]:
    """The patient's repeat medication, and when each was first authorised here."""
    rng = chart.rng
    age = chart.age(chart.end)
    picks: list[tuple[str, str]] = []

    def give(drug: str, condition: str, chance: float) -> bool:
        given = rng.random() < chance
        if given and all(drug != d for d, _ in picks):
            picks.append((drug, condition))
        return given

    if chart.has("hypertension"):
        ccb_first = age >= 55 or chart.person.heritage == "black-african"
        first, second = "amlodipine_5mg_tablets", "ramipril_5mg_capsules"
        if not ccb_first:
            first, second = second, first
        give(first, "hypertension", 0.85)
        give(second, "hypertension", 0.35)
        give("indapamide_2_5mg_tablets", "hypertension", 0.15)
    if chart.has("type2_diabetes"):
        metformin = give("metformin_500mg_tablets", "type2_diabetes", 0.92)
        give("gliclazide_80mg_tablets", "type2_diabetes", 0.25 if metformin else 1.0)
        give("atorvastatin_20mg_tablets", "type2_diabetes", 0.75)
    if chart.has("type1_diabetes"):
        give("insulin_glargine_100u_per_ml_pen", "type1_diabetes", 1.0)
        give("atorvastatin_20mg_tablets", "type1_diabetes", 0.5)
    if chart.has("asthma"):
        give("salbutamol_100mcg_inhaler", "asthma", 0.95)
        give("beclometasone_100mcg_inhaler", "asthma", 0.65)
    if chart.has("copd"):
        give("salbutamol_100mcg_inhaler", "copd", 0.95)
        give("tiotropium_inhaler", "copd", 0.8)
    if chart.has("ckd"):
        give("ramipril_5mg_capsules", "ckd", 0.4)
        give("atorvastatin_20mg_tablets", "ckd", 0.6)
    anticoagulated = False
    if chart.has("atrial_fibrillation"):
        anticoagulated = give("apixaban_5mg_tablets", "atrial_fibrillation", 0.85)
        give("bisoprolol_2_5mg_tablets", "atrial_fibrillation", 0.6)
    if chart.has("coronary_heart_disease"):
        give(
            "aspirin_75mg_dispersible_tablets",
            "coronary_heart_disease",
            0 if anticoagulated else 0.75,
        )
        give("atorvastatin_20mg_tablets", "coronary_heart_disease", 0.9)
        give("bisoprolol_2_5mg_tablets", "coronary_heart_disease", 0.5)
    if chart.has("heart_failure"):
        give("furosemide_40mg_tablets", "heart_failure", 0.8)
        give("bisoprolol_2_5mg_tablets", "heart_failure", 0.7)
        give("ramipril_5mg_capsules", "heart_failure", 0.7)
    if chart.has("stroke"):
        give("clopidogrel_75mg_tablets", "stroke", 0 if anticoagulated else 0.8)
        give("atorvastatin_20mg_tablets", "stroke", 0.85)
    if chart.has("depression") and not give("sertraline_50mg_tablets", "depression", 0.4):
        give("citalopram_20mg_tablets", "depression", 0.3)
    if chart.has("anxiety"):
        give("sertraline_50mg_tablets", "anxiety", 0.25)
    if chart.has("dementia"):
        give("donepezil_10mg_tablets", "dementia", 0.5)
    if chart.has("hypothyroidism"):
        give("levothyroxine_50mcg_tablets", "hypothyroidism", 0.98)
    if chart.has("osteoarthritis"):
        give("paracetamol_500mg_tablets", "osteoarthritis", 0.35)

    repeats: list[Repeat] = []
    first_for: set[str] = set()
    registration = chart.summary.registration_date
    for drug, condition in picks:
        diagnosis = chart.diagnoses[condition]
        visit = None
        if condition not in first_for and diagnosis.visit is not None:
            visit = diagnosis.visit  # started when diagnosed
            start = visit.day
        elif condition not in first_for:
            start = diagnosis.onset + timedelta(days=rng.randint(0, 60))
        else:  # added later
            start = random_day(rng, diagnosis.onset, chart.end)
        first_for.add(condition)
        start = min(max(start, registration), chart.end)
        repeats.append(Repeat(drug, condition, start, visit))
        chart.drugs[drug] = start
    return repeats


def _supply(drug: Drug, multiple: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    dosage: dict[str, Any] = {"text": drug.dosage}
    if drug.as_needed:
        dosage["asNeededBoolean"] = True
    dispense = {
        "quantity": {"value": drug.quantity * multiple, "unit": drug.unit},
        "expectedSupplyDuration": {
            "value": drug.days * multiple,
            "unit": "day",
            "system": UCUM,
            "code": "d",
        },
    }
    return [dosage], dispense


def prescribe(chart: Chart, repeats: list[Repeat]) -> None:
    """The repeat templates and the prescriptions issued from them in the last year."""
    rng = chart.rng
    alive = chart.summary.death_date is None
    year_ago = chart.end - timedelta(days=365)
    for repeat in repeats:
        drug = DRUGS[repeat.drug]
        multiple = 2 if drug.days <= 30 and rng.random() < 0.35 else 1
        dosage, dispense = _supply(drug, multiple)
        interval = drug.days * multiple
        template_id = chart.new_id("MedicationRequest")
        based_on = [{"reference": f"MedicationRequest/{template_id}"}]
        medication = coded(repeat.drug)
        prescriber = repeat.visit.staff if repeat.visit else chart.usual_gp
        template: dict[str, Any] = {
            "resourceType": "MedicationRequest",
            "id": template_id,
            "status": "active" if alive else "stopped",
            "intent": TEMPLATE_INTENT,
            "category": COMMUNITY,
            "medicationCodeableConcept": medication,
            "subject": chart.subject,
        }
        if repeat.visit is not None:
            template["encounter"] = repeat.visit.ref
            template["authoredOn"] = repeat.visit.when
        else:
            template["authoredOn"] = stamp(repeat.start, 540 + 10 * rng.randrange(48))
        template["requester"] = chart.role(prescriber)
        template["reasonReference"] = [
            {"reference": f"Condition/{chart.diagnoses[repeat.condition].id}"}
        ]
        template["courseOfTherapyType"] = CONTINUOUS
        template["dosageInstruction"] = dosage
        template["dispenseRequest"] = dispense
        chart.add(template)

        first = max(repeat.start, year_ago, chart.start)
        day = repeat.start if repeat.start >= first else first + timedelta(rng.randrange(interval))
        issued = 0
        while day <= chart.end:
            issue_day = weekday_within(day, first, chart.end)
            issued += 1
            last = day + timedelta(days=interval) > chart.end
            chart.add(
                {
                    "resourceType": "MedicationRequest",
                    "id": chart.new_id("MedicationRequest"),
                    "status": "active" if last and alive else "completed",
                    "intent": "order",
                    "category": COMMUNITY,
                    "medicationCodeableConcept": medication,
                    "subject": chart.subject,
                    "authoredOn": stamp(issue_day, 540 + 10 * rng.randrange(48)),
                    "requester": chart.role(chart.gp()),
                    "basedOn": based_on,
                    "courseOfTherapyType": CONTINUOUS,
                    "dosageInstruction": dosage,
                    "dispenseRequest": dispense,
                }
            )
            day += timedelta(days=interval + rng.randint(-2, 6))
        template["extension"] = [
            {
                "url": REPEAT_INFORMATION,
                "extension": [{"url": "numberOfPrescriptionsIssued", "valueUnsignedInt": issued}],
            }
        ]


def acute_course(chart: Chart, visit: Visit, reason: str) -> None:
    """A short course of paracetamol issued in the consultation."""
    dosage, dispense = _supply(ACUTE_PARACETAMOL, 1)
    chart.add(
        {
            "resourceType": "MedicationRequest",
            "id": chart.new_id("MedicationRequest"),
            "status": "completed",
            "intent": "order",
            "category": COMMUNITY,
            "medicationCodeableConcept": coded("paracetamol_500mg_tablets"),
            "subject": chart.subject,
            "encounter": visit.ref,
            "authoredOn": visit.when,
            "requester": chart.role(visit.staff),
            "reasonCode": [{"text": reason}],
            "courseOfTherapyType": ACUTE,
            "dosageInstruction": dosage,
            "dispenseRequest": dispense,
        }
    )
