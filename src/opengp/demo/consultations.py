"""Consultations over the window, and what is recorded in them.

- New patient check (a healthcare assistant, within weeks of joining): BP, height, weight,
  smoking, allergies.
- Long-term condition reviews, yearly in the birth month (diabetes six-monthly), bloods a
  week before: BP, weight and BMI, smoking, peak flow; HbA1c, cholesterol, eGFR and
  creatinine as the conditions call for, with the laboratory's report.
- NHS Health Checks for those 40-74 without vascular disease (every five years, when they
  take up the invitation).
- Acute consultations at rates rising with age, sex (women consult more between 16 and 64)
  and the number of long-term conditions: face to face, by telephone or video, and home
  visits for the frail; some lead to a referral or a short course of paracetamol.
- A telephone review after each hospital discharge.
- A yearly medication review for those on repeat medication that no long-term condition
  review covers (by a pharmacist or GP, often by telephone).

Free text: the reason for a consultation is `Encounter.reasonCode.text`; what the clinician
wrote goes in `note` on the coded entries made in it (Condition, Observation,
ServiceRequest). Encounter has no note of its own, and a Composition per consultation
would double the record for little gain.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from itertools import accumulate

from opengp.demo.chart import Chart, Visit
from opengp.demo.dates import YEAR_DAYS, add_years, random_day, weekday_within
from opengp.demo.letters import pathology_report, refer
from opengp.demo.medication import acute_course
from opengp.demo.observations import Measurer
from opengp.demo.reasons import REASONS, Reason

REVIEWED = (
    "hypertension",
    "type2_diabetes",
    "type1_diabetes",
    "asthma",
    "copd",
    "ckd",
    "atrial_fibrillation",
    "coronary_heart_disease",
    "heart_failure",
    "stroke",
    "dementia",
    "hypothyroidism",
)
DIABETES = ("type2_diabetes", "type1_diabetes")
NURSE_LED = frozenset({"hypertension", "type2_diabetes", "type1_diabetes", "asthma", "copd", "ckd"})
VASCULAR = (
    "hypertension",
    "type2_diabetes",
    "type1_diabetes",
    "coronary_heart_disease",
    "stroke",
    "ckd",
    "atrial_fibrillation",
    "heart_failure",
)
CHOLESTEROL_FOR = ("type2_diabetes", "type1_diabetes", "coronary_heart_disease", "stroke", "ckd")
KIDNEYS_FOR = (
    "type2_diabetes",
    "type1_diabetes",
    "ckd",
    "hypertension",
    "heart_failure",
    "atrial_fibrillation",
)
REVIEW_REFERRALS = (
    (DIABETES, "referral_diabetology", 0.03),
    (
        ("coronary_heart_disease", "heart_failure", "atrial_fibrillation"),
        "referral_cardiology",
        0.03,
    ),
    (("asthma", "copd"), "referral_respiratory", 0.03),
)


# Modes of acute consultations: (mode, weight); home visits only for the frail.
MODES = (
    ("consultation_face_to_face", 0.62),
    ("telephone_consultation", 0.32),
    ("video_consultation", 0.03),
)
_MODE_NAMES = [m for m, _ in MODES]
_MODE_WEIGHTS = list(accumulate(w for _, w in MODES))
_REQUIRED = frozenset(r.requires for r in REASONS if r.requires)


# Measurements taken in passing at face-to-face consultations with adults.
OPPORTUNISTIC = (("bp", 0.2), ("weight", 0.08), ("smoking", 0.2))


def _poisson(rng: random.Random, mean: float) -> int:
    count, total = 0, rng.expovariate(1.0)
    while total < mean:
        count += 1
        total += rng.expovariate(1.0)
    return count


def _acute_rate(age: int, female: bool, conditions: int) -> float:
    """Acute consultations a year with any clinician. With reviews, immunisations and
    checks, about 5.5 consultations a patient a year: England's general practice
    appointments (NHS Digital, 2023-24) over its registered list."""
    if age < 1:
        base = 7.0
    elif age < 5:
        base = 4.5
    elif age < 16:
        base = 2.2
    elif age < 45:
        base = 3.8 if female else 2.0
    elif age < 65:
        base = 4.0 if female else 3.0
    elif age < 75:
        base = 4.8
    elif age < 85:
        base = 6.0
    else:
        base = 7.0
    return 1.25 * base + 0.5 * conditions


def consult(chart: Chart, measurer: Measurer) -> Visit | None:
    """Plan and record the consultations; returns the new patient check, if any."""
    new_patient = _new_patient_check(chart, measurer)
    _at_diagnosis(chart, measurer)
    _reviews(chart, measurer)
    _health_checks(chart, measurer)
    _acute(chart, measurer)
    _medication_reviews(chart)
    return new_patient


def _lab_day(chart: Chart, day: date) -> date:
    """Bloods about a week before a review."""
    taken = day - timedelta(days=chart.rng.randint(5, 10))
    if taken < chart.start:
        return day
    return weekday_within(taken, chart.start, day)


def _bloods(
    chart: Chart, measurer: Measurer, day: date, tests: list[str], diagnostic: bool = False
) -> None:
    if tests:
        pathology_report(chart, measurer.labs(_lab_day(chart, day), tests, diagnostic))


def _new_patient_check(chart: Chart, measurer: Measurer) -> Visit | None:
    rng = chart.rng
    joined = chart.summary.registration_date
    if joined < chart.history_start or chart.age(joined) < 16 or rng.random() >= 0.7:
        return None
    day = joined + timedelta(days=rng.randint(5, 28))
    if day > chart.end:
        return None
    day = weekday_within(day, joined, chart.end)
    visit = chart.visit(
        day, "new-patient", "New patient health check", rng.choice(chart.team.assistants)
    )
    visit.minutes = 20
    measurer.at_visit(
        visit, ("bp", "height", "weight", "smoking"), "New patient registration check."
    )
    return visit


def _at_diagnosis(chart: Chart, measurer: Measurer) -> None:
    for key, diagnosis in list(chart.diagnoses.items()):
        visit = diagnosis.visit
        if visit is None:
            continue
        if key in DIABETES:
            _bloods(chart, measurer, visit.day, ["hba1c"], diagnostic=True)
        elif key == "ckd":
            _bloods(chart, measurer, visit.day, ["egfr", "serum_creatinine"], diagnostic=True)
        elif key in ("hypertension", "atrial_fibrillation"):
            measurer.at_visit(visit, ("bp",))
        elif key in ("asthma", "copd"):
            measurer.at_visit(visit, ("peak_flow", "smoking"))
        elif key in ("obesity", "heart_failure"):
            measurer.at_visit(visit, ("weight",))


def _reviews(chart: Chart, measurer: Measurer) -> None:
    rng = chart.rng
    keys = [k for k in REVIEWED if k in chart.diagnoses]
    if not keys:
        return
    onset = min(chart.diagnoses[k].onset for k in keys)
    first = chart.start if onset < chart.start else onset + timedelta(days=60)
    birth = chart.summary.birth_date
    diabetic = any(k in DIABETES for k in keys)
    planned: list[tuple[date, bool]] = []
    for year in range(first.year, chart.end.year + 1):
        anchor = date(year, birth.month, 1) + timedelta(days=rng.randint(0, 45))
        planned.append((anchor, False))
        if diabetic:
            planned.append((anchor + timedelta(days=182), True))
    held = [(d, interim) for d, interim in planned if first <= d <= chart.end]
    undiagnosed_here = any(chart.diagnoses[k].visit is None for k in keys)
    if not held and undiagnosed_here:  # joined recently: one review before the end
        held = [(random_day(rng, chart.start, chart.end), False)]
    for day, interim in held:
        day = weekday_within(day, chart.start, chart.end)
        due = tuple(k for k in keys if chart.has_by(day, k))
        if due:
            _review(chart, measurer, day, due, interim)


def _review(
    chart: Chart, measurer: Measurer, day: date, keys: tuple[str, ...], interim: bool
) -> None:
    rng = chart.rng
    team = chart.team
    tests: list[str] = []
    if any(k in DIABETES for k in keys):
        tests.append("hba1c")
    if not interim:
        if any(k in CHOLESTEROL_FOR for k in keys) or (
            "hypertension" in keys and rng.random() < 0.6
        ):
            tests.append("total_cholesterol")
        if any(k in KIDNEYS_FOR for k in keys):
            tests += ["egfr", "serum_creatinine"]
    _bloods(chart, measurer, day, tests)

    if "dementia" in keys or not NURSE_LED.intersection(keys):
        staff = chart.gp()
    elif rng.random() < 0.15:
        staff = rng.choice(team.pharmacists)
    else:
        staff = rng.choice(team.nurses)
    mode = "telephone_consultation" if rng.random() < 0.15 else "consultation_face_to_face"
    frail = "dementia" in keys or chart.age(day) >= 90
    if frail and rng.random() < 0.4:
        mode = "home_visit"
    label = "Diabetes interim review" if interim else "Long-term condition review"
    visit = chart.visit(day, "review", label, staff, mode, keys)
    visit.minutes = 30 if mode == "home_visit" else 20
    measures: list[str] = []
    if any(k in VASCULAR for k in keys) or rng.random() < 0.5:
        measures.append("bp")
    if mode != "telephone_consultation":
        measures.append("weight")
    if not interim:
        measures.append("smoking")
        if "asthma" in keys or "copd" in keys:
            measures.append("peak_flow")
    note = (
        "Home BP reading reported by the patient. Medication reviewed and reauthorised."
        if mode == "telephone_consultation"
        else "Reviewed; medication reauthorised. Next review in 12 months."
    )
    measurer.at_visit(visit, measures, note)
    for conditions, referral, chance in REVIEW_REFERRALS:
        linked = next((k for k in conditions if k in keys), None)
        if linked and rng.random() < chance:
            refer(chart, visit, referral, "Specialist review requested at annual review", linked)


def _health_checks(chart: Chart, measurer: Measurer) -> None:
    rng = chart.rng
    if chart.has(*VASCULAR):
        return
    birth = chart.summary.birth_date
    first = max(chart.start, add_years(birth, 40))
    last = min(chart.end, add_years(birth, 74.9))
    if first > last:
        return
    if rng.random() >= (last - first).days / YEAR_DAYS / 5 * 0.45:
        return
    day = weekday_within(random_day(rng, first, last), first, last)
    _bloods(chart, measurer, day, ["total_cholesterol", "hba1c"])
    visit = chart.visit(day, "health-check", "NHS Health Check", rng.choice(chart.team.assistants))
    visit.minutes = 30
    measurer.at_visit(
        visit, ("bp", "height", "weight", "smoking"), "NHS Health Check; QRISK discussed."
    )


def _acute(chart: Chart, measurer: Measurer) -> None:
    rng = chart.rng
    summary = chart.summary
    female = summary.sex == "female"
    years = (chart.end - chart.start).days / YEAR_DAYS
    middle = chart.start + (chart.end - chart.start) / 2
    conditions = sum(1 for k in chart.diagnoses if k != "obesity")
    count = _poisson(rng, _acute_rate(chart.age(middle), female, conditions) * years)
    team = chart.team
    # Reasons open to the patient depend on age and on conditions diagnosed by then.
    own = [d for d in chart.diagnoses.values() if d.key in _REQUIRED]
    menus: dict[tuple[int, tuple[str, ...]], tuple[list[Reason], list[float]]] = {}
    for _ in range(count):
        day = weekday_within(random_day(rng, chart.start, chart.end), chart.start, chart.end)
        age = chart.age(day)
        present = tuple(d.key for d in own if d.onset <= day)
        menu = menus.get((age, present))
        if menu is None:
            options = [
                r
                for r in REASONS
                if r.ages[0] <= age <= r.ages[1]
                and (r.sex is None or r.sex == summary.sex)
                and (r.requires is None or r.requires in present)
            ]
            menu = menus[age, present] = (options, list(accumulate(r.weight for r in options)))
        reason = rng.choices(menu[0], cum_weights=menu[1])[0]
        if reason.staff == "pharmacist":
            staff = rng.choice(team.pharmacists)
        elif reason.staff == "nurse":
            staff = rng.choice(team.nurses)
        else:
            staff = chart.gp()
        mode = rng.choices(_MODE_NAMES, cum_weights=_MODE_WEIGHTS)[0]
        if (age >= 80 or chart.has_by(day, "dementia")) and rng.random() < 0.15:
            mode = "home_visit"
        linked = (reason.requires,) if reason.requires else ()
        visit = chart.visit(day, "acute", reason.text, staff, mode, linked)
        if mode == "home_visit":
            visit.minutes = 30
        in_person = mode in ("consultation_face_to_face", "home_visit")
        measures = list(reason.measure) if in_person else []
        if in_person and age >= 18:  # opportunistic
            for item, chance in OPPORTUNISTIC:
                if item not in measures and rng.random() < chance:
                    measures.append(item)
        measurer.at_visit(visit, measures, f"{reason.text}. {reason.note}")
        if reason.bloods and rng.random() < reason.bloods_chance:
            taken = day + timedelta(days=rng.randint(2, 7))
            if taken <= chart.end:
                taken = weekday_within(taken, day, chart.end)
                pathology_report(chart, measurer.labs(taken, reason.bloods))
        if reason.referral and rng.random() < reason.referral_chance:
            refer(chart, visit, reason.referral, reason.text, reason.requires)
        if (
            reason.paracetamol
            and staff.kind not in ("nurse", "hca")
            and rng.random() < reason.paracetamol
        ):
            acute_course(chart, visit, reason.text)


def after_discharge(chart: Chart, discharged: list[date]) -> None:
    rng = chart.rng
    for day in discharged:
        call = day + timedelta(days=rng.randint(2, 10))
        if call <= chart.end:
            call = weekday_within(call, day, chart.end)
            chart.visit(
                call, "follow-up", "Post-discharge review", chart.gp(), "telephone_consultation"
            )


def _medication_reviews(chart: Chart) -> None:
    """Yearly, for repeats prescribed for conditions without a long-term condition review
    (depression, anxiety, osteoarthritis); the review covers the rest."""
    if not chart.drugs or chart.has(*REVIEWED):
        return
    rng = chart.rng
    team = chart.team
    first = max(chart.start, min(chart.drugs.values()) + timedelta(days=90))
    day = first + timedelta(days=rng.randint(0, 365))
    while day <= chart.end:
        day = weekday_within(day, first, chart.end)
        staff = rng.choice(team.pharmacists) if rng.random() < 0.5 else chart.gp()
        mode = "telephone_consultation" if rng.random() < 0.6 else "consultation_face_to_face"
        chart.visit(day, "medication-review", "Medication review", staff, mode)
        day += timedelta(days=rng.randint(330, 400))
