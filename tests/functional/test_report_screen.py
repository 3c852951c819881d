"""The weekly appointments report screen over HTTP, on both databases: the tables show a
known week's figures, each chart is an accessible SVG described by its table, the CSV
download matches what the page shows, and a week that is not one is named, not a 500."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from datetime import date, timedelta
from html import unescape

import pytest
from starlette.testclient import TestClient

from opengp.services.appointments.report import CSV_HEADER
from opengp.store.sql import SqlStore
from tests.functional.appointment_helpers import resources
from tests.functional.server import http, settings
from tests.functional.test_admin_screens import error_summary, signed_in_staff
from tests.functional.test_appointments_report import booked

REPORT = "/staff/practice/report"

__all__ = ["http", "settings"]  # the fixtures of the screen tests


def last_complete_week() -> date:
    today = date.today()
    return today - timedelta(days=today.weekday() + 7)


def at(day: date, hour: int = 10) -> str:
    return f"{day.isoformat()}T{hour:02d}:00:00+00:00"


@pytest.fixture
def week(store: SqlStore) -> date:
    """A practice's known last complete week: four appointments counted, one cancelled and
    one of another practice's clinician left out."""
    monday = last_complete_week()
    day = [monday + timedelta(days=i) for i in range(5)]
    appointments = [
        booked("w1", at(day[0]), "fulfilled", created=at(day[0], 8)),
        booked("w2", at(day[1], 14), "noshow", created=at(day[0]),
               category="slot_clinical_triage", channel="channel_telephone"),
        booked("w3", at(day[2]), "booked", created=at(day[2] - timedelta(days=10)),
               category="slot_home_visit"),
        booked("w4", at(day[3]), "cancelled", created=at(day[0]), channel="channel_video"),
        booked("w5", at(day[4]), "fulfilled", created=at(day[1]), channel="channel_video"),
        booked("w6", at(day[4], 11), "fulfilled", created=at(day[0]), role="role-other"),
    ]  # fmt: skip
    with store.writing() as tx:
        tx.create_many([*resources(), *appointments])
    return monday


def table(page: str, key: str) -> dict[str, int]:
    """The rows (not the total) of one of the report's tables."""
    found = re.search(rf'<table class="nhsuk-table" id="table-{key}">(.*?)</table>', page, re.S)
    assert found, f"no table {key}"
    rows = re.findall(
        r'<th class="nhsuk-table__header" scope="row">(.*?)</th>\s*<td[^>]*>(\d+)</td>',
        found.group(1),
    )
    return {unescape(label): int(count) for label, count in rows if label != "Total"}


def test_the_report_shows_a_known_week_and_its_csv_matches(
    http: TestClient, store: SqlStore, week: date
) -> None:
    signed_in_staff(http, store)
    page = http.get(REPORT)  # the last complete week by default
    assert page.status_code == 200
    text = page.text
    assert f'<option value="{week.isoformat()}" selected>' in text
    assert table(text, "status") == {
        "Attended": 2,
        "Did not attend": 1,
        "Booked": 1,
        "Cancelled": 1,
    }
    assert table(text, "category") == {
        "General Consultation Routine": 2,
        "Clinical Triage": 1,
        "Home Visit": 1,
    }
    assert table(text, "mode") == {
        "Face-to-Face": 1,
        "Telephone": 1,
        "Home Visit": 1,
        "Video Conference/Online": 1,
    }
    assert table(text, "lead") == {
        "Same Day": 1,
        "1 Day": 1,
        "2 to 7 Days": 1,
        "8 to 14 Days": 1,
    }
    for key in ("status", "category", "mode", "lead"):
        svg = re.search(rf'<svg [^>]*aria-describedby="table-{key}"[^>]*>', text)
        assert svg and 'role="img"' in svg.group(0), key
        assert f'<title id="chart-{key}-title">' in text
        assert f'aria-labelledby="chart-{key}-title"' in svg.group(0)

    link = unescape(re.search(r'<a href="([^"]*\.csv[^"]*)"', text).group(1))  # type: ignore[union-attr]
    download = http.get(link)
    assert download.status_code == 200
    assert download.headers["content-type"] == "text/csv; charset=utf-8"
    assert download.headers["content-disposition"] == (
        f'attachment; filename="appointments-Y00001-week-{week.isoformat()}.csv"'
    )
    rows = list(csv.reader(io.StringIO(download.text)))
    assert tuple(rows[0]) == CSV_HEADER
    lines = [dict(zip(CSV_HEADER, row, strict=True)) for row in rows[1:]]
    assert {line["WEEK_STARTING"] for line in lines} == {week.isoformat()}
    by: dict[str, Counter[str]] = {
        column: Counter() for column in ("NATIONAL_CATEGORY", "APPT_MODE", "APPT_STATUS")
    }
    by["TIME_BETWEEN_BOOK_AND_APPT"] = Counter()
    for line in lines:
        for column, counts in by.items():
            counts[line[column]] += int(line["COUNT_OF_APPOINTMENTS"])
    assert dict(by["NATIONAL_CATEGORY"]) == table(text, "category")
    assert dict(by["APPT_MODE"]) == table(text, "mode")
    assert dict(by["TIME_BETWEEN_BOOK_AND_APPT"]) == table(text, "lead")
    assert dict(by["APPT_STATUS"]) == {"Attended": 2, "DNA": 1, "Unknown": 1}
    assert "4 (not counting cancelled ones)" in text


def test_another_week_and_weeks_that_are_not_one(
    http: TestClient, store: SqlStore, week: date
) -> None:
    signed_in_staff(http, store)
    earlier = week - timedelta(days=7)
    page = http.get(REPORT, params={"week": (earlier + timedelta(days=3)).isoformat()})
    assert page.status_code == 200
    assert f'<option value="{earlier.isoformat()}" selected>' in page.text  # its Monday
    assert table(page.text, "status") == {}
    assert "No appointments" in page.text
    csv_text = http.get(f"{REPORT}.csv", params={"week": earlier.isoformat()}).text
    assert csv_text.splitlines() == [",".join(CSV_HEADER)]

    next_week = week + timedelta(days=14)
    for wrong in ("2030-13-01", "last week", next_week.isoformat(), "1999-12-27"):
        answer = http.get(REPORT, params={"week": wrong})
        assert answer.status_code == 400, wrong
        assert error_summary(answer.text) == [
            "Choose a week from the list: a week that has already begun"
        ]
        download = http.get(f"{REPORT}.csv", params={"week": wrong})
        assert download.status_code == 400
        assert download.headers["content-type"].startswith("text/plain")
