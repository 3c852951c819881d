"""Referrals out of the practice and the documents that come back: outpatient letters,
discharge summaries, pathology reports (DocumentReferences with a short plain-text body).

The hospital, its clinicians and every letter are fictional.
"""

from __future__ import annotations

import base64
from datetime import date, timedelta
from typing import Any

from opengp.demo.chart import Chart, Visit, coded
from opengp.demo.dates import random_day, stamp, weekday_within
from opengp.demo.people import TOWN
from opengp.terminology import SNOMED

HOSPITAL = f"{TOWN} General Hospital"
# SNOMED CT 3457005 |Patient referral (procedure)|, the category HL7's examples use.
REFERRAL = [{"coding": [{"system": SNOMED, "code": "3457005", "display": "Patient referral"}]}]

# referral key -> (service, clinician who replies, plans they write)
SERVICES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "referral_cardiology": (
        "Cardiology",
        "Dr H. Marsh, Consultant Cardiologist",
        (
            "Echocardiogram arranged; continue current medication.",
            "24-hour ECG normal; no cardiology follow-up needed.",
            "Exercise test arranged; please optimise blood pressure control.",
        ),
    ),
    "referral_diabetology": (
        "Diabetes",
        "Dr P. Lindqvist, Consultant Diabetologist",
        (
            "Medication adjusted; diabetes specialist nurse follow-up in 3 months.",
            "Structured education booked; continue current treatment.",
        ),
    ),
    "referral_physiotherapy": (
        "Physiotherapy",
        "A. Corbett, Senior Physiotherapist",
        (
            "Home exercise programme given; discharged with open access for 6 months.",
            "Six sessions completed with good improvement; discharged.",
        ),
    ),
    "referral_dermatology": (
        "Dermatology",
        "Dr S. Iyer, Consultant Dermatologist",
        (
            "Benign lesion; reassured and discharged.",
            "Topical treatment advised as below; review in clinic in 4 months.",
        ),
    ),
    "referral_mental_health": (
        "Community mental health",
        "Dr F. Quayle, Consultant Psychiatrist",
        (
            "Psychological therapy offered; no change to medication.",
            "Care coordinator allocated; crisis plan shared with the patient.",
        ),
    ),
    "referral_respiratory": (
        "Respiratory medicine",
        "Dr T. Adeyinka, Consultant Respiratory Physician",
        (
            "Spirometry confirms the diagnosis; inhalers optimised.",
            "CT chest unremarkable; continue current inhalers.",
        ),
    ),
}

# Why people are admitted: (reason, condition that makes it likely or None)
ADMISSIONS: tuple[tuple[str, str | None], ...] = (
    ("an infective exacerbation of COPD", "copd"),
    ("decompensated heart failure", "heart_failure"),
    ("fast atrial fibrillation", "atrial_fibrillation"),
    ("a fall at home", "dementia"),
    ("community-acquired pneumonia", None),
    ("a urinary tract infection with delirium", None),
    ("chest pain; acute coronary syndrome excluded", None),
    ("cellulitis of the leg", None),
)


# Emergency department attendances: (reason, youngest, oldest, condition or None)
ATTENDANCES: tuple[tuple[str, int, int, str | None], ...] = (
    ("a minor head injury", 0, 120, None),
    ("a febrile illness", 0, 15, None),
    ("a wrist injury; X-ray showed no fracture", 5, 120, None),
    ("an ankle sprain", 10, 120, None),
    ("a laceration to the hand, closed with adhesive strips", 5, 120, None),
    ("abdominal pain; observations normal", 10, 120, None),
    ("chest pain; ECG and troponin normal", 25, 120, None),
    ("renal colic", 20, 80, None),
    ("an asthma attack, treated with nebulisers", 6, 120, "asthma"),
    ("a fall; no injury found", 70, 120, None),
)


def _document(
    chart: Chart,
    kind: str,
    day: date,
    title: str,
    text: str,
    related: list[dict[str, str]] | None = None,
    period: tuple[date, date] | None = None,
) -> dict[str, Any]:
    when = stamp(day, 9 * 60 + 10 * chart.rng.randrange(48))
    document: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "id": chart.new_id("DocumentReference"),
        "status": "current",
        "type": coded(kind),
        "subject": chart.subject,
        "date": when,
        "custodian": chart.organization,
        "description": title,
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain",
                    "language": "en-GB",
                    "data": base64.b64encode(text.encode()).decode("ascii"),
                    "title": title,
                    "creation": when,
                }
            }
        ],
    }
    context: dict[str, Any] = {}
    if period is not None:
        context["period"] = {"start": period[0].isoformat(), "end": period[1].isoformat()}
    if related:
        context["related"] = related
    if context:
        document["context"] = context
    return chart.add(document)


def _heading(chart: Chart) -> str:
    person = chart.person
    birth = chart.summary.birth_date.strftime("%d/%m/%Y")
    return f"Re: {person.display}, born {birth}, NHS number {person.nhs_number}"


