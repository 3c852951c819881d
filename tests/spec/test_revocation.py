"""The in-memory revocation list: revoked here, refused at once; revoked elsewhere, refused
after the next re-read. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opengp.access.revocation import REFRESH_SECONDS, RevocationList, revocations
from opengp.access.tokens import revoke
from opengp.store.sql import SqlStore

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_token_revoked_in_this_process_is_refused_at_once(store: SqlStore) -> None:
    with store.reading() as tx:
        assert not revocations(store.engine).is_revoked(tx.conn, "jti-here")
    with store.writing() as tx:
        revoke(tx.conn, "jti-here", LATER, NOW)
    with store.reading() as tx:
        assert revocations(store.engine).is_revoked(tx.conn, "jti-here")
        assert not revocations(store.engine).is_revoked(tx.conn, "jti-other")


def test_a_token_revoked_elsewhere_is_refused_after_the_next_re_read(store: SqlStore) -> None:
    ticks = Ticks()
    here = RevocationList(monotonic=ticks)  # this process's copy; `revoke` notes the other's
    with store.reading() as tx:
        assert not here.is_revoked(tx.conn, "jti-elsewhere")
    with store.writing() as tx:
        revoke(tx.conn, "jti-elsewhere", LATER, NOW)
    ticks.now += REFRESH_SECONDS / 2
    with store.reading() as tx:
        assert not here.is_revoked(tx.conn, "jti-elsewhere")  # the documented delay
    ticks.now += REFRESH_SECONDS / 2
    with store.reading() as tx:
        assert here.is_revoked(tx.conn, "jti-elsewhere")
        assert not here.is_revoked(tx.conn, "jti-never")


def test_a_noted_token_stays_refused_until_the_table_holds_it(store: SqlStore) -> None:
    ticks = Ticks()
    here = RevocationList(monotonic=ticks)
    here.note("jti-uncommitted")  # revoked here, its transaction not committed yet
    ticks.now += REFRESH_SECONDS
    with store.reading() as tx:
        assert here.is_revoked(tx.conn, "jti-uncommitted")  # re-read without it: still noted
    with store.writing() as tx:
        revoke(tx.conn, "jti-uncommitted", LATER, NOW)
    ticks.now += REFRESH_SECONDS
    with store.reading() as tx:
        assert here.is_revoked(tx.conn, "jti-uncommitted")
