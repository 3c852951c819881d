"""The store on SQL databases: SQLite (embedded) and PostgreSQL, one SQLAlchemy Core path."""

from opengp.store.sql.store import SqlStore

__all__ = ["SqlStore"]
