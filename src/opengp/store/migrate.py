"""Schema migrations (Alembic), applied by `opengp db upgrade` and by `opengp serve`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(
    engine: Engine, revision: str = "head", progress: Callable[[int, int], None] | None = None
) -> None:
    """Apply the migrations, then re-index search if its definitions changed (at head)."""
    command.upgrade(alembic_config(engine), revision)
    if revision == "head":
        from opengp.store.sql.reindex import ensure_current
        from opengp.store.sql.store import SqlStore

        ensure_current(SqlStore(engine), progress)


def head_revision() -> str | None:
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def schema_status(engine: Engine) -> tuple[bool, str]:
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    head = head_revision()
    if current != head:
        return (
            False,
            f"schema at {current or 'nothing'}, code needs {head}: run 'opengp db upgrade'",
        )
    from opengp.store.sql.reindex import is_current

    with engine.connect() as conn:
        if not is_current(conn):
            return False, "search index built by other definitions: run 'opengp db upgrade'"
    return True, f"schema at {head}"
