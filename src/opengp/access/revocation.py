"""The revoked access tokens of a database, kept in memory so a request needs no lookup.

Checking the `revoked_token` table on every request was a database round trip per FHIR
request, the largest part of authenticating one. Instead each process keeps the revoked
token ids (there are few: a row lives only until its token would have expired anyway) and
re-reads them when its copy is older than `REFRESH_SECONDS`.

A token revoked through this process (`noted` by `tokens.revoke`) is refused by this process
at once, even before the revoking transaction commits. A token revoked through another
process on the same database (another server, another worker) is refused here within
`REFRESH_SECONDS`: the one trade-off, stated in docs/security.md.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable

from sqlalchemy import Connection, Engine, select

from opengp.store.sql.access_tables import revoked_token

# How stale this process's copy may be: the longest a token revoked elsewhere stays usable
# here. Tokens live minutes (5 for system clients), so one second is a small part of that.
REFRESH_SECONDS = 1.0

_READ_ALL = select(revoked_token.c.jti)


class RevocationList:
    """One database's revoked token ids, re-read at most every `refresh_seconds`."""

    def __init__(
        self,
        refresh_seconds: float = REFRESH_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.refresh_seconds = refresh_seconds
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._read: frozenset[str] | None = None  # as last read from the table
        self._read_at = 0.0
        self._noted: set[str] = set()  # revoked through this process since then

    def note(self, jti: str) -> None:
        """A token revoked through this process: refused from now on."""
        with self._lock:
            self._noted.add(jti)

    def is_revoked(self, conn: Connection, jti: str) -> bool:
        read = self._read
        if read is None or self.monotonic() - self._read_at >= self.refresh_seconds:
            read = self._refresh(conn)
        return jti in read or jti in self._noted

    def _refresh(self, conn: Connection) -> frozenset[str]:
        # One thread re-reads; the others go on with the copy they have, if there is one.
        if not self._lock.acquire(blocking=self._read is None):
            assert self._read is not None
            return self._read
        try:
            stale = self._read is None
            stale = stale or self.monotonic() - self._read_at >= self.refresh_seconds
            if stale:
                started = self.monotonic()
                read = frozenset(conn.execute(_READ_ALL).scalars())
                # Noted ids now in the table are covered by it (and swept with it later).
                self._noted -= read
                self._read, self._read_at = read, started
            assert self._read is not None
            return self._read
        finally:
            self._lock.release()


_LISTS: weakref.WeakKeyDictionary[Engine, RevocationList] = weakref.WeakKeyDictionary()
_LISTS_LOCK = threading.Lock()


def revocations(engine: Engine) -> RevocationList:
    """The revocation list of the database `engine` connects to, in this process."""
    found = _LISTS.get(engine)
    if found is None:
        with _LISTS_LOCK:
            found = _LISTS.setdefault(engine, RevocationList())
    return found
