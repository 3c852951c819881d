"""One patient's whole record as FHIR R4 resources, shaped after UK Core.

`patient_record` yields the Patient, the registration (EpisodeOfCare) and any proxies
(RelatedPerson), then the consultations (Encounter), then what was recorded: Condition,
Observation, MedicationRequest, AllergyIntolerance, Immunization, ServiceRequest and
DocumentReference. References point within the patient's own resources and at the
practice's Organization, Location and PractitionerRole ids.

Dates: onsets may precede registration (history taken on joining); every recorded date
(recordedDate, effective, issued, authoredOn, occurrence, date) is on or after registration,
and none is after as_of or the day of death. Consultations, results, issues and
immunisations are generated over the history window only.

The parts draw, in a fixed order, from the patient's own random streams: the record is the
same for the same seed and index, whatever else is generated.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from opengp.demo.allergies import record_allergies
from opengp.demo.chart import Chart, Visit, coded, coding
from opengp.demo.conditions import conditions_of, record_conditions
from opengp.demo.consultations import after_discharge, consult
from opengp.demo.dates import stamp
from opengp.demo.immunisation import immunise
from opengp.demo.letters import admissions, emergency_attendances
from opengp.demo.medication import choose_repeats, prescribe
from opengp.demo.model import DemoConfig, PatientSummary, Practice
from opengp.demo.observations import Measurer
from opengp.demo.people import demographics

_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CLASSES = {
    "consultation_face_to_face": {"system": _ACT_CODE, "code": "AMB", "display": "ambulatory"},
    "telephone_consultation": {"system": _ACT_CODE, "code": "VR", "display": "virtual"},
    "video_consultation": {"system": _ACT_CODE, "code": "VR", "display": "virtual"},
    "home_visit": {"system": _ACT_CODE, "code": "HH", "display": "home health"},
}
_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
PRIMARY_PERFORMER = [
    {"coding": [{"system": _PARTICIPATION, "code": "PPRF", "display": "primary performer"}]}
]
PURPOSES = {
    "acute": {"text": "Consultation"},
    "review": {"text": "Long-term condition review"},
    "diagnosis": {"text": "Consultation"},
    "vaccination": {"text": "Immunisation"},
    "health-check": {"text": "NHS Health Check"},
    "new-patient": {"text": "New patient check"},
    "follow-up": {"text": "Post-discharge review"},
    "medication-review": {"text": "Medication review"},
}


def patient_record(
    config: DemoConfig, practice: Practice, summary: PatientSummary
) -> Iterator[dict[str, Any]]:
    """The patient's resources (about 60-120 for five years of history)."""
    person, resources = demographics(config, practice, summary)
    yield from resources
    chart = Chart(config, practice, summary, person)
    record_conditions(chart, conditions_of(config, summary))
    repeats = choose_repeats(chart)
    measurer = Measurer(chart)
    new_patient_check = consult(chart, measurer)
    record_allergies(chart, new_patient_check)
    immunise(chart)
    after_discharge(chart, admissions(chart))
    emergency_attendances(chart)
    prescribe(chart, repeats)
    site = _site(chart)
    for visit in sorted(chart.visits, key=_when):
        yield _encounter(chart, visit, site)
    yield from chart.entries


def _when(visit: Visit) -> tuple[Any, int]:
    return visit.day, visit.minute


def _site(chart: Chart) -> dict[str, Any] | None:
    sites = chart.practice.sites
    if not sites:
        return None
    site = sites[chart.summary.index % len(sites)]
    return {"location": {"reference": f"Location/{site.location_id}", "display": site.name}}


def _encounter(chart: Chart, visit: Visit, site: dict[str, Any] | None) -> dict[str, Any]:
    encounter: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": visit.id,
        "status": "finished",
        "class": CLASSES[visit.mode],
        "type": [coded(visit.mode), PURPOSES[visit.purpose]],
        "subject": chart.subject,
        "participant": [{"type": PRIMARY_PERFORMER, "individual": chart.role(visit.staff)}],
        "period": {"start": visit.when, "end": stamp(visit.day, visit.minute + visit.minutes)},
    }
    if len(visit.conditions) == 1:
        encounter["reasonCode"] = [{"coding": [coding(visit.conditions[0])], "text": visit.reason}]
    elif visit.conditions:
        encounter["reasonCode"] = [coded(k) for k in visit.conditions]
    else:
        encounter["reasonCode"] = [{"text": visit.reason}]
    if visit.conditions:
        encounter["reasonReference"] = [
            {"reference": f"Condition/{chart.diagnoses[k].id}"} for k in visit.conditions
        ]
    if site is not None and visit.mode == "consultation_face_to_face":
        encounter["location"] = [site]
    encounter["serviceProvider"] = chart.organization
    return encounter
