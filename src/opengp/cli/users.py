"""`opengp users add|list|link|unlink`: create staff, patient and proxy accounts; list
them; link them to their identities at an OpenID provider (NHS CIS2, NHS login).

A new account gets a random one-time password, printed here once (never a fixed one); it
must be changed at first sign-in.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from opengp.access.accounts import (
    ACCOUNT_KINDS,
    NATIONAL_ROLES,
    Account,
    create_user,
    grant_proxy,
    list_accounts,
    normalise_username,
)
from opengp.access.identities import IdentityError, link, unlink
from opengp.cli import DATABASE_HELP, Failure, open_store

# Who proxy_grant.granted_by names for grants made on the command line.
CLI_GRANTOR = "opengp-cli"


def _role(text: str) -> str:
    code = text.strip().upper()
    if code not in NATIONAL_ROLES:
        known = ", ".join(f"{c} ({name})" for c, name in NATIONAL_ROLES.items())
        raise argparse.ArgumentTypeError(f"unknown national role {text!r}: use one of {known}")
    return code


def register(commands: Any) -> None:
    users = commands.add_parser("users", help="user accounts (staff, patients, proxies)")
    users_commands = users.add_subparsers(dest="users_command", required=True, metavar="COMMAND")

    add = users_commands.add_parser("add", help="create an account with a one-time password")
    add.add_argument("--username", required=True)
    add.add_argument("--kind", required=True, choices=ACCOUNT_KINDS)
    add.add_argument("--name", required=True, help="display name, e.g. 'Dr Asha Patel'")
    add.add_argument(
        "--role",
        action="append",
        type=_role,
        default=[],
        help="national RBAC role code (repeatable): " + ", ".join(NATIONAL_ROLES),
    )
    add.add_argument("--fhir-user", help="Practitioner/<id>, Patient/<id> or RelatedPerson/<id>")
    add.add_argument("--practitioner-role", help="PractitionerRole/<id> (staff)")
    add.add_argument("--organization", help="Organization id the account acts for")
    add.add_argument("--proxy-for", metavar="PATIENT_ID", help="patient a proxy acts for")
    add.add_argument("--proxy-scopes", help='e.g. "patient/Appointment.cruds patient/*.rs"')
    add.add_argument("--totp", action="store_true", help="enrol an authenticator app (TOTP)")
    add.add_argument("--database", help=DATABASE_HELP)
    add.add_argument("--json", action="store_true", help="print the result as JSON")
    add.set_defaults(run=lambda args: cmd_users_add(args, add))

    listing = users_commands.add_parser("list", help="list accounts (no secrets)")
    listing.add_argument("--database", help=DATABASE_HELP)
    listing.add_argument("--json", action="store_true", help="print the result as JSON")
    listing.set_defaults(run=cmd_users_list)

    linking = users_commands.add_parser(
        "link",
        help="link an account to the person's identity at an OpenID provider (NHS CIS2 ...)",
        description="A sign-in with the provider then opens this account. Staff are linked"
        " only this way; patients are also found by the NHS number NHS login verified.",
    )
    unlinking = users_commands.add_parser("unlink", help="remove such a link")
    for command in (linking, unlinking):
        if command is linking:
            command.add_argument("--username", required=True)
        command.add_argument(
            "--issuer", required=True, help="the provider's issuer URL, as OPENGP_OIDC_*_ISSUER"
        )
        command.add_argument(
            "--subject", required=True, help="the person's subject (sub) there, e.g. a CIS2 UUID"
        )
        command.add_argument("--database", help=DATABASE_HELP)
    linking.set_defaults(run=cmd_users_link)
    unlinking.set_defaults(run=cmd_users_unlink)


def cmd_users_add(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    proxy_for: str | None = args.proxy_for
    proxy_scopes: str | None = args.proxy_scopes
    if proxy_for is not None or proxy_scopes is not None:
        if args.kind != "proxy":
            parser.error("--proxy-for and --proxy-scopes are for --kind proxy")
        if proxy_for is None or proxy_scopes is None:
            parser.error("--proxy-for and --proxy-scopes go together")
    store = open_store(args)
    try:
        with store.writing() as tx:
            created = create_user(
                tx.conn,
                username=args.username,
                kind=args.kind,
                display_name=args.name,
                roles=args.role,
                fhir_user=args.fhir_user,
                practitioner_role=args.practitioner_role,
                organization_id=args.organization,
                with_totp=args.totp,
                now=store.clock(),
            )
            if proxy_for is not None and proxy_scopes is not None:
                grant_proxy(
                    tx.conn,
                    created.user_id,
                    proxy_for,
                    proxy_scopes,
                    CLI_GRANTOR,
                    now=store.clock(),
                )
    finally:
        store.dispose()
    if args.json:
        print(
            json.dumps(
                {
                    "user_id": created.user_id,
                    "username": created.username,
                    "one_time_password": created.one_time_password,
                    "totp_uri": created.totp_uri,
                }
            )
        )
        return
    print(f"Created {args.kind} account {created.username!r} (id {created.user_id}).")
    print("One-time password (shown only now; to be changed at first sign-in):")
    print(f"  {created.one_time_password}")
    if created.totp_uri is not None:
        print("Authenticator app set-up (otpauth URI, shown only now):")
        print(f"  {created.totp_uri}")


def _status(account: Account, now: datetime) -> str:
    if account.disabled:
        return "disabled"
    if account.locked(now):
        assert account.locked_until is not None
        return "locked until " + account.locked_until.isoformat(timespec="seconds")
    return "must change password" if account.must_change_password else "active"


def cmd_users_list(args: argparse.Namespace) -> None:
    store = open_store(args)
    try:
        with store.reading() as tx:
            accounts = list_accounts(tx.conn)
        now = store.clock()
    finally:
        store.dispose()
    rows: list[dict[str, Any]] = [
        {
            "username": a.username,
            "kind": a.kind,
            "roles": sorted(a.roles),
            "locked": a.locked(now),
            "disabled": a.disabled,
            "totp": a.totp_enrolled,
            "status": _status(a, now),
        }
        for a in accounts
    ]
    if args.json:
        print(json.dumps(rows))
        return
    if not rows:
        print("No accounts yet: create one with 'opengp users add'.")
        return
    width = max(len("USERNAME"), *(len(r["username"]) for r in rows))
    print(f"{'USERNAME':<{width}}  {'KIND':<7}  {'ROLES':<17}  {'TOTP':<4}  STATUS")
    for r in rows:
        roles = " ".join(r["roles"]) or "-"
        totp = "yes" if r["totp"] else "no"
        print(f"{r['username']:<{width}}  {r['kind']:<7}  {roles:<17}  {totp:<4}  {r['status']}")


def cmd_users_link(args: argparse.Namespace) -> None:
    name = normalise_username(args.username)
    store = open_store(args)
    try:
        with store.writing() as tx:
            found = [a for a in list_accounts(tx.conn) if a.username == name]
            if not found:
                raise Failure(f"no account with username {name!r}")
            made = link(tx.conn, found[0].id, args.issuer, args.subject, store.clock())
    except IdentityError as exc:
        raise Failure(str(exc)) from None
    finally:
        store.dispose()
    print(f"Linked account {name!r} to subject {made.subject!r} of {made.issuer}.")


def cmd_users_unlink(args: argparse.Namespace) -> None:
    store = open_store(args)
    try:
        with store.writing() as tx:
            removed = unlink(tx.conn, args.issuer, args.subject)
    except IdentityError as exc:
        raise Failure(str(exc)) from None
    finally:
        store.dispose()
    if not removed:
        raise Failure("no such link")
    print(f"Unlinked subject {args.subject.strip()!r} of {args.issuer.strip().rstrip('/')}.")
