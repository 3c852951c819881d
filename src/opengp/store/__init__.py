"""The resource store: current resources and their full version history.

`ResourceStore` is the interface every layer above uses; `opengp.store.sql` implements it on
SQLite and PostgreSQL with one SQLAlchemy Core code path.
"""

from opengp.store.base import (
    HistoryEntry,
    HistoryPage,
    HistoryQuery,
    ReadTransaction,
    ResourceStore,
    SearchPage,
    StoredResource,
    WriteConflict,
    WriteTransaction,
)

__all__ = [
    "HistoryEntry",
    "HistoryPage",
    "HistoryQuery",
    "ReadTransaction",
    "ResourceStore",
    "SearchPage",
    "StoredResource",
    "WriteConflict",
    "WriteTransaction",
]
