"""Long-term conditions at England's prevalence, rising with age, and their Conditions.

`PREVALENCE` holds the targets: the share of registered patients of the register's ages
(QOF 2023/24 registers, rounded; anxiety and osteoarthritis, which QOF does not count, from
their recorded prevalence in GP records). Each condition's risk follows its age profile
(`by_age`, relative risk from each age on) and sex ratio; the scale is calibrated at import
against the age pyramid of `people.AGE_BANDS`, so the all-ages totals land on the targets.

Conditions are drawn independently given age and sex (multimorbidity comes from age), from
their own random stream: `conditions_of` is cheap and is what the prevalence tests use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from typing import Any

from opengp.demo.chart import Chart, Diagnosis, coded
from opengp.demo.dates import YEAR_DAYS, age_on, weekday_within
from opengp.demo.model import DemoConfig, PatientSummary, stream
from opengp.demo.people import AGE_BANDS


@dataclass(frozen=True, slots=True)
class Prevalence:
    target: float  # share of the register's denominator
    min_age: int  # denominator: patients of this age and over
    by_age: tuple[tuple[int, float], ...]  # (from age, relative risk), ascending
    female: float = 1.0  # risk of women relative to men
    onset_age: int = 18  # earliest age at diagnosis
    duration: float = 8.0  # mean years since diagnosis


PREVALENCE: dict[str, Prevalence] = {
    "hypertension": Prevalence(
        0.148,
        0,
        ((0, 0), (18, 0.3), (30, 3), (40, 8), (50, 18), (60, 32), (70, 45), (80, 55)),
        0.95,
        duration=9,
    ),
    "type2_diabetes": Prevalence(
        0.069,
        17,
        ((17, 0.3), (30, 1.5), (40, 4), (50, 9), (60, 14), (70, 19), (80, 18)),
        0.8,
        duration=8,
    ),
    "type1_diabetes": Prevalence(0.008, 17, ((17, 1), (70, 0.6)), 0.85, onset_age=1, duration=18),
    "asthma": Prevalence(0.065, 6, ((6, 1.1), (20, 1), (65, 1.1)), 1.2, onset_age=2, duration=15),
    "copd": Prevalence(
        0.019,
        0,
        ((0, 0), (35, 0.2), (45, 1), (55, 3), (65, 6), (75, 9)),
        0.9,
        onset_age=35,
        duration=7,
    ),
    "ckd": Prevalence(
        0.044,
        18,
        ((18, 0.2), (40, 0.5), (50, 1.5), (60, 4), (70, 11), (80, 22), (90, 30)),
        1.3,
        duration=6,
    ),
    "atrial_fibrillation": Prevalence(
        0.022,
        0,
        ((0, 0), (30, 0.02), (40, 0.2), (50, 1), (60, 3), (70, 8), (80, 15), (90, 18)),
        0.8,
        duration=6,
    ),
    "coronary_heart_disease": Prevalence(
        0.030,
        0,
        ((0, 0), (35, 0.3), (45, 1.5), (55, 4), (65, 9), (75, 14), (85, 16)),
        0.55,
        duration=9,
    ),
    "heart_failure": Prevalence(
        0.011,
        0,
        ((0, 0), (30, 0.02), (45, 0.3), (55, 0.8), (65, 2.5), (75, 6), (85, 11), (90, 14)),
        0.8,
        duration=4,
    ),
    "stroke": Prevalence(
        0.019,
        0,
        ((0, 0), (18, 0.05), (30, 0.2), (45, 0.8), (55, 2), (65, 4.5), (75, 8), (85, 11)),
        0.9,
        duration=6,
    ),
    "depression": Prevalence(
        0.132,
        18,
        ((18, 12), (25, 15), (35, 16), (55, 14), (65, 11), (75, 10)),
        1.8,
        onset_age=14,
        duration=8,
    ),
    "anxiety": Prevalence(
        0.06, 18, ((18, 1.3), (35, 1.1), (55, 0.8), (75, 0.6)), 1.9, onset_age=14
    ),
    "dementia": Prevalence(
        0.008,
        0,
        ((0, 0), (60, 0.2), (65, 0.8), (70, 2), (75, 4.5), (80, 9), (85, 17), (90, 30)),
        1.3,
        onset_age=55,
        duration=3,
    ),
    "hypothyroidism": Prevalence(
        0.035,
        0,
        ((0, 0), (10, 0.1), (20, 1), (40, 3), (60, 6), (80, 7)),
        4.5,
        onset_age=10,
        duration=10,
    ),
    "osteoarthritis": Prevalence(
        0.07,
        0,
        ((0, 0), (35, 1), (45, 5), (55, 12), (65, 20), (75, 26)),
        1.4,
        onset_age=35,
        duration=7,
    ),
    "obesity": Prevalence(
        0.13,
        18,
        ((18, 0.6), (25, 0.9), (35, 1.1), (45, 1.2), (55, 1.25), (65, 1.2), (75, 0.9), (85, 0.6)),
        1.1,
        duration=6,
    ),
}

MAX_RISK = 0.9


def _relative(prevalence: Prevalence, age: int) -> float:
    if age < prevalence.min_age or age < prevalence.onset_age:
        return 0.0
    risk = 0.0
    for from_age, value in prevalence.by_age:
        if age < from_age:
            break
        risk = value
    return risk


def _single_years() -> list[tuple[int, float, float]]:
    """(age, weight, female share) for each year of age of the living population."""
    years: list[tuple[int, float, float]] = []
    for first, last, share, female, _ in AGE_BANDS:
        span = last - first
        # 90 and over: a triangular tail, as sampled
        weights = [span - a - 0.5 for a in range(span)] if first >= 90 else [1.0] * span
        total = sum(weights)
        years += [(first + a, share * w / total, female) for a, w in enumerate(weights)]
    return years


@cache
def _scales() -> dict[str, float]:
    """Per condition, the factor turning relative risk into probability so that the
    expected prevalence over the register's ages equals the target."""
    years = _single_years()
    scales: dict[str, float] = {}
    for key, prevalence in PREVALENCE.items():
        in_register = [(a, w, f) for a, w, f in years if a >= prevalence.min_age]
        denominator = sum(w for _, w, _ in in_register)
        scale = 0.01
        for _ in range(20):  # fixed point: the cap makes it slightly non-linear
            expected = sum(
                w
                * (
                    (1 - f) * min(MAX_RISK, scale * _relative(prevalence, a))
                    + f * min(MAX_RISK, scale * prevalence.female * _relative(prevalence, a))
                )
                for a, w, f in in_register
            )
            scale *= prevalence.target * denominator / expected
        scales[key] = scale
    return scales


