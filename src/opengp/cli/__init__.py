"""The `opengp` command.

Exit codes: 0 success, 2 bad usage, 1 other failure (with a one-line reason on stderr).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opengp.config import ConfigError, Settings

if TYPE_CHECKING:
    from opengp.store.sql import SqlStore

# Further commands, each a module here with `register(subparsers)`.
COMMAND_MODULES: tuple[str, ...] = ("audit", "bulk", "clients", "transfer", "users")

DEMO_SCOPES = "system/*.cruds"
DEMO_SIGN_IN = """
Sign-in accounts (shown only now; each one-time password is replaced at first sign-in, and
staff also enter the code from an authenticator app set up with the link shown):"""
DEMO_ACCESS = """
API access (a system client with {scopes}; the secret is shown only now):
  client id:     {client_id}
  client secret: {secret}
Serve it with 'opengp serve', then get a token and read the record:
  TOKEN=$(curl -s -u '{client_id}:{secret}' -d grant_type=client_credentials \\
    -d 'scope={scopes}' http://127.0.0.1:8000/oauth2/token \\
    | python3 -c "import json, sys; print(json.load(sys.stdin)['access_token'])")
  curl -H "Authorization: Bearer $TOKEN" 'http://127.0.0.1:8000/fhir/Patient?_count=5'"""
DATABASE_HELP = "database URL (default: $OPENGP_DATABASE_URL or sqlite:///var/opengp.db)"


class Failure(Exception):
    """A command failed for a reason the user can act on."""


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(database_url=args.database)


def cmd_db_upgrade(args: argparse.Namespace) -> None:
    from opengp.store.migrate import upgrade
    from opengp.store.sql.dialects import make_engine

    settings = _settings(args)
    engine = make_engine(settings.database_url)
    try:
        with _reindex_bar() as progress:
            upgrade(engine, progress=progress)
    finally:
        engine.dispose()
    print(f"database schema is up to date ({_redacted(settings.database_url)})")


def cmd_db_reindex(args: argparse.Namespace) -> None:
    from opengp.store.sql.reindex import reindex

    store = open_store(args)
    try:
        with _reindex_bar() as progress:
            done = reindex(store, progress)
    finally:
        store.dispose()
    print(f"re-indexed {done} resources for search")


@contextmanager
def _reindex_bar() -> Iterator[Callable[[int, int], None]]:
    """A progress bar for re-indexing, shown only if there is any (and on a terminal)."""
    from tqdm import tqdm

    bar: Any = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(
                total=total, unit="resource", desc="re-indexing", file=sys.stderr, disable=None
            )
        bar.n = done
        bar.refresh()

    try:
        yield progress
    finally:
        if bar is not None:
            bar.close()


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from opengp.store.migrate import upgrade
    from opengp.store.sql.dialects import make_engine

    settings = _settings(args)
    if settings.database_url.startswith("sqlite"):
        # The embedded database is this process's own: bring its schema up to date.
        engine = make_engine(settings.database_url)
        try:
            upgrade(engine)
        finally:
            engine.dispose()
    os.environ["OPENGP_DATABASE_URL"] = settings.database_url
    uvicorn.run(
        "opengp.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="info",
        access_log=False,  # access logs would carry ids and search values (patient data)
    )


def cmd_demo(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from opengp.access.clients import register_client
    from opengp.demo.accounts import create_demo_accounts
    from opengp.demo.generator import practice_of
    from opengp.demo.load import seed, write_ndjson
    from opengp.demo.model import DemoConfig
    from opengp.store.migrate import upgrade
    from opengp.store.sql import SqlStore
    from opengp.store.sql.reindex import refresh_statistics
    from opengp.store.sql.store import SqlWriteTransaction

    config = DemoConfig(patients=args.patients, seed=args.seed, as_of=args.as_of or date.today())
    # A bar on a terminal; nothing when the output is a log (disable=None).
    bar = tqdm(total=config.patients, unit="patient", file=sys.stderr, disable=None)

    def progress(kind: str, patients: int) -> None:
        bar.n = patients
        bar.set_postfix_str(kind, refresh=False)
        bar.refresh()

    try:
        if args.ndjson:
            result = write_ndjson(config, Path(args.ndjson), progress)
            where = f"NDJSON files in {args.ndjson}"
        else:
            settings = _settings(args)
            store = SqlStore.from_url(settings.database_url)
            try:
                upgrade(store.engine)
                made: dict[str, Any] = {}

                def accounts(tx: SqlWriteTransaction) -> None:
                    made["client"] = register_client(tx.conn, "demo", DEMO_SCOPES)
                    made["people"] = create_demo_accounts(tx.conn, config, practice_of(config))

                result = seed(store, config, progress, accounts)
                if not result.reused:
                    refresh_statistics(store.engine)  # search plans need them after a load
            finally:
                store.dispose()
            where = _redacted(settings.database_url)
    finally:
        bar.close()
    if result.reused:
        print(f"The demo practice (seed {config.seed}) is already in {where}: reusing it.")
    else:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(result.counts.items()))
        print(
            f"Demo practice: {config.patients} patients, {result.total} resources"
            f" in {result.seconds:.1f} s into {where}.\n  {kinds}"
        )
    if args.ndjson:
        return
    if result.reused:
        print(
            "Accounts and API clients made when it was seeded still work;"
            " 'opengp users add' and 'opengp clients add' make more."
        )
        return
    print(DEMO_SIGN_IN)
    for account in made["people"]:
        print(f"  {account.who}\n    username {account.created.username}", end="")
        print(f"   one-time password {account.created.one_time_password}")
        if account.created.totp_uri:
            print(f"    authenticator app: {account.created.totp_uri}")
    client_id, secret = made["client"]
    print(DEMO_ACCESS.format(scopes=DEMO_SCOPES, client_id=client_id, secret=secret))


def open_store(args: argparse.Namespace) -> SqlStore:
    """The store of --database, ready for use: the embedded SQLite database is migrated
    here; a server database must already be (`opengp db upgrade`)."""
    from sqlalchemy.exc import OperationalError

    from opengp.store.migrate import upgrade
    from opengp.store.sql import SqlStore

    url = _settings(args).database_url
    store = SqlStore.from_url(url)
    try:
        if store.dialect == "sqlite":
            upgrade(store.engine)  # the embedded database is ours to bring up to date
        else:
            ready, why = store.is_ready()
            if not ready:
                raise Failure(f"{_redacted(url)}: {why}")
    except OperationalError as exc:
        store.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise Failure(f"cannot use the database {_redacted(url)}: {reason}") from None
    except BaseException:
        store.dispose()
        raise
    return store


def _redacted(url: str) -> str:
    from sqlalchemy import make_url

    return make_url(url).render_as_string(hide_password=True)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-21") from None


def _port(text: str) -> int:
    value = _positive(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port")
    return value


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="opengp", description="OpenGP clinical system")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the web screens and the FHIR API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=8000)
    serve.add_argument("--workers", type=_positive, default=1)
    serve.add_argument("--database", help=DATABASE_HELP)
    serve.set_defaults(run=cmd_serve)

    db = commands.add_parser("db", help="database administration")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    db_upgrade = db_commands.add_parser("upgrade", help="apply schema migrations")
    db_upgrade.add_argument("--database", help=DATABASE_HELP)
    db_upgrade.set_defaults(run=cmd_db_upgrade)
    db_reindex = db_commands.add_parser(
        "reindex", help="rebuild the search index of every resource (upgrade does it when needed)"
    )
    db_reindex.add_argument("--database", help=DATABASE_HELP)
    db_reindex.set_defaults(run=cmd_db_reindex)

    demo = commands.add_parser("demo", help="seed a synthetic practice (no real patients)")
    demo.add_argument("--patients", type=_positive, default=1000)
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--database", help=DATABASE_HELP)
    demo.add_argument("--as-of", type=_date, help="the practice's today (default: today)")
    demo.add_argument("--ndjson", metavar="DIR", help="write NDJSON files instead of loading")
    demo.set_defaults(run=cmd_demo)

    for module in COMMAND_MODULES:
        import_module(f"opengp.cli.{module}").register(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except (Failure, ConfigError, ValueError, OSError) as exc:
        print(f"opengp: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # one line, not a traceback, for any other failure
        print(f"opengp: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
