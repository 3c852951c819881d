"""The practice's appointment screens, in the staff area (C5 Appointments Management):
reception finds a patient, sees their alerts and appointments, books, moves and cancels;
the day list of a clinician (arrived, did not attend); the clinician's own list (call in,
start, end).

The pages only ask and show: what a member of staff may do is the services' (the access
policy: a receptionist sees demographics and appointments, not clinical entries), and a
refusal is shown as the problem page (`service_calls.call`). Questions are GET forms; every
change is a POST with the session's CSRF token, answered with a redirect.
Modules: reception_patients (find, the patient's page), reception_booking (book, move),
reception_cancel, reception_daylist (the day lists), reception_common (what they share).
"""

from __future__ import annotations

from functools import partial

from starlette.routing import BaseRoute, Route

from opengp.api.web import pages
from opengp.api.web.areas import Web
from opengp.api.web.guard import web_endpoint
from opengp.api.web.reception_booking import book, booked, check_booking, choose_slot, rebook
from opengp.api.web.reception_cancel import cancel, confirm_cancel
from opengp.api.web.reception_common import (
    APPOINTMENTS,
    DAY_LIST,
    MY_DAY,
    PATIENTS,
    appointment_links,
)
from opengp.api.web.reception_daylist import change_status, day_list, my_day
from opengp.api.web.reception_patients import find_patient, patient_page

# The staff home page lists the screens a member of staff's roles let them use.
pages.ENVIRONMENT.globals["appointment_links"] = appointment_links


def routes(web: Web) -> list[BaseRoute]:
    bind = partial(web_endpoint, web)

    one = f"{PATIENTS}/{{patient}}"
    appointment = f"{one}/appointments/{{appointment}}"
    return [
        Route(PATIENTS, bind(find_patient)),
        Route(one, bind(patient_page)),
        Route(f"{one}/book", bind(choose_slot)),
        Route(f"{one}/book", bind(book), methods=["POST"]),
        Route(f"{one}/book/check", bind(check_booking)),
        Route(f"{appointment}/booked", bind(booked)),
        Route(f"{appointment}/rebook", bind(choose_slot)),
        Route(f"{appointment}/rebook", bind(rebook), methods=["POST"]),
        Route(f"{appointment}/rebook/check", bind(check_booking)),
        Route(f"{appointment}/cancel", bind(confirm_cancel)),
        Route(f"{appointment}/cancel", bind(cancel), methods=["POST"]),
        Route(DAY_LIST, bind(day_list)),
        Route(MY_DAY, bind(my_day)),
        Route(f"{APPOINTMENTS}/{{appointment}}/status", bind(change_status), methods=["POST"]),
    ]