def risk(key: str, age: int, sex: str) -> float:
    prevalence = PREVALENCE[key]
    factor = prevalence.female if sex == "female" else 1.0
    return min(MAX_RISK, _scales()[key] * factor * _relative(prevalence, age))


def conditions_of(config: DemoConfig, summary: PatientSummary) -> dict[str, date]:
    """The patient's long-term conditions and their onsets, in PREVALENCE order."""
    rng = stream(config, "conditions", summary.index)
    end = summary.death_date or config.as_of
    birth = summary.birth_date
    age = age_on(birth, end)
    onsets: dict[str, date] = {}
    for key, prevalence in PREVALENCE.items():
        draw = rng.random()
        if draw >= risk(key, age, summary.sex):
            continue
        years_with = rng.expovariate(1 / prevalence.duration)
        span = max(age - prevalence.onset_age, 0.1)
        onset = end - timedelta(days=int(min(years_with, span) * YEAR_DAYS))
        onsets[key] = max(onset, birth + timedelta(days=1))
    if "type1_diabetes" in onsets:
        onsets.pop("type2_diabetes", None)
    return onsets


_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
ACTIVE = {"coding": [{"system": _CLINICAL, "code": "active", "display": "Active"}]}
CONFIRMED = {"coding": [{"system": _VERIFICATION, "code": "confirmed", "display": "Confirmed"}]}
PROBLEM = {
    "coding": [{"system": _CATEGORY, "code": "problem-list-item", "display": "Problem List Item"}]
}

