"""Removing the audit trail's append-only guard, as an attacker with DDL rights could, so that
the tamper-detection tests can tamper."""

from __future__ import annotations

from sqlalchemy import Connection


def drop_guard(conn: Connection) -> list[str]:
    """Drop audit_event's append-only triggers, as someone with DDL rights could; returns
    the SQL that creates them again."""
    if conn.dialect.name == "postgresql":
        query = (
            "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger"
            " WHERE tgrelid = 'audit_event'::regclass AND NOT tgisinternal"
        )
        on_table = " ON audit_event"
    else:
        query = (
            "SELECT name, sql FROM sqlite_master"
            " WHERE type = 'trigger' AND tbl_name = 'audit_event'"
        )
        on_table = ""
    guard = {str(name): str(sql) for name, sql in conn.exec_driver_sql(query).all()}
    assert guard, "audit_event has no append-only guard"
    for name in guard:
        conn.exec_driver_sql(f"DROP TRIGGER {name}{on_table}")
    return list(guard.values())
