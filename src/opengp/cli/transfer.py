"""`opengp transfer pull`: bring a newly registered patient's record from their old
practice's OpenGP (docs/bulk.md, "Patient record transfer").

    opengp transfer pull --from URL --client-id ID --client-secret SECRET --nhs-number N
                         [--practice ODS] [--database URL]

The client id and secret are those the old practice registered for this practice
(`opengp clients add --purpose migration` there). The secret may come from
$OPENGP_TRANSFER_CLIENT_SECRET instead, to keep it out of the process list. Without
--practice, the practice here is the one the staff accounts belong to.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from typing import Any

from opengp.access.principal import Principal
from opengp.cli import DATABASE_HELP, Failure, open_store
from opengp.fhir.nhs_number import is_valid_nhs_number

# Who the audit trail and the Provenance say received the record from the command line.
RECEIVER = Principal(
    "system",
    "opengp-cli",
    "opengp command line",
    scopes=frozenset({"system/*.cruds"}),
    purpose="migration",
)
SECRET_VARIABLE = "OPENGP_TRANSFER_CLIENT_SECRET"  # noqa: S105 (its name, not a secret)
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"


def register(commands: Any) -> None:
    transfer = commands.add_parser("transfer", help="patient record transfer (GP2GP)")
    steps = transfer.add_subparsers(dest="transfer_command", required=True, metavar="COMMAND")
    pull = steps.add_parser("pull", help="pull a patient's record from their old practice's OpenGP")
    pull.add_argument(
        "--from",
        dest="source",
        required=True,
        type=_url,
        metavar="URL",
        help="the old practice's FHIR base URL, e.g. https://old.example.org/fhir",
    )
    pull.add_argument("--client-id", required=True, type=_text, help="client id given there")
    pull.add_argument("--client-secret", type=_text, help=f"its secret (or ${SECRET_VARIABLE})")
    pull.add_argument(
        "--nhs-number", required=True, type=_nhs_number, metavar="N", help="the patient's"
    )
    pull.add_argument(
        "--practice", type=_ods, metavar="ODS", help="the practice here (its ODS code)"
    )
    pull.add_argument("--database", help=DATABASE_HELP)
    pull.set_defaults(run=cmd_pull)


def _url(text: str) -> str:
    from opengp.services.transfer.remote import check_base_url

    try:
        return check_base_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _text(text: str) -> str:
    if not text.strip() or len(text) > 500 or any(ord(c) < 32 for c in text):
        raise argparse.ArgumentTypeError("must be 1 to 500 printable characters")
    return text.strip()


def _nhs_number(text: str) -> str:
    number = text.replace(" ", "")
    if not is_valid_nhs_number(number):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a valid NHS number (ten digits, the last a modulus 11 check digit)"
        )
    return number


def _ods(text: str) -> str:
    code = text.strip().upper()
    if not 3 <= len(code) <= 10 or not code.isascii() or not code.isalnum():
        raise argparse.ArgumentTypeError(f"{text!r} is not an ODS code (3 to 10 letters, digits)")
    return code


def cmd_pull(args: argparse.Namespace) -> None:
    from opengp.services.transfer import Remote, TransferError, transfer_record

    secret = args.client_secret or os.environ.get(SECRET_VARIABLE, "").strip()
    if not secret:  # bad usage (exit 2), as argparse answers a missing argument
        print(
            f"opengp: give the client secret: --client-secret or ${SECRET_VARIABLE}",
            file=sys.stderr,
        )
        raise SystemExit(2)
    remote = Remote(args.source, args.client_id, secret)
    store = open_store(args)
    try:
        practice = args.practice or _practice_of_staff(store)
        try:
            result = transfer_record(
                store, remote, args.nhs_number, practice, RECEIVER, datetime.now(UTC)
            )
        except TransferError as exc:
            raise Failure(str(exc)) from None
    finally:
        store.dispose()
    where = f"{result.practice.name} ({result.practice.ods_code})"
    if result.received:
        print(
            f"Received the record of NHS number {args.nhs_number} as Patient/{result.patient_id}:"
            f" {result.created} resources created, {result.updated} updated,"
            f" {result.unchanged} already here; registered at {where}."
        )
    else:
        print(f"The record of NHS number {args.nhs_number} was already received: nothing to add.")
    if result.ended:
        print(f"Ended the registration at the old practice ({len(result.ended)} episode).")
    else:
        print("The registration at the old practice is already ended.")


def _practice_of_staff(store: Any) -> str:
    """The ODS code of the one organisation the staff accounts here belong to."""
    from sqlalchemy import select

    from opengp.fhir import jsonio
    from opengp.store.sql.access_tables import user_account

    with store.reading() as tx:
        ids = sorted(
            set(
                tx.conn.scalars(
                    select(user_account.c.organization_id).where(
                        user_account.c.kind == "staff",
                        user_account.c.organization_id.is_not(None),
                        user_account.c.disabled.is_(False),
                    )
                )
            )
        )
        stored = tx.current("Organization", ids[0]) if len(ids) == 1 else None
    if len(ids) != 1:
        raise Failure("say which practice here receives the record: --practice ODS")
    if stored is None or stored.content is None:
        raise Failure(f"the staff's organisation Organization/{ids[0]} is not here")
    for identifier in jsonio.loads(stored.content).get("identifier") or ():
        if isinstance(identifier, dict) and identifier.get("system") == ODS_SYSTEM:
            return str(identifier.get("value"))
    raise Failure(f"Organization/{ids[0]} has no ODS code: give it with --practice ODS")