# What the diagnosing clinician wrote (Condition.note).
_DIAGNOSIS_NOTES = {
    "hypertension": "Raised clinic BP confirmed on ambulatory monitoring. Lifestyle advice given.",
    "type2_diabetes": "HbA1c in diabetic range on two occasions. Structured education offered.",
    "type1_diabetes": "New type 1 diabetes; shared care with the diabetes team.",
    "asthma": "Variable wheeze with reversibility on spirometry. Inhaler technique checked.",
    "copd": "Spirometry confirms obstruction. Smoking cessation discussed.",
    "ckd": "eGFR below 60 on repeat testing over 3 months. Urine ACR sent.",
    "atrial_fibrillation": "Irregularly irregular pulse, ECG confirms AF. CHA2DS2-VASc scored.",
    "coronary_heart_disease": "Exertional chest pain; cardiology assessment confirms angina.",
    "heart_failure": "Breathless with ankle oedema; raised NT-proBNP, echo requested.",
    "stroke": "Stroke confirmed on admission; secondary prevention started.",
    "depression": "Low mood and anhedonia for over two weeks. PHQ-9 completed; talking therapy.",
    "anxiety": "Persistent worry affecting sleep and work. GAD-7 completed; self-referral to "
    "talking therapies discussed.",
    "dementia": "Memory decline over a year; memory clinic diagnosis received.",
    "hypothyroidism": "Raised TSH with low free T4. Started on levothyroxine.",
    "osteoarthritis": "Mechanical joint pain with stiffness; clinical diagnosis of OA.",
    "obesity": "BMI over 30 discussed; weight management support offered.",
}

# Diagnoses that may be made by telephone.
_TELEPHONE_OK = frozenset({"depression", "anxiety", "obesity", "stroke", "dementia"})


def record_conditions(chart: Chart, onsets: dict[str, date]) -> None:
    """A Condition per long-term condition; one diagnosed in the window is diagnosed in a
    consultation on its onset day, and one older is recorded when the patient joined."""
    rng = chart.rng
    for key, onset in onsets.items():
        visit = None
        if onset >= chart.start:
            day = weekday_within(onset, chart.start, chart.end)
            mode = "consultation_face_to_face"
            if key in _TELEPHONE_OK and rng.random() < 0.3:
                mode = "telephone_consultation"
            reason = f"New diagnosis: {coded(key)['text'].lower()}"
            visit = chart.visit(day, "diagnosis", reason, chart.gp(), mode, (key,))
            onset = day
        recorded = visit.day if visit else max(onset, chart.summary.registration_date)
        diagnosis = Diagnosis(key, chart.new_id("Condition"), onset, recorded, visit)
        chart.diagnoses[key] = diagnosis
        chart.add(_condition(chart, diagnosis))


def _condition(chart: Chart, diagnosis: Diagnosis) -> dict[str, Any]:
    condition: dict[str, Any] = {
        "resourceType": "Condition",
        "id": diagnosis.id,
        "clinicalStatus": ACTIVE,
        "verificationStatus": CONFIRMED,
        "category": [PROBLEM],
        "code": coded(diagnosis.key),
        "subject": chart.subject,
    }
    visit = diagnosis.visit
    if visit is not None:
        condition["encounter"] = visit.ref
    condition["onsetDateTime"] = diagnosis.onset.isoformat()
    if visit is not None:
        condition["recordedDate"] = visit.when
        condition["recorder"] = chart.role(visit.staff)
        condition["note"] = [{"text": _DIAGNOSIS_NOTES[diagnosis.key]}]
    else:
        condition["recordedDate"] = diagnosis.recorded.isoformat()
        condition["recorder"] = chart.role(chart.usual_gp)
    return condition
