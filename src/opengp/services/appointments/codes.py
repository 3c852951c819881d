"""The codes, extension URLs and statuses of the appointment book.

Shared with the synthetic practice (`opengp.demo.appointments`, documented in
docs/demo.md), which this layer may not import: the values are repeated here and a unit
test holds the two equal.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Final

from opengp.fhir.references import parse_relative
from opengp.terminology import Concept, of_kind, starter_set

# UK Core's delivery channel (In-person | Telephone | Video), whose context is Appointment
# and Slot, as GP Connect does with its STU3 delivery-channel extension.
DELIVERY_CHANNEL_URL: Final = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-DeliveryChannel"
)
CANCELLATION_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason"
V2_0276: Final = "http://terminology.hl7.org/CodeSystem/v2-0276"

# OpenGP's own definitions, where R4 and UK Core have no element (docs/architecture.md,
# "Appointments"): a rota session on a Schedule, and the day a Slot opens to online booking.
OPENGP: Final = "https://opengp.example/fhir"
SESSION_URL: Final = f"{OPENGP}/StructureDefinition/appointment-session"
ONLINE_BOOKING_URL: Final = f"{OPENGP}/StructureDefinition/online-booking-days"
SETTINGS_URL: Final = f"{OPENGP}/StructureDefinition/appointment-settings"
SETTINGS_CODE: Final = {"system": f"{OPENGP}/CodeSystem/opengp-settings", "code": "appointments"}

# http://hl7.org/fhir/R4/valueset-appointmentstatus.html: an appointment holds its slots
# unless it was cancelled or entered in error (a no-show still used the clinician's time).
RELEASING_STATUSES: Final = frozenset({"cancelled", "entered-in-error"})
HOME_VISIT_CATEGORY: Final = "slot_home_visit"


def holds_slots(appointment: dict[str, Any] | None) -> bool:
    return appointment is not None and appointment.get("status") not in RELEASING_STATUSES


def slot_categories() -> list[Concept]:
    """National Slot Type Categories (NHS England, GP appointments data), for pick lists."""
    return of_kind("slot-category")


def delivery_channels() -> list[Concept]:
    return of_kind("delivery-channel")


def concept_of(kind: str, key: str) -> Concept:
    """A starter-set concept of `kind` by key ("slot_planned_clinics", "channel_video")."""
    found = starter_set().get(key)
    if found is None or found.kind != kind:
        choices = ", ".join(c.key for c in of_kind(kind))
        raise ValueError(f"{key!r} is not a {kind}; choose one of {choices}")
    return found


def key_of(kind: str, coding: dict[str, Any] | None) -> str | None:
    """The starter-set key of a Coding of `kind`, or None when it is not one of ours."""
    if not coding:
        return None
    return _keys(kind).get((coding.get("system"), coding.get("code")))


@cache
def _keys(kind: str) -> dict[tuple[Any, Any], str]:
    return {(c.system, c.code): c.key for c in of_kind(kind)}


def category_key(resource: dict[str, Any]) -> str | None:
    """The National Slot Type Category of a Slot or Appointment (`serviceCategory`)."""
    for concept in resource.get("serviceCategory") or ():
        for coding in concept.get("coding") or ():
            key = key_of("slot-category", coding)
            if key is not None:
                return key
    return None


def channel_key(resource: dict[str, Any]) -> str | None:
    """The delivery channel of a Slot or Appointment (UK Core extension)."""
    for extension in resource.get("extension") or ():
        if extension.get("url") == DELIVERY_CHANNEL_URL:
            for coding in (extension.get("valueCodeableConcept") or {}).get("coding") or ():
                key = key_of("delivery-channel", coding)
                if key is not None:
                    return key
    return None


def channel_extension(key: str) -> dict[str, Any]:
    coding = concept_of("delivery-channel", key).coding()
    return {"url": DELIVERY_CHANNEL_URL, "valueCodeableConcept": {"coding": [coding]}}


def category_concept(key: str) -> dict[str, Any]:
    return {"coding": [concept_of("slot-category", key).coding()]}


def slot_type_text(resource: dict[str, Any]) -> str | None:
    """The practice-defined slot type: `serviceType.text`, where GP Connect puts it."""
    for concept in resource.get("serviceType") or ():
        if isinstance(concept.get("text"), str):
            return str(concept["text"])
    return None


def reference_id(reference: Any, resource_type: str) -> str | None:
    """The id in a literal relative reference `{"reference": "Type/id[/_history/v]"}` of
    `resource_type`; None for anything else."""
    if not isinstance(reference, dict) or not isinstance(reference.get("reference"), str):
        return None
    literal = parse_relative(reference["reference"])
    if literal is None or literal.resource_type != resource_type:
        return None
    return literal.id
