"""The whole synthetic practice as a stream of FHIR resources, in parts.

Memory stays flat in the number of patients: each patient's record is generated, handed on
and forgotten; the appointment book recomputes the few facts it needs of a patient from its
index (`people.patient_summary`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from opengp.demo.appointments import appointment_book
from opengp.demo.clinical import patient_record
from opengp.demo.model import DemoConfig, Practice
from opengp.demo.online import online_access_consents
from opengp.demo.people import patient_summary
from opengp.demo.practice import build_practice

APPOINTMENT_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Part:
    kind: str  # "practice" | "patient" | "online-access" | "appointments"
    resources: list[dict[str, Any]]


def chunks(items: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def practice_of(config: DemoConfig) -> Practice:
    return build_practice(config)[0]


def generate(config: DemoConfig) -> Iterator[Part]:
    practice, resources = build_practice(config)
    yield Part("practice", resources)
    for index in range(config.patients):
        summary = patient_summary(config, index, practice)
        yield Part("patient", list(patient_record(config, practice, summary)))
    yield Part("online-access", online_access_consents(config, practice))
    book = appointment_book(
        config, practice, config.patients, lambda i: patient_summary(config, i, practice)
    )
    for chunk in chunks(book, APPOINTMENT_CHUNK):
        yield Part("appointments", chunk)
