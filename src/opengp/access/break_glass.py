"""Break-glass: a registered clinician opens a record they have no legitimate relationship
with, after stating why (policy rule 4, docs/security.md).

The access lasts BREAK_GLASS_DURATION, is written to the audit trail as a security alert
(`break-glass`, purpose "emergency treatment") that the Privacy Officer reviews, and every
access it allows is flagged in its own audit entry.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import Connection, insert, select

from opengp.access import policy
from opengp.access.principal import BreakGlass, Principal
from opengp.store.sql.access_tables import break_glass

BREAK_GLASS_DURATION = timedelta(hours=1)
MIN_REASON, MAX_REASON = 10, 500


class BreakGlassRefused(Exception):
    """The glass may not be broken; the message says why (safe to show)."""


def open_record(
    conn: Connection, principal: Principal, patient_id: str, reason: str, now: datetime
) -> BreakGlass:
    """Record a break-glass access (in the caller's transaction, with its audit entry)."""
    if not policy.may_break_glass(principal):
        raise BreakGlassRefused(
            "only registered clinicians (R8000, R8001, R8003) may break the glass"
        )
    stated = " ".join(reason.split())
    if not MIN_REASON <= len(stated) <= MAX_REASON or not stated.isprintable():
        raise BreakGlassRefused(
            f"state the reason for opening this record in {MIN_REASON} to {MAX_REASON} characters"
        )
    grant = BreakGlass(patient_id, stated, now + BREAK_GLASS_DURATION)
    conn.execute(
        insert(break_glass).values(
            id=str(uuid.uuid4()),
            user_id=principal.id,
            patient_id=patient_id,
            reason=stated,
            opened=now,
            until=grant.until,
        )
    )
    return grant


def active(conn: Connection, user_id: str, now: datetime) -> tuple[BreakGlass, ...]:
    """The user's break-glass accesses that have not yet run out."""
    c = break_glass.c
    rows = conn.execute(
        select(c.patient_id, c.reason, c.until).where(c.user_id == user_id, c.until > now)
    )
    return tuple(BreakGlass(r.patient_id, r.reason, r.until) for r in rows)
