"""`opengp audit verify` as an operator runs it: a real process, exit codes, one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import update

from opengp.access.audit import AuditEntry
from opengp.store.sql import SqlStore
from opengp.store.sql.access_tables import audit_event
from tests.audit_guard import drop_guard


def _opengp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opengp", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_verify_passes_then_names_the_tampered_entry(store: SqlStore, database_url: str) -> None:
    with store.auditing() as log:
        log.audit(
            *[AuditEntry("read", "success", f"staff/u{i}", patient_id="p1") for i in range(5)]
        )
    with store.writing() as tx:
        tx.audit(AuditEntry("create", "success", "staff/u1", patient_id="p1"))

    intact = _opengp("audit", "verify", "--database", database_url)
    assert intact.returncode == 0, intact.stderr
    line = intact.stdout.strip()
    assert line.startswith("audit trail intact: 6 entries, head 6:")
    head = line.rsplit(" ", 1)[1]

    again = _opengp("audit", "verify", "--database", database_url, "--expect-head", head)
    assert again.returncode == 0, again.stderr

    with store.engine.begin() as conn:
        guard = drop_guard(conn)
        conn.execute(update(audit_event).where(audit_event.c.seq == 3).values(principal="x"))
        for sql in guard:  # the PostgreSQL test database is shared by the whole session
            conn.exec_driver_sql(sql)
    broken = _opengp("audit", "verify", "--database", database_url)
    assert broken.returncode == 1
    assert broken.stdout == ""
    assert broken.stderr.strip().splitlines() == [
        "opengp: audit trail broken at entry 3 (edited): entry 3 does not match its hash"
    ]


def test_verify_checks_a_recorded_head(store: SqlStore, database_url: str) -> None:
    with store.auditing() as log:
        log.audit(*[AuditEntry("read", "success", "staff/u1") for _ in range(4)])
    missing = _opengp(
        "audit", "verify", "--database", database_url, "--expect-head", f"9:{'a' * 64}"
    )
    assert missing.returncode == 1
    assert "the recorded head, entry 9, is missing" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


def test_verify_usage_errors(tmp_path: Path) -> None:
    bad_head = _opengp("audit", "verify", "--expect-head", "12")
    assert bad_head.returncode == 2
    assert "is not SEQ:HASH" in bad_head.stderr
    nowhere = tmp_path / "none.db"
    absent = _opengp("audit", "verify", "--database", f"sqlite:///{nowhere}")
    assert absent.returncode == 1
    assert absent.stderr.strip() == f"opengp: no database at {nowhere}"
    assert not nowhere.exists()
