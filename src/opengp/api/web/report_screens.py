"""The weekly appointments report on screen, and as the CSV of NHS England's GP Appointments
Data (GPAD) collection (`services.appointments.weekly_report`, `report_csv`).

A week is chosen from a list (the last complete week by default); the page shows tables of
the week's appointments by status, National Slot Type Category, delivery channel (GPAD's
appointment mode) and days from booking to appointment, each with a bar chart drawn on the
server (chart.py) whose text alternative is its table. The status table counts cancelled
appointments too; the others leave them out, as GPAD and the CSV do (the page says so).
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from opengp.api.web import pages
from opengp.api.web.areas import STAFF, Web
from opengp.api.web.chart import bar_chart
from opengp.api.web.practice_admin_access import REPORT, admin, organization
from opengp.api.web.service_calls import call, day_text
from opengp.api.web.session import SignedIn
from opengp.services import appointments as booking
from opengp.services.appointments import times
from opengp.services.appointments.report import LEAD_BUCKETS, UNKNOWN_LEAD

WEEKS_OFFERED = 26
FIRST_WEEK = date(2000, 1, 3)  # a Monday: earlier weeks are surely a typing mistake
STATUS_WORDS = {
    "proposed": "Proposed",
    "pending": "Pending",
    "booked": "Booked",
    "arrived": "Arrived",
    "checked-in": "Checked in",
    "fulfilled": "Attended",
    "noshow": "Did not attend",
    "cancelled": "Cancelled",
    "entered-in-error": "Entered in error",
    "waitlist": "Waiting list",
}
LEAD_ORDER = [label for _, _, label in LEAD_BUCKETS] + [UNKNOWN_LEAD]


def routes(web: Web) -> list[BaseRoute]:
    async def page(request: Request) -> Response:
        return await report_page(web, request)

    async def download(request: Request) -> Response:
        return await report_download(web, request)

    return [Route(REPORT, page), Route(f"{REPORT}.csv", download)]


def this_monday() -> date:
    today = times.local_day(times.now_utc())
    return today - timedelta(days=today.weekday())


def chosen_week(value: str | None) -> date | None:
    """The Monday of the week asked for (the last complete week when none); None when the
    value is not a date of a week that has begun."""
    if not value:
        return this_monday() - timedelta(days=7)
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None
    monday = day - timedelta(days=day.weekday())
    return monday if FIRST_WEEK <= monday <= this_monday() else None


async def _report(web: Web, signed: SignedIn, week: date) -> booking.WeeklyReport | Response:
    principal, org = signed.principal, organization(signed)
    return await call(STAFF, signed, lambda: booking.weekly_report(web.store, principal, org, week))


async def report_page(web: Web, request: Request) -> Response:
    signed = await admin(web, request, practice=True)
    if isinstance(signed, Response):
        return signed
    asked = request.query_params.get("week")
    week = chosen_week(asked)
    errors = {}
    if week is None:
        errors["week"] = "Choose a week from the list: a week that has already begun"
        week = this_monday() - timedelta(days=7)
    report = await _report(web, signed, week)
    if isinstance(report, Response):
        return report
    context = STAFF.page(
        "Weekly appointments report",
        signed,
        back_href=STAFF.home,
        errors=errors,
        week=week,
        week_text=day_text(week),
        weeks=_weeks(week),
        practice=report.practice_code,
        total=report.total,
        cancelled_and_all=sum(report.by_status.values()),
        sections=_sections(report),
        csv_href=f"{REPORT}.csv?week={week.isoformat()}",
    )
    return pages.render("report_weekly.jinja", context, status=400 if errors else 200)


async def report_download(web: Web, request: Request) -> Response:
    signed = await admin(web, request, practice=True)
    if isinstance(signed, Response):
        return signed
    week = chosen_week(request.query_params.get("week"))
    if week is None:
        return Response(
            "Choose a week that has already begun, as YYYY-MM-DD.\n",
            status_code=400,
            media_type="text/plain",
            headers={"Cache-Control": "no-store"},
        )
    report = await _report(web, signed, week)
    if isinstance(report, Response):
        return report
    code = re.sub(r"[^A-Za-z0-9-]", "", report.practice_code)[:20] or "practice"
    filename = f"appointments-{code}-week-{week.isoformat()}.csv"
    return Response(
        booking.report_csv(report),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


def _weeks(chosen: date) -> list[dict[str, Any]]:
    last = this_monday() - timedelta(days=7)
    mondays = [last + timedelta(days=7) - timedelta(days=7 * i) for i in range(WEEKS_OFFERED)]
    if chosen not in mondays:
        mondays.append(chosen)
    return [
        {
            "value": m.isoformat(),
            "text": f"Week starting {day_text(m)}" + (" (this week, so far)" if m > last else ""),
            "selected": m == chosen,
        }
        for m in sorted(mondays, reverse=True)
    ]


def _sections(report: booking.WeeklyReport) -> list[dict[str, Any]]:
    by_lead = sorted(report.by_lead.items(), key=lambda kv: LEAD_ORDER.index(kv[0]))
    sections: list[tuple[str, str, str, list[tuple[str, int]]]] = [
        ("status", "By status", "Status",
         [(STATUS_WORDS.get(k, k), v) for k, v in report.by_status.items()]),
        ("category", "By National Slot Type Category", "Category",
         list(report.by_category.items())),
        ("mode", "By how the appointment was delivered", "Delivery", list(report.by_mode.items())),
        ("lead", "By days from booking to appointment", "Days", by_lead),
    ]  # fmt: skip
    return [
        {
            "id": key,
            "title": title,
            "column": column,
            "rows": rows,
            "total": sum(count for _, count in rows),
            "with_cancelled": key == "status",
            "chart": bar_chart(
                f"chart-{key}",
                f"Bar chart of the week's appointments {title.lower()}; "
                "the table below gives the figures",
                rows,
                f"table-{key}",
            ),
        }
        for key, title, column, rows in sections
    ]
