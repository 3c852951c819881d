"""Measurements and test results that fit the patient: Observations in UCUM units.

Each patient has steady underlying values (height, BMI, blood pressure, HbA1c, cholesterol,
kidney function, smoking) chosen to agree with their conditions: the obese have a BMI of 30
or more and nobody else does; diabetics have HbA1c of 44 mmol/mol and over, others under 48;
CKD stage 3-5 means an eGFR under 60. Each reading varies around the underlying value.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from opengp.demo.chart import UCUM, Chart, Visit, coded
from opengp.demo.dates import stamp, weekday_within

_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def _category(code: str, display: str) -> list[dict[str, Any]]:
    return [{"coding": [{"system": _CATEGORY, "code": code, "display": display}]}]


VITAL_SIGNS = _category("vital-signs", "Vital Signs")
LABORATORY = _category("laboratory", "Laboratory")
SOCIAL_HISTORY = _category("social-history", "Social History")
EXAM = _category("exam", "Exam")

_UNITS = {
    "mm[Hg]": "mmHg",
    "mmol/mol": "mmol/mol",
    "kg/m2": "kg/m2",
    "kg": "kg",
    "cm": "cm",
    "mmol/L": "mmol/L",
    "mL/min/{1.73_m2}": "mL/min/1.73m2",
    "umol/L": "umol/L",
    "L/min": "L/min",
}

# Which lab tests a review's bloods include.
LAB_TESTS = ("hba1c", "total_cholesterol", "egfr", "serum_creatinine")


def quantity(value: float, code: str) -> dict[str, Any]:
    return {"value": value, "unit": _UNITS[code], "system": UCUM, "code": code}


def _clamp(value: float, low: float, high: float) -> float:
    return low if value < low else high if value > high else value


class Measurer:
    """The patient's underlying values, and Observations of them."""

    def __init__(self, chart: Chart) -> None:
        self.chart = chart
        rng = chart.rng
        female = chart.summary.sex == "female"
        age = chart.age(chart.end)
        self.height = rng.gauss(162.0, 6.5) if female else rng.gauss(175.5, 7.0)
        if age >= 70:
            self.height -= 2.0
        if chart.has("obesity"):
            self.bmi = min(55.0, 30.3 + rng.expovariate(1 / 4.5))
        else:
            self.bmi = _clamp(rng.gauss(25.3, 3.0), 17.5, 29.5)
        if chart.has("hypertension"):
            self.systolic = rng.gauss(139.0, 9.0)
            self.diastolic = rng.gauss(83.0, 6.0)
        else:
            self.systolic = min(134.0, rng.gauss(114.0 + 0.3 * max(0, age - 30), 9.0))
            self.diastolic = min(85.0, rng.gauss(74.0, 6.0))
        self.diabetic = chart.has("type2_diabetes", "type1_diabetes")
        if chart.has("type2_diabetes"):
            self.hba1c = _clamp(rng.gauss(56.0, 9.0), 46.0, 95.0)
        elif chart.has("type1_diabetes"):
            self.hba1c = _clamp(rng.gauss(66.0, 10.0), 50.0, 100.0)
        else:
            self.hba1c = _clamp(rng.gauss(37.0, 3.0), 30.0, 44.0)
        self.cholesterol = _clamp(rng.gauss(5.3, 0.9), 3.2, 8.5)
        self.ckd = chart.has("ckd")
        if self.ckd:
            stage = rng.random()
            if stage < 0.62:
                self.egfr = rng.uniform(46.0, 58.0)
            elif stage < 0.9:
                self.egfr = rng.uniform(31.0, 44.0)
            elif stage < 0.98:
                self.egfr = rng.uniform(16.0, 29.0)
            else:
                self.egfr = rng.uniform(9.0, 14.0)
        else:
            self.egfr = max(64.0, rng.gauss(112.0 - 0.65 * age, 9.0))
        self.smoking = self._smoking(age)
        self.peak_flow = self._predicted_peak_flow(age, female)
        if chart.has("copd"):
            self.peak_flow *= rng.uniform(0.4, 0.75)
        elif chart.has("asthma"):
            self.peak_flow *= rng.uniform(0.7, 0.95)
        self._smoking_years: set[int] = set()

    def _smoking(self, age: int) -> str | None:
        if age < 16:
            return None
        draw = self.chart.rng.random()
        if self.chart.has("copd"):
            current, ex = 0.35, 0.6
        else:
            current = 0.14 if age < 65 else 0.08
            ex = 0.18 if age < 45 else 0.3 if age < 65 else 0.42
        if draw < current:
            return "current_smoker"
        return "ex_smoker" if draw < current + ex else "never_smoked"

    def _predicted_peak_flow(self, age: int, female: bool) -> float:
        if age < 16:
            return max(150.0, 5.2 * (75 + 6.2 * age) - 400)
        if female:
            return 450 - 2.0 * max(0, age - 30) + 3 * (self.height - 162)
        return 600 - 2.5 * max(0, age - 30) + 3 * (self.height - 175.5)

    # --- observations --------------------------------------------------------------------

    def _observation(
        self,
        key: str,
        category: list[dict[str, Any]],
        when: str,
        visit: Visit | None,
        note: str | None = None,
    ) -> dict[str, Any]:
        chart = self.chart
        observation: dict[str, Any] = {
            "resourceType": "Observation",
            "id": chart.new_id("Observation"),
            "status": "final",
            "category": category,
            "code": coded(key),
            "subject": chart.subject,
        }
        if visit is not None:
            observation["encounter"] = visit.ref
        observation["effectiveDateTime"] = when
        if visit is not None:
            observation["performer"] = [chart.role(visit.staff)]
        if note:
            observation["note"] = [{"text": note}]
        return chart.add(observation)

    def at_visit(self, visit: Visit, what: Iterable[str], note: str | None = None) -> None:
        """Record measurements taken in a consultation: bp, weight (with BMI), height,
        smoking, peak_flow; `note` goes on the first."""
        rng = self.chart.rng
        for item in what:
            if item == "bp":
                systolic = round(_clamp(self.systolic + rng.gauss(0, 7), 88, 210))
                diastolic = round(
                    _clamp(self.diastolic + rng.gauss(0, 5), 48, min(125, systolic - 25))
                )
                observation = self._observation(
                    "blood_pressure", VITAL_SIGNS, visit.when, visit, note
                )
                observation["component"] = [
                    {"code": coded("systolic_bp"), "valueQuantity": quantity(systolic, "mm[Hg]")},
                    {"code": coded("diastolic_bp"), "valueQuantity": quantity(diastolic, "mm[Hg]")},
                ]
            elif item == "weight":
                if self.chart.age(visit.day) < 18:
                    continue
                bmi = self.bmi + rng.gauss(0, 0.5)
                bmi = max(bmi, 30.0) if self.bmi >= 30 else min(bmi, 29.8)
                weight = bmi * (self.height / 100) ** 2
                self._observation("body_weight", VITAL_SIGNS, visit.when, visit, note)[
                    "valueQuantity"
                ] = quantity(round(weight, 1), "kg")
                self._observation("bmi", VITAL_SIGNS, visit.when, visit)["valueQuantity"] = (
                    quantity(round(bmi, 1), "kg/m2")
                )
            elif item == "height":
                if self.chart.age(visit.day) < 18:
                    continue
                self._observation("body_height", VITAL_SIGNS, visit.when, visit, note)[
                    "valueQuantity"
                ] = quantity(round(self.height), "cm")
            elif item == "smoking":
                if self.smoking is None or visit.day.year in self._smoking_years:
                    continue
                self._smoking_years.add(visit.day.year)
                self._observation("smoking_status", SOCIAL_HISTORY, visit.when, visit, note)[
                    "valueCodeableConcept"
                ] = coded(self.smoking)
            elif item == "peak_flow":
                if self.chart.age(visit.day) < 6:
                    continue
                value = round(self.peak_flow * rng.uniform(0.9, 1.08) / 10) * 10
                self._observation("peak_flow", EXAM, visit.when, visit, note)["valueQuantity"] = (
                    quantity(value, "L/min")
                )
            else:
                raise ValueError(f"unknown measurement {item!r}")
            note = None

    def labs(
        self, day: date, tests: Iterable[str], diagnostic: bool = False
    ) -> list[dict[str, Any]]:
        """Blood results for a sample taken on `day`, reported that afternoon or the next
        working day (never after the end of the record); `diagnostic` bloods confirm the
        diagnosis made on them."""
        chart = self.chart
        rng = chart.rng
        taken = stamp(day, 480 + 10 * rng.randrange(24))
        reported = weekday_within(day + timedelta(days=rng.randint(0, 1)), day, chart.end)
        issued = stamp(min(reported, chart.end), 14 * 60 + 10 * rng.randrange(24))
        egfr = self.egfr + rng.gauss(0, 2.5)  # under 60 is CKD; creatinine agrees with it
        egfr = _clamp(egfr, 5.0, 59.0) if self.ckd else max(egfr, 61.0)
        results: list[dict[str, Any]] = []
        for test in tests:
            observation = self._observation(test, LABORATORY, taken, None)
            observation["issued"] = issued
            if test == "hba1c":  # 48 and over is diabetes
                low, high = (48, 130) if diagnostic else (40, 130) if self.diabetic else (28, 47)
                hba1c = round(_clamp(self.hba1c + rng.gauss(0, 4), low, high))
                value: Any = quantity(hba1c, "mmol/mol")
            elif test == "total_cholesterol":
                level = self.cholesterol * (
                    0.78 if "atorvastatin_20mg_tablets" in chart.drugs else 1
                )
                value = quantity(round(_clamp(level + rng.gauss(0, 0.3), 2.0, 10.0), 1), "mmol/L")
            elif test == "egfr":  # reported as ">90" above 90
                value = quantity(min(90, round(egfr)), "mL/min/{1.73_m2}")
                if egfr > 90:
                    value["comparator"] = ">"
            elif test == "serum_creatinine":
                value = quantity(round(self._creatinine(egfr)), "umol/L")
            else:
                raise ValueError(f"unknown test {test!r}")
            observation["valueQuantity"] = value
            results.append(observation)
        return results

    def _creatinine(self, egfr: float) -> float:
        """Serum creatinine giving `egfr` by the MDRD equation (umol/L)."""
        age = max(18, self.chart.age(self.chart.end))
        sex = 0.742 if self.chart.summary.sex == "female" else 1.0
        return float(88.4 * (egfr / (175 * age**-0.203 * sex)) ** (-1 / 1.154))
