"""Online record access for the demo practice (opengp.access.online_access): what each demo
patient sees of their record online, as the Consents a practice would have.

- The practice default: the detailed coded record, prospectively from 31 October 2023
  (when NHS England gave patients with online accounts access to new entries).
- The demo patient: the detailed coded record, full history (the practice granted their
  request for their historic record).
- The parent acting for a child: summary information only, less than the child's own.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from opengp.access.online_access import consent
from opengp.access.policy import OnlineLevel, OnlineRecordAccess
from opengp.demo.accounts import patient_and_proxy
from opengp.demo.model import DemoConfig, Practice, demo_id

PROSPECTIVE_FROM = date(2023, 10, 31)


def online_access_consents(config: DemoConfig, practice: Practice) -> list[dict[str, Any]]:
    recorded = datetime.combine(config.as_of, time(9), UTC)
    adult, proxy = patient_and_proxy(config, practice)
    chosen: list[tuple[str, OnlineRecordAccess, str | None, str | None]] = [
        ("default", OnlineRecordAccess(OnlineLevel.DETAILED, PROSPECTIVE_FROM), None, None)
    ]
    if adult is not None:
        chosen.append(("patient", OnlineRecordAccess(OnlineLevel.DETAILED), adult[0], None))
    if proxy is not None:
        (child_id, _), parent_id, _ = proxy
        summary = OnlineRecordAccess(OnlineLevel.SUMMARY)
        chosen.append(("proxy", summary, child_id, f"RelatedPerson/{parent_id}"))
    return [
        {
            "id": demo_id(config, "online-access", key),
            **consent(
                access,
                patient_id=patient_id,
                recorded=recorded,
                proxy=proxy_ref,
                organization_id=practice.organization_id,
            ),
        }
        for key, access, patient_id, proxy_ref in chosen
    ]
