"""Double booking under parallel requests, against a real `opengp serve` (two workers) on
both databases: whichever path books (FHIR or the services the screens call), one slot
holds exactly one appointment (docs/clinical-safety.md A1)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import orjson
import pytest

from opengp.fhir.errors import Conflict
from opengp.services import appointments as appts
from opengp.store.sql import SqlStore
from tests.functional.appointment_helpers import MONDAY, NOW, RECEPTION, seed, slots_on
from tests.functional.conftest import FHIR_JSON
from tests.functional.server import Server
from tests.functional.test_concurrency_and_durability import _together

pytestmark = pytest.mark.slow
HEADERS = {"Content-Type": FHIR_JSON}


@pytest.fixture
def server(database_url: str, tmp_path: Path, key_file: Path) -> Iterator[Server]:
    running = Server(database_url, tmp_path / "serve.log", key_file, workers=2).start()
    yield running
    running.stop()


def _booking(slot: appts.SlotView, patient: str) -> bytes:
    return orjson.dumps(
        {
            "resourceType": "Appointment",
            "status": "booked",
            "slot": [{"reference": f"Slot/{slot.id}"}],
            "participant": [{"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"}],
        }
    )


def test_parallel_bookings_of_one_slot_leave_exactly_one_appointment(
    server: Server, database_url: str
) -> None:
    store = SqlStore.from_url(database_url)
    try:
        seed(store)
        first, second = slots_on(store, MONDAY)[:2]
        auth = server.authorization()
        limits = httpx.Limits(max_connections=20)
        with httpx.Client(base_url=server.url, timeout=60, limits=limits, headers=auth) as client:

            def over_fhir(i: int) -> int:
                body = _booking(first, ("pat-1", "pat-2")[i % 2])
                return client.post("/fhir/Appointment", content=body, headers=HEADERS).status_code

            statuses = sorted(_together(20, over_fhir))
            assert statuses == [201] + [409] * 19, statuses

            # The FHIR API and the screens' service racing for the second slot.
            def either(i: int) -> Any:
                if i % 2:
                    return over_fhir_slot(client, second, i)
                try:
                    appts.book_appointment(
                        store, RECEPTION, patient_id="pat-1", slot_ids=[second.id], now=NOW
                    )
                except Conflict:
                    return 409
                return 201

            statuses = sorted(_together(12, either))
            assert statuses == [201] + [409] * 11, statuses
            for slot in (first, second):
                found = client.get(f"/fhir/Appointment?slot=Slot/{slot.id}").json()
                assert found["total"] == 1
                assert client.get(f"/fhir/Slot/{slot.id}").json()["status"] == "busy"
    finally:
        store.dispose()


def over_fhir_slot(client: httpx.Client, slot: appts.SlotView, i: int) -> int:
    body = _booking(slot, ("pat-1", "pat-2")[i % 2])
    return client.post("/fhir/Appointment", content=body, headers=HEADERS).status_code
