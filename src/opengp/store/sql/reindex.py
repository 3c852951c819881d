"""Re-indexing: rebuild every resource's search rows when the search definitions change.

The rows are built by code (opengp.search) from definitions (the generated registry), so a
new release may index differently from the one that wrote them. `search_state` remembers
which definitions built the rows; `opengp db upgrade` re-indexes when they differ, and
readiness (/readyz) fails until it has, rather than answer searches wrongly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from sqlalchemy import Connection, Engine, and_, delete, func, select, tuple_

from opengp.fhir import jsonio
from opengp.search.definitions.r4 import SEARCH_PARAMETERS
from opengp.store.sql.search_tables import SEARCH_TABLES, search_state
from opengp.store.sql.store import SqlStore
from opengp.store.sql.tables import identifier_index, resource

# Bump when the extraction (opengp.search.extract, .fhirpath) changes what rows it builds.
INDEXING_VERSION = 2
DEFINITIONS_FINGERPRINT = hashlib.sha256(
    f"{INDEXING_VERSION}:{sorted(SEARCH_PARAMETERS.items())!r}".encode()
).hexdigest()[:32]
STATE = "definitions"
BATCH = 1000
# Called with (resources re-indexed so far, total).
Progress = Callable[[int, int], None]


def indexed_with(conn: Connection) -> str | None:
    return conn.scalar(select(search_state.c.value).where(search_state.c.name == STATE))


def is_current(conn: Connection) -> bool:
    """True when the rows were built by these definitions (or there is nothing to index)."""
    if indexed_with(conn) == DEFINITIONS_FINGERPRINT:
        return True
    return conn.scalar(select(resource.c.id).where(~resource.c.deleted).limit(1)) is None


def reindex(store: SqlStore, progress: Progress | None = None) -> int:
    """Rebuild the search rows of every current resource, in batches; returns how many.

    Each batch is its own transaction (a whole practice would hold the SQLite write lock for
    minutes otherwise); searches during the run may miss resources not yet re-indexed, which
    is why readiness reports the index stale until the marker is written at the end.
    """
    r = resource.c
    with store.reading() as tx:
        total = tx.conn.scalar(select(func.count()).where(~r.deleted)) or 0
    done, after = 0, ("", "")
    while True:
        with store.writing() as tx:
            rows = tx.conn.execute(
                select(r.resource_type, r.id, r.content)
                .where(~r.deleted, tuple_(r.resource_type, r.id) > tuple_(*after))
                .order_by(r.resource_type, r.id)
                .limit(BATCH)
            ).all()
            if not rows:
                _mark(tx.conn)
                break
            for table in (*SEARCH_TABLES, identifier_index):
                c = table.c
                tx.conn.execute(
                    delete(table).where(
                        and_(
                            tuple_(c.resource_type, c.resource_id).in_(
                                [(row.resource_type, row.id) for row in rows]
                            )
                        )
                    )
                )
            tx.insert_index_rows([jsonio.loads(row.content) for row in rows])
        done += len(rows)
        after = (rows[-1].resource_type, rows[-1].id)
        if progress:
            progress(done, total)
    if done:
        refresh_statistics(store.engine)
    return done


def refresh_statistics(engine: Engine) -> None:
    """Have the database measure its tables again (ANALYZE), after a bulk load or a
    re-index has changed them wholesale.

    The planners choose join orders and indexes by these statistics: with none (a fresh
    load), PostgreSQL takes every search table for a few rows and SQLite picks indexes by
    shape alone. PostgreSQL's autovacuum analyses changed tables in time, but not before
    the first searches after a load (and not at all where it is off); SQLite never does on
    its own. `analysis_limit` bounds SQLite's work to a sample of each index (about a
    second at a million resources), as PostgreSQL samples too.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA analysis_limit = 1000")
        conn.exec_driver_sql("ANALYZE")


def _mark(conn: Connection) -> None:
    conn.execute(delete(search_state).where(search_state.c.name == STATE))
    conn.execute(search_state.insert().values(name=STATE, value=DEFINITIONS_FINGERPRINT))


def ensure_current(store: SqlStore, progress: Progress | None = None) -> int:
    """Re-index if the rows were built by other definitions; returns how many were."""
    with store.reading() as tx:
        if indexed_with(tx.conn) == DEFINITIONS_FINGERPRINT:
            return 0
    return reindex(store, progress)
