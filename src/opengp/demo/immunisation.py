"""Immunisations: the routine childhood schedule, seasonal flu, pneumococcal and shingles.

The UK schedule (Green Book, 2020s): 6-in-1 at 8, 12 and 16 weeks with MenB (8 and 16
weeks), rotavirus (8 and 12 weeks) and PCV (12 weeks); at one year Hib/MenC, MMR, PCV and
MenB boosters; at 3 years 4 months MMR2 and the 4-in-1 pre-school booster; at school HPV
(12-13) and Td/IPV with MenACWY (14), given by the school service and recorded from its
report. Flu every autumn for those 65 and over and adults in clinical risk groups (about
seven in ten take it up, mostly the same people each year) and for children of 2 and 3;
PPV23 at 65; shingles at 70 (two doses of Shingrix from September 2023).

Only what falls in the record's window is recorded: earlier doses are history before it.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from opengp.demo.chart import Chart, Visit, coded
from opengp.demo.dates import add_years, random_day, weekday_from, weekday_within

# (age in days, reason, ((vaccine, dose number), ...))
CHILDHOOD: tuple[tuple[int, str, tuple[tuple[str, int], ...]], ...] = (
    (
        56,
        "8 week",
        (("dtap_ipv_hib_hepb_vaccine", 1), ("menb_vaccine", 1), ("rotavirus_vaccine", 1)),
    ),
    (
        84,
        "12 week",
        (
            ("dtap_ipv_hib_hepb_vaccine", 2),
            ("pneumococcal_conjugate_vaccine", 1),
            ("rotavirus_vaccine", 2),
        ),
    ),
    (112, "16 week", (("dtap_ipv_hib_hepb_vaccine", 3), ("menb_vaccine", 2))),
    (
        365,
        "1 year",
        (
            ("hib_menc_vaccine", 1),
            ("mmr_vaccine", 1),
            ("pneumococcal_conjugate_vaccine", 2),
            ("menb_vaccine", 3),
        ),
    ),
    (1218, "pre-school", (("mmr_vaccine", 2), ("dtap_ipv_vaccine", 1))),
)
SCHOOL: tuple[tuple[float, tuple[tuple[str, int], ...]], ...] = (
    (12.6, (("hpv_vaccine", 1),)),
    (14.4, (("td_ipv_vaccine", 1), ("menacwy_vaccine", 1))),
)
SCHOOL_SERVICE = {"text": "School-aged immunisation service"}
AT_RISK = (
    "type1_diabetes",
    "type2_diabetes",
    "asthma",
    "copd",
    "ckd",
    "coronary_heart_disease",
    "heart_failure",
    "stroke",
)
SHINGRIX_FROM = date(2023, 9, 1)


_LOT_LETTERS = "ABCDEFHKLMNPRSTWXY"


def _lot(chart: Chart) -> str:
    rng = chart.rng
    return f"{rng.choice(_LOT_LETTERS)}{rng.choice(_LOT_LETTERS)}{rng.randrange(1000, 9999)}"


def _immunization(
    chart: Chart, vaccine: str, dose: int, visit: Visit | None, given: date | None = None
) -> dict[str, Any]:
    immunization: dict[str, Any] = {
        "resourceType": "Immunization",
        "id": chart.new_id("Immunization"),
        "status": "completed",
        "vaccineCode": coded(vaccine),
        "patient": chart.subject,
    }
    if visit is not None:
        immunization["encounter"] = visit.ref
        immunization["occurrenceDateTime"] = visit.when
        immunization["recorded"] = visit.when
        immunization["primarySource"] = True
    else:  # reported by the school service
        assert given is not None
        immunization["occurrenceDateTime"] = given.isoformat()
        reported = min(given + timedelta(days=chart.rng.randint(7, 28)), chart.end)
        immunization["recorded"] = reported.isoformat()
        immunization["primarySource"] = False
        immunization["reportOrigin"] = SCHOOL_SERVICE
    immunization["lotNumber"] = _lot(chart)
    if visit is not None:
        immunization["performer"] = [{"actor": chart.role(visit.staff)}]
    immunization["protocolApplied"] = [{"doseNumberPositiveInt": dose}]
    return chart.add(immunization)


def _vaccination_visit(chart: Chart, day: date, reason: str, child: bool = False) -> Visit:
    rng = chart.rng
    team = chart.team
    staff = rng.choice(team.nurses if child or rng.random() < 0.5 else team.assistants)
    mode = "consultation_face_to_face"
    if not child and (chart.has_by(day, "dementia") or chart.age(day) >= 90) and rng.random() < 0.4:
        mode = "home_visit"
    return chart.visit(day, "vaccination", reason, staff, mode)


def _in_window(chart: Chart, day: date) -> bool:
    return chart.start <= day <= chart.end


def immunise(chart: Chart) -> None:
    rng = chart.rng
    birth = chart.summary.birth_date
    engaged = rng.random() < 0.93
    for days, label, doses in CHILDHOOD:
        # Never before the due age: a few days to weeks after it.
        day = weekday_from(birth + timedelta(days=days + int(rng.expovariate(1 / 8))))
        if not _in_window(chart, day) or rng.random() >= (0.97 if engaged else 0.3):
            continue
        visit = _vaccination_visit(chart, day, f"Routine childhood immunisations ({label})", True)
        for vaccine, dose in doses:
            _immunization(chart, vaccine, dose, visit)
    for years, doses in SCHOOL:
        day = weekday_within(add_years(birth, years + rng.uniform(0, 0.4)), chart.start, chart.end)
        if _in_window(chart, day) and rng.random() < (0.85 if engaged else 0.3):
            for vaccine, dose in doses:
                _immunization(chart, vaccine, dose, None, day)
    _flu_and_pneumococcal(chart)
    _shingles(chart)


def _flu_and_pneumococcal(chart: Chart) -> None:
    rng = chart.rng
    birth = chart.summary.birth_date
    accepts = rng.random()
    sixty_five = add_years(birth, 65)
    ppv_due = sixty_five >= chart.start and rng.random() < 0.75
    for year in range(chart.start.year - 1, chart.end.year + 1):
        day = date(year, 9, 8) + timedelta(days=int(rng.triangular(0, 110, 30)))
        day = weekday_within(day, chart.start, chart.end)
        if not _in_window(chart, day):
            continue
        age = chart.age(day)
        if age >= 65:
            uptake = 0.85
        elif age >= 18 and chart.has_by(day, *AT_RISK):
            uptake = 0.6
        elif age in (2, 3):
            uptake = 0.5
        else:
            continue
        if accepts >= uptake or rng.random() >= 0.9:
            continue
        visit = _vaccination_visit(chart, day, "Seasonal influenza vaccination", age < 16)
        _immunization(chart, "influenza_vaccine", 1, visit)
        if ppv_due and day >= sixty_five:
            _immunization(chart, "pneumococcal_polysaccharide_vaccine", 1, visit)
            ppv_due = False
    if ppv_due and sixty_five <= chart.end:  # not at a flu clinic
        last = min(chart.end, sixty_five + timedelta(days=365))
        day = weekday_within(random_day(rng, max(sixty_five, chart.start), last), chart.start, last)
        if _in_window(chart, day) and rng.random() < 0.6:
            visit = _vaccination_visit(chart, day, "Pneumococcal vaccination")
            _immunization(chart, "pneumococcal_polysaccharide_vaccine", 1, visit)


def _shingles(chart: Chart) -> None:
    rng = chart.rng
    birth = chart.summary.birth_date
    seventy = add_years(birth, 70)
    if seventy >= chart.start:
        chance, first = 0.5, seventy
    elif chart.age(chart.start) < 80:
        chance, first = 0.15, chart.start
    else:
        return
    last = min(chart.end, add_years(birth, 79.9))
    if first > last or rng.random() >= chance:
        return
    day = weekday_within(random_day(rng, first, last), first, last)
    visit = _vaccination_visit(chart, day, "Shingles vaccination")
    _immunization(chart, "shingles_vaccine", 1, visit)
    if day >= SHINGRIX_FROM:
        second = weekday_within(day + timedelta(days=rng.randint(60, 180)), day, chart.end)
        if second <= chart.end and second > day:
            visit = _vaccination_visit(chart, second, "Shingles vaccination (second dose)")
            _immunization(chart, "shingles_vaccine", 2, visit)
