"""The store on SQL databases: SQLite (embedded) and PostgreSQL, one SQLAlchemy Core path."""

from opengp.store.sql.store import SqlStore

__all__ = ["SqlStore"]

# The access layer's tables share the store's metadata (and its migrations).
from opengp.store.sql import access_tables as _access_tables  # noqa: F401
from opengp.store.sql import bulk_tables as _bulk_tables  # noqa: F401
from opengp.store.sql import search_tables as _search_tables  # noqa: F401
