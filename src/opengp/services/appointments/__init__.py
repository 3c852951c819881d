"""Appointments (C5 Appointments Management, C1 Appointments - Citizen): rotas, slots,
booking, the day list, a patient's appointments and the weekly appointments report.

Plain functions over a `ResourceStore` and a `Principal`, for the screens; each authorises
through the access policy, writes Provenance and appends to the audit trail like the FHIR
API. Writes through `/fhir` obey the same slot rules (`holding`, hooked in by
`services/fhir/write_rules`). See docs/architecture.md, "Appointments".
"""

from opengp.services.appointments.agenda import DayList, DayListRow, day_list
from opengp.services.appointments.booking import (
    CANCELLATION_REASONS,
    amend_appointment,
    book_appointment,
    cancel_appointment,
    rebook_appointment,
)
from opengp.services.appointments.codes import delivery_channels, slot_categories
from opengp.services.appointments.daylist import (
    call_in,
    change_status,
    end_appointment,
    mark_arrived,
    mark_did_not_attend,
    start_appointment,
)
from opengp.services.appointments.generation import Generated, generate_slots
from opengp.services.appointments.patients import (
    Alert,
    PatientAppointments,
    find_patients,
    patient_alerts,
    patient_appointments,
)
from opengp.services.appointments.report import WeeklyReport, report_csv, weekly_report
from opengp.services.appointments.rota import Session
from opengp.services.appointments.schedules import (
    ScheduleSummary,
    create_schedule,
    get_schedule,
    list_schedules,
    set_rota,
)
from opengp.services.appointments.settings import (
    PracticeSettings,
    practice_settings,
    save_practice_settings,
)
from opengp.services.appointments.slots import SlotChoice, block_slots, free_slots, release_slots
from opengp.services.appointments.views import AppointmentView, PatientSummary, SlotView

__all__ = [
    "CANCELLATION_REASONS",
    "Alert",
    "AppointmentView",
    "DayList",
    "DayListRow",
    "Generated",
    "PatientAppointments",
    "PatientSummary",
    "PracticeSettings",
    "ScheduleSummary",
    "Session",
    "SlotChoice",
    "SlotView",
    "WeeklyReport",
    "amend_appointment",
    "block_slots",
    "book_appointment",
    "call_in",
    "cancel_appointment",
    "change_status",
    "create_schedule",
    "day_list",
    "delivery_channels",
    "end_appointment",
    "find_patients",
    "free_slots",
    "generate_slots",
    "get_schedule",
    "list_schedules",
    "mark_arrived",
    "mark_did_not_attend",
    "patient_alerts",
    "patient_appointments",
    "practice_settings",
    "rebook_appointment",
    "release_slots",
    "report_csv",
    "save_practice_settings",
    "set_rota",
    "slot_categories",
    "start_appointment",
    "weekly_report",
]
