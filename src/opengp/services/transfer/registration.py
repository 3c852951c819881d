"""End the patient's registration at the old practice, on the old practice's server.

The migration client changes exactly what ending a registration changes, and nothing else:
a JSON Patch of each open registration EpisodeOfCare (`status` to `finished`, `period.end`
to the day the patient registered here), sent with `If-Match` so that a change made there
meanwhile is never overwritten (http://hl7.org/fhir/R4/http.html#concurrency). The old
server authorises it like any write (the client's `system/EpisodeOfCare.u` scope), records
its Provenance and audits it. The record itself stays there: it is kept, not deleted.
"""

from __future__ import annotations

from typing import Any

from opengp.services.transfer.remote import Remote, RemoteError, problem

ATTEMPTS = 3  # a registration changed there meanwhile is read again, then patched


def open_registrations(remote: Remote, patient: dict[str, Any]) -> list[dict[str, Any]]:
    """The patient's active EpisodeOfCare at their managing organisation there."""
    managing = (patient.get("managingOrganization") or {}).get("reference")
    if not isinstance(managing, str):
        return []
    reply = remote.get(f"EpisodeOfCare?patient=Patient/{patient['id']}&status=active&_count=100")
    if reply.status != 200 or not isinstance(reply.body, dict):
        raise RemoteError(f"finding the old registration: {problem(reply)}")
    return [
        entry["resource"]
        for entry in reply.body.get("entry") or ()
        if isinstance(entry, dict)
        and isinstance(entry.get("resource"), dict)
        and entry["resource"].get("resourceType") == "EpisodeOfCare"
        and (entry["resource"].get("managingOrganization") or {}).get("reference") == managing
    ]


def end_registrations(remote: Remote, patient: dict[str, Any], end: str) -> list[str]:
    """Finish the patient's open registrations there on `end` (a date); their ids."""
    ended = []
    for episode in open_registrations(remote, patient):
        _finish(remote, episode, end)
        ended.append(str(episode["id"]))
    return ended


def _finish(remote: Remote, episode: dict[str, Any], end: str) -> None:
    path = f"EpisodeOfCare/{episode['id']}"
    for _ in range(ATTEMPTS):
        if episode.get("status") != "active":
            return  # finished there meanwhile
        period = "/period/end" if isinstance(episode.get("period"), dict) else "/period"
        operations: list[dict[str, Any]] = [
            {"op": "test", "path": "/status", "value": "active"},
            {"op": "replace", "path": "/status", "value": "finished"},
            {"op": "add", "path": period, "value": end if period.endswith("end") else {"end": end}},
        ]
        version = str((episode.get("meta") or {}).get("versionId", ""))
        reply = remote.patch(path, operations, version)
        if reply.status == 200:
            return
        if reply.status not in (409, 412):
            raise RemoteError(f"ending the old registration ({path}): {problem(reply)}")
        again = remote.get(path)  # changed there since it was read: read it again
        if again.status != 200 or not isinstance(again.body, dict):
            raise RemoteError(f"reading the old registration ({path}): {problem(again)}")
        episode = again.body
    raise RemoteError(f"the old registration ({path}) keeps changing there; try again later")
