"""Verified practice migration: a practice moves from one OpenGP (SQLite) to another
(PostgreSQL) and back with `opengp export`, `opengp import` and `opengp migrate verify`, with
nothing lost; and verification names what is missing, altered, extra or dangling."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from opengp.cli import main
from opengp.demo.load import seed
from opengp.fhir import jsonio
from opengp.store.migrate import upgrade
from opengp.store.sql import SqlStore
from opengp.store.sql.dialects import make_engine
from opengp.store.sql.tables import resource
from tests.conftest import _empty
from tests.functional.bulk_helpers import PRACTICE

# A value whose precision must survive: 7.10 is not 7.1 (FHIR decimals).
PRECISE: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "precise-haemoglobin",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
    "valueQuantity": {"value": Decimal("7.10"), "unit": "mmol/L"},
}


def _practice(url: str) -> list[str]:
    """Seed the synthetic practice with a register Group, an edited record, a deleted one and
    a precise decimal; the patients' ids."""
    store = SqlStore.from_url(url)
    try:
        upgrade(store.engine)
        seed(store, PRACTICE)
        with store.writing() as tx:
            patients = sorted(
                tx.conn.scalars(select(resource.c.id).where(resource.c.resource_type == "Patient"))
            )
            members = [{"entity": {"reference": f"Patient/{p}"}} for p in patients]
            group = {"resourceType": "Group", "type": "person", "actual": True, "member": members}
            tx.save("Group", "register", group, method="PUT", previous=None)
            tx.save("Observation", PRECISE["id"], dict(PRECISE), method="PUT", previous=None)
            first = tx.current("Patient", patients[0])
            assert first is not None and first.content is not None
            edited = dict(jsonio.loads(first.content), gender="unknown")
            tx.save("Patient", patients[0], edited, method="PUT", previous=first)
            gone = tx.save("Basic", "gone", {"code": {"text": "x"}}, method="PUT", previous=None)
            tx.delete(gone)
    finally:
        store.dispose()
    return patients


def _report(directory: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((directory / "reconciliation.json").read_text())
    return report


def _counts(directory: Path) -> dict[str, int]:
    manifest = json.loads((directory / "manifest.json").read_text())
    return {o["type"]: o["count"] for o in manifest["output"]}


def _content(url: str, resource_type: str, id: str) -> bytes:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            content = conn.scalar(
                select(resource.c.content).where(
                    resource.c.resource_type == resource_type, resource.c.id == id
                )
            )
            assert isinstance(content, bytes)
            return content
    finally:
        engine.dispose()


def test_a_practice_moves_from_sqlite_to_postgres_and_back_with_nothing_lost(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = make_engine(postgres_url)
    _empty(engine)
    engine.dispose()
    source = f"sqlite:///{tmp_path / 'source.db'}"
    back = f"sqlite:///{tmp_path / 'back.db'}"
    patients = _practice(source)
    first, second = tmp_path / "first", tmp_path / "second"

    assert main(["export", "--out", str(first), "--database", source]) == 0
    assert main(["import", str(first), "--database", postgres_url]) == 0
    assert main(["migrate", "verify", str(first), "--database", postgres_url]) == 0
    assert main(["export", "--out", str(second), "--database", postgres_url]) == 0
    assert main(["import", str(second), "--database", back]) == 0
    assert main(["migrate", "verify", str(second), "--database", back]) == 0
    # Back where it started: the first export matches the practice after two moves.
    assert main(["migrate", "verify", str(first), "--database", back]) == 0
    out = capsys.readouterr().out
    assert out.count("Verified: every resource is present and unaltered") == 3

    counts = _counts(first)
    assert counts == _counts(second)
    assert counts["Patient"] == len(patients) and counts["Group"] == 1
    assert "Basic" not in counts  # deleted: not part of the practice any more
    report = _report(first)
    assert report["ok"] is True
    assert report["types"]["Patient"]["identical"] == len(patients)
    assert sum(t["identical"] for t in report["types"].values()) == sum(counts.values())
    assert report["references"]["checked"] > 0 and report["references"]["dangling"] == 0
    assert b'"value":7.10' in _content(back, "Observation", PRECISE["id"])
    edited = jsonio.loads(_content(back, "Patient", patients[0]))
    assert edited["gender"] == "unknown"
    assert edited["meta"]["versionId"] == "1"  # an import starts the history afresh


def test_verify_names_what_is_missing_altered_extra_or_dangling(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    patients = _practice(database_url)
    exported = tmp_path / "export"
    assert main(["export", "--out", str(exported), "--database", database_url]) == 0
    assert main(["export", "--out", str(exported), "--database", database_url]) == 1
    assert "not an empty directory" in capsys.readouterr().err

    store = SqlStore.from_url(database_url)
    try:
        with store.writing() as tx:
            altered = tx.current("Patient", patients[1])
            assert altered is not None and altered.content is not None
            body = dict(jsonio.loads(altered.content), birthDate="1901-01-01")
            tx.save("Patient", patients[1], body, method="PUT", previous=altered)
            removed = tx.current("Observation", PRECISE["id"])
            assert removed is not None
            tx.delete(removed)
            extra = {"resourceType": "Patient", "gender": "female"}
            tx.save("Patient", "extra", extra, method="PUT", previous=None)
            # Patients refer to the practice: without it, their references dangle.
            [practice_id] = tx.conn.scalars(
                select(resource.c.id).where(resource.c.resource_type == "Organization")
            )
            practice = tx.current("Organization", practice_id)
            assert practice is not None
            tx.delete(practice)
    finally:
        store.dispose()

    assert main(["migrate", "verify", str(exported), "--database", database_url]) == 1
    assert "does not hold exactly what the export holds" in capsys.readouterr().err
    report = _report(exported)
    assert report["ok"] is False
    assert report["types"]["Patient"]["alteredIds"] == [patients[1]]
    assert report["types"]["Patient"]["extraIds"] == ["extra"]
    assert report["types"]["Observation"]["missingIds"] == [PRECISE["id"]]
    assert report["types"]["Organization"]["missingIds"] == [practice_id]
    dangling = report["references"]["danglingExamples"]
    assert report["references"]["dangling"] >= len(patients)
    assert dangling and all(d.endswith(f" -> Organization/{practice_id}") for d in dangling)

    patient_file = exported / "Patient.ndjson"
    patient_file.write_bytes(patient_file.read_bytes()[:-200])  # truncated in transit
    assert main(["migrate", "verify", str(exported), "--database", database_url]) == 1
    problems = _report(exported)["problems"]
    assert any("Patient.ndjson: its SHA-256 differs" in p for p in problems)
    assert any("Patient.ndjson line" in p for p in problems)  # the cut line
    # And an import of the damaged export refuses the damaged file as a whole.
    target = f"sqlite:///{tmp_path / 'target.db'}"
    assert main(["import", str(exported), "--database", target]) == 1
    assert "Patient.ndjson: its SHA-256 differs from the manifest's" in capsys.readouterr().err
