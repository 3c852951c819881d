"""The weekly appointments report (GP Appointments Data) on a small known book, both databases."""

from __future__ import annotations

from typing import Any

from opengp.services import appointments as appts
from opengp.services.appointments.codes import category_concept, channel_extension
from opengp.store.sql import SqlStore
from tests.functional.appointment_helpers import ADMIN, MONDAY, ORG, resources

CANCELLED = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason",
            "code": "pat",
        }
    ]
}


def booked(
    id: str,
    start: str,
    status: str,
    *,
    created: str | None,
    category: str | None = "slot_general_consultation_routine",
    channel: str | None = "channel_in_person",
    role: str = "role-gp",
) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Appointment", "id": id, "status": status}
    if channel:
        body["extension"] = [channel_extension(channel)]
    if category:
        body["serviceCategory"] = [category_concept(category)]
    if status == "cancelled":
        body["cancelationReason"] = CANCELLED
    body |= {"start": start, "end": start.replace(":00:00", ":15:00").replace(":30:00", ":45:00")}
    if created:
        body["created"] = created
    body["participant"] = [
        {"actor": {"reference": "Patient/pat-1"}, "status": "accepted"},
        {"actor": {"reference": f"PractitionerRole/{role}"}, "status": "accepted"},
    ]
    return body


BOOK = [
    booked("a1", "2030-01-07T09:00:00+00:00", "fulfilled", created="2030-01-07T07:00:00Z"),
    booked("a2", "2030-01-08T14:00:00+00:00", "noshow", created="2030-01-07T10:00:00Z",
           category="slot_clinical_triage", channel="channel_telephone"),
    booked("a3", "2030-01-11T12:00:00+00:00", "booked", created="2030-01-01T09:00:00Z",
           category="slot_home_visit"),
    booked("a4", "2030-01-09T09:00:00+00:00", "cancelled", created="2030-01-02T09:00:00Z",
           channel="channel_video"),
    booked("a5", "2030-01-13T23:30:00+00:00", "fulfilled", created="2029-12-01T09:00:00Z",
           channel="channel_video"),
    booked("a6", "2030-01-14T00:00:00+00:00", "booked", created="2030-01-07T09:00:00Z"),
    booked("a7", "2030-01-08T09:00:00+00:00", "fulfilled", created="2030-01-07T09:00:00Z",
           role="role-other"),
    booked("a8", "2030-01-10T09:00:00+00:00", "arrived", created=None),
    booked("a9", "2030-01-10T09:30:00+00:00", "booked", created="2030-01-08T09:00:00Z",
           category=None, channel=None),
]  # fmt: skip

EXPECTED_CSV = """\
WEEK_STARTING,PRACTICE_CODE,NATIONAL_CATEGORY,APPT_MODE,APPT_STATUS,TIME_BETWEEN_BOOK_AND_APPT,COUNT_OF_APPOINTMENTS
2030-01-07,Y00001,Clinical Triage,Telephone,DNA,1 Day,1
2030-01-07,Y00001,General Consultation Routine,Face-to-Face,Attended,Same Day,1
2030-01-07,Y00001,General Consultation Routine,Face-to-Face,Attended,Unknown / Data Quality,1
2030-01-07,Y00001,General Consultation Routine,Video Conference/Online,Attended,More than 28 Days,1
2030-01-07,Y00001,Home Visit,Home Visit,Unknown,8 to 14 Days,1
2030-01-07,Y00001,Unmapped,Unknown,Unknown,2 to 7 Days,1
"""


def test_weekly_report_counts_a_known_week(store: SqlStore) -> None:
    with store.writing() as tx:
        tx.create_many(resources() + BOOK)
    # Any day of the week gives that week.
    report = appts.weekly_report(store, ADMIN, ORG, MONDAY.replace(day=10))
    assert report.week_start == MONDAY
    assert report.by_status == {
        "fulfilled": 2,
        "booked": 2,
        "noshow": 1,
        "cancelled": 1,
        "arrived": 1,
    }
    assert report.total == 6  # cancelled ones are left out, as the national collection does
    assert report.by_category == {
        "General Consultation Routine": 3,
        "Clinical Triage": 1,
        "Home Visit": 1,
        "Unmapped": 1,
    }
    assert report.by_mode == {
        "Face-to-Face": 2,
        "Telephone": 1,
        "Video Conference/Online": 1,
        "Home Visit": 1,
        "Unknown": 1,
    }
    assert report.by_lead["Same Day"] == 1 and report.by_lead["More than 28 Days"] == 1
    csv = appts.report_csv(report)
    assert csv.replace("\r\n", "\n") == EXPECTED_CSV


def test_an_empty_week_has_no_rows(store: SqlStore) -> None:
    with store.writing() as tx:
        tx.create_many(resources())
    report = appts.weekly_report(store, ADMIN, ORG, MONDAY)
    assert (report.total, report.rows, report.by_status) == (0, (), {})
    assert appts.report_csv(report).count("\r\n") == 1
