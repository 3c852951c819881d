"""The audit trail's pure parts: entries, canonical bytes, the hash chain, AuditEvent."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from opengp.access.audit import (
    ACTIONS,
    AuditEntry,
    AuditRow,
    entry_for,
    parameter_names,
    parse_head,
    to_audit_event,
)
from opengp.access.principal import Principal
from opengp.fhir.validation import validate_resource
from opengp.store.sql.audit import (
    COLUMNS,
    GENESIS,
    canonical_bytes,
    chain,
    chain_hash,
    entry_values,
)

RECORDED = datetime(2026, 11, 21, 8, 15, 0, 123456, tzinfo=UTC)


def _row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "seq": 7,
        "recorded": RECORDED,
        "action": "read",
        "outcome": "success",
        "principal": "staff/u1",
        "on_behalf_of": None,
        "client_id": "app",
        "purpose": "direct-care",
        "patient_id": "p1",
        "resource_type": "Observation",
        "resource_id": "o1",
        "detail": '{"parameters":["code","patient"]}',
        "prev_hash": "a" * 64,
    }
    row.update(changes)
    return row


def test_canonical_bytes_are_sorted_compact_json_of_every_column_but_the_hash() -> None:
    row = _row(detail='{"reason":"Ära ñ"}')
    expected = {k: v for k, v in row.items() if k != "recorded"}
    expected["recorded"] = "2026-11-21T08:15:00.123456+00:00"
    # Equal to the standard library's canonical form: the format is pinned by a spec, not
    # by a library's behaviour.
    spec = json.dumps(expected, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_bytes(row) == spec.encode()
    assert set(json.loads(canonical_bytes(row))) == set(COLUMNS) - {"hash"}


def test_the_hash_is_pinned() -> None:
    # Changing canonical_bytes or chain_hash would make every stored chain fail to verify.
    row = _row()
    assert chain_hash(row) == hashlib.sha256(b"a" * 64 + canonical_bytes(row)).hexdigest()
    assert chain_hash(row) == "9d591b8fa04fe5ddaa9caaa3d7bdd549097b7ee5265e1d7db09ee04d6b2e798a"


def test_recorded_is_hashed_in_utc_whatever_the_zone_given() -> None:
    elsewhere = RECORDED.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert canonical_bytes(_row(recorded=elsewhere)) == canonical_bytes(_row())


@pytest.mark.parametrize("column", [c for c in COLUMNS if c != "hash"])
def test_the_hash_changes_with_every_column(column: str) -> None:
    row = _row()
    changed: Any
    if column == "seq":
        changed = 8
    elif column == "recorded":
        changed = RECORDED + timedelta(microseconds=1)
    elif column == "prev_hash":
        changed = "b" * 64
    elif row[column] is None:
        changed = ""  # null and the empty string are different entries
    else:
        changed = row[column] + "x"
    assert chain_hash(_row(**{column: changed})) != chain_hash(row)


def test_chain_numbers_and_links_entries_after_the_head() -> None:
    entries = [entry_values(AuditEntry("read", "success", f"staff/u{i}")) for i in range(3)]
    rows = chain(entries, 41, "c" * 64, RECORDED)
    assert [r["seq"] for r in rows] == [42, 43, 44]
    assert rows[0]["prev_hash"] == "c" * 64
    assert [r["prev_hash"] for r in rows[1:]] == [r["hash"] for r in rows[:-1]]
    assert all(r["hash"] == chain_hash(r) for r in rows)
    first = chain(entries[:1], 0, GENESIS, RECORDED)[0]
    assert (first["seq"], first["prev_hash"]) == (1, "0" * 64)


def test_entry_values_store_detail_as_sorted_json_and_check_lengths() -> None:
    entry = AuditEntry("search", "success", "staff/u1", detail={"z": 1, "a": ["x"]})
    assert entry_values(entry)["detail"] == '{"a":["x"],"z":1}'
    assert entry_values(AuditEntry("read", "success", "staff/u1"))["detail"] is None
    with pytest.raises(ValueError, match="resource_id is longer than 64"):
        entry_values(AuditEntry("read", "failed", "anonymous", resource_id="x" * 65))


def test_entries_name_a_known_action_and_outcome() -> None:
    with pytest.raises(ValueError, match="audit action 'peek'"):
        AuditEntry("peek", "success", "staff/u1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="audit outcome 'ok'"):
        AuditEntry("read", "ok", "staff/u1")  # type: ignore[arg-type]


def test_entry_for_a_principal() -> None:
    proxy = Principal("proxy", "u9", "Sam", patient_id="p1", client_id="app")
    entry = entry_for(proxy, "read", patient_id="p1", resource_type="Patient", resource_id="p1")
    assert (entry.principal, entry.on_behalf_of, entry.client_id) == (
        "proxy/u9",
        "Patient/p1",
        "app",
    )
    system = Principal("system", "lab", "Lab feed", purpose="direct-care", client_id="lab")
    assert entry_for(system, "create").purpose == "direct-care"
    anonymous = entry_for(None, "signin", "failed", detail={"reason": "bad password"})
    assert (anonymous.principal, anonymous.outcome) == ("anonymous", "failed")


def test_parameter_names_drop_the_values() -> None:
    query = [("identifier", "https://fhir.nhs.uk/Id/nhs-number|9434765919"), ("name", "Smith")]
    query.append(("name:exact", "Jo"))
    assert parameter_names(query) == ["identifier", "name", "name:exact"]


def test_parse_head() -> None:
    assert parse_head(f"200:{'AB' * 32}") == (200, "ab" * 32)
    for bad in ("200", f"x:{'a' * 64}", "200:abc", f"-1:{'a' * 64}", f"1:{'g' * 64}"):
        with pytest.raises(ValueError, match="is not SEQ:HASH"):
            parse_head(bad)


def _stored(entry: AuditEntry, seq: int = 1) -> AuditRow:
    row = chain([entry_values(entry)], seq - 1, GENESIS, RECORDED)[0]
    return AuditRow(**row)


@pytest.mark.parametrize("action", sorted(ACTIONS))
@pytest.mark.parametrize("outcome", ["success", "denied", "failed"])
def test_every_entry_renders_as_a_valid_audit_event(action: Any, outcome: Any) -> None:
    entry = AuditEntry(
        action,
        outcome,
        "proxy/u9",
        on_behalf_of="Patient/p1",
        client_id="app",
        purpose="direct-care",
        patient_id="p1",
        resource_type="Observation",
        resource_id="o1",
        detail={"parameters": ["code", "patient"], "reason": "not permitted"},
    )
    event = to_audit_event(_stored(entry))
    validate_resource(event)
    assert event["outcome"] == {"success": "0", "denied": "4", "failed": "8"}[outcome]


def test_a_read_as_audit_event() -> None:
    entry = AuditEntry(
        "read",
        "success",
        "staff/u1",
        patient_id="p1",
        resource_type="Observation",
        resource_id="o1",
    )
    event = to_audit_event(_stored(entry, seq=5), who_display="Dr A Jones")
    assert event["id"] == "5"
    assert event["type"]["code"] == "rest"
    assert event["subtype"] == [
        {"system": "http://hl7.org/fhir/restful-interaction", "code": "read"}
    ]
    assert (event["action"], event["outcome"]) == ("R", "0")
    assert event["recorded"] == "2026-11-21T08:15:00.123Z"
    assert event["agent"] == [
        {
            "who": {
                "display": "Dr A Jones",
                "identifier": {
                    "system": "https://opengp.example/Id/principal",
                    "value": "staff/u1",
                },
            },
            "requestor": True,
        }
    ]
    assert event["source"]["observer"] == {"display": "OpenGP"}
    assert [e["what"]["reference"] for e in event["entity"]] == ["Patient/p1", "Observation/o1"]
    assert event["entity"][0]["role"]["code"] == "1"  # Patient


def test_a_sign_in_and_a_search_as_audit_events() -> None:
    signin = to_audit_event(
        _stored(entry_for(None, "signin", "failed", detail={"reason": "locked"}))
    )
    assert (signin["type"]["code"], signin["subtype"][0]["code"]) == ("110114", "110122")
    assert (signin["action"], signin["outcome"], signin["outcomeDesc"]) == ("E", "8", "locked")
    assert signin["agent"][0]["who"] == {"display": "anonymous"}
    assert "entity" not in signin
    search = AuditEntry(
        "search", "success", "staff/u1", resource_type="Patient", detail={"parameters": ["name"]}
    )
    query = to_audit_event(_stored(search))["entity"][0]
    assert query["role"]["code"] == "24"
    assert query["detail"] == [{"type": "parameters", "valueString": "name"}]
