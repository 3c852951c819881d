"""`opengp audit verify`: check the audit trail's hash chain."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from opengp.cli import DATABASE_HELP, Failure, _settings


def _head(text: str) -> tuple[int, str]:
    from opengp.store.sql.audit import parse_head

    try:
        return parse_head(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_audit_verify(args: argparse.Namespace) -> None:
    from sqlalchemy import make_url

    from opengp.access.audit import verify
    from opengp.store.sql.dialects import make_engine

    url = _settings(args).database_url
    parsed = make_url(url)
    # make_engine would create an empty SQLite file: say there is no database instead.
    database = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if database not in (None, "", ":memory:") and not Path(str(database)).is_file():
        raise Failure(f"no database at {database}")
    engine = make_engine(url)
    try:
        report = verify(engine, args.expect_head)
    finally:
        engine.dispose()
    if not report.intact:
        raise Failure(report.summary())
    print(report.summary())


def register(commands: Any) -> None:
    audit = commands.add_parser("audit", help="the audit trail")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    verify = audit_commands.add_parser(
        "verify",
        help="check no audit entry was edited, deleted or reordered",
        description=(
            "Recompute the audit trail's hash chain. Exit 0 and print the head (SEQ:HASH) "
            "when intact; record the head elsewhere and pass it back with --expect-head to "
            "detect deletion of the newest entries too. Exit 1 naming the first broken entry."
        ),
    )
    verify.add_argument("--database", help=DATABASE_HELP)
    verify.add_argument(
        "--expect-head",
        type=_head,
        metavar="SEQ:HASH",
        help="a head printed by an earlier run: it must still be there, unchanged",
    )
    verify.set_defaults(run=cmd_audit_verify)