def refer(chart: Chart, visit: Visit, key: str, reason: str, condition: str | None = None) -> None:
    """A referral made in `visit`; when the patient has been seen before the end of the
    record, the clinic letter that came back."""
    rng = chart.rng
    urgent = rng.random() < 0.15
    seen = visit.day + timedelta(days=rng.randint(10, 14) if urgent else rng.randint(28, 100))
    completed = seen <= chart.end
    status = "completed" if completed else "active"
    if not completed and chart.summary.death_date is not None:
        status = "revoked"
    service, clinician, plans = SERVICES[key]
    request_id = chart.new_id("ServiceRequest")
    request: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": request_id,
        "status": status,
        "intent": "order",
        "category": REFERRAL,
        "priority": "urgent" if urgent else "routine",
        "code": coded(key),
        "subject": chart.subject,
        "encounter": visit.ref,
        "authoredOn": visit.when,
        "requester": chart.role(visit.staff),
        "performerType": {"text": f"{service} service, {HOSPITAL}"},
        "reasonCode": [{"text": reason}],
    }
    diagnosis = chart.diagnoses.get(condition) if condition else None
    if diagnosis is not None:
        request["reasonReference"] = [{"reference": f"Condition/{diagnosis.id}"}]
    request["note"] = [{"text": f"Referred to {service.lower()}: {reason.lower()}."}]
    chart.add(request)
    if not completed:
        return
    day = weekday_within(min(seen + timedelta(days=rng.randint(3, 12)), chart.end), seen, chart.end)
    gp = chart.usual_gp.name
    text = (
        f"{HOSPITAL}, {service} clinic, {seen.strftime('%d %B %Y')}\n"
        f"{_heading(chart)}\n\n"
        f"Dear {gp},\n"
        f"Thank you for referring this patient with {reason.lower()}. "
        f"{rng.choice(plans)}\n\n"
        f"Yours sincerely,\n{clinician}\n"
    )
    title = f"{service} clinic letter"
    related = [{"reference": f"ServiceRequest/{request_id}"}]
    _document(chart, "outpatient_letter", day, title, text, related, (seen, seen))


def pathology_report(chart: Chart, results: list[dict[str, Any]]) -> None:
    """The laboratory's report of a set of results, filed with them."""
    if not results:
        return
    lines = []
    for result in results:
        value = result["valueQuantity"]
        comparator = value.get("comparator", "")
        lines.append(f"{result['code']['text']}: {comparator}{value['value']} {value['unit']}")
    issued = result["issued"]
    day = date.fromisoformat(issued[:10])
    text = (
        f"{HOSPITAL} Pathology\n{_heading(chart)}\n"
        f"Sample taken {results[0]['effectiveDateTime'][:10]}\n\n" + "\n".join(lines) + "\n"
    )
    related = [{"reference": f"Observation/{r['id']}"} for r in results]
    _document(chart, "pathology_report", day, "Blood test results", text, related)


def admissions(chart: Chart) -> list[date]:
    """Hospital stays in the window, each with its discharge summary; returns discharge days
    (the practice calls the patient afterwards)."""
    rng = chart.rng
    age = chart.age(chart.end)
    rate = 0.01 + (0.03 if age >= 65 else 0) + (0.06 if age >= 80 else 0)
    rate += 0.06 * sum(chart.has(k) for k in ("heart_failure", "copd", "stroke", "dementia"))
    years = (chart.end - chart.start).days / 365.25
    discharged: list[date] = []
    expected = rate * years
    count = int(expected) + (rng.random() < expected - int(expected))
    first = chart.start + timedelta(days=10)  # the whole stay after joining the list
    if first > chart.end:
        return discharged
    for _ in range(count):
        day = random_day(rng, first, chart.end)
        stay = rng.randint(1, 10)
        admitted = day - timedelta(days=stay)
        candidates = [r for r, c in ADMISSIONS if c is None or chart.has_by(day, c)]
        reason = rng.choice(candidates)
        text = (
            f"{HOSPITAL} discharge summary\n{_heading(chart)}\n\n"
            f"Admitted {admitted.strftime('%d/%m/%Y')} with {reason}; "
            f"discharged home {day.strftime('%d/%m/%Y')}.\n"
            "Medication changes: none.\n"
            "GP actions: please review within two weeks of discharge.\n"
        )
        filed = min(day + timedelta(days=rng.randint(0, 3)), chart.end)
        title = "Discharge summary"
        _document(chart, "discharge_summary", filed, title, text, None, (admitted, day))
        discharged.append(day)
    return discharged


def _attendance_rate(age: int) -> float:
    """Emergency department attendances a year (England: about 0.4 a person)."""
    if age < 5:
        return 0.5
    if age < 16:
        return 0.25
    if age < 65:
        return 0.28
    return 0.35 if age < 80 else 0.7


def emergency_attendances(chart: Chart) -> None:
    """Emergency department visits in the window, each with the department's letter."""
    rng = chart.rng
    middle = chart.start + (chart.end - chart.start) / 2
    expected = _attendance_rate(chart.age(middle)) * (chart.end - chart.start).days / 365.25
    count = int(expected) + (rng.random() < expected - int(expected))
    for _ in range(count):
        day = random_day(rng, chart.start, chart.end)
        age = chart.age(day)
        options = [
            reason
            for reason, youngest, oldest, condition in ATTENDANCES
            if youngest <= age <= oldest and (condition is None or chart.has_by(day, condition))
        ]
        reason = rng.choice(options)
        text = (
            f"{HOSPITAL} emergency department\n{_heading(chart)}\n\n"
            f"Attended {day.strftime('%d/%m/%Y')} with {reason}. Discharged home.\n"
            "GP actions: none.\n"
        )
        filed = min(day + timedelta(days=rng.randint(0, 2)), chart.end)
        title = "Emergency department discharge letter"
        _document(chart, "discharge_summary", filed, title, text, None, (day, day))
