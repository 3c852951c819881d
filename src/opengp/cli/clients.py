"""`opengp clients`: register and list OAuth2 clients: systems (SMART Backend Services)
and apps (SMART App Launch).

    opengp clients add --name NAME --scopes "SCOPES" [--purpose direct-care|migration]
                       [--jwks FILE] [--redirect-uri URI]... [--public]
                       [--json] [--database URL]
    opengp clients list [--json] [--database URL]

Without --redirect-uri the client is a system (client credentials, system/ scopes): with
--jwks it authenticates with JWTs signed by its own keys (private_key_jwt) and gets no
secret; otherwise a secret is made and shown once (client_secret_basic). With --redirect-uri
(repeatable) it is an app (authorization code with PKCE, refresh tokens; patient/ and user/
scopes, openid fhirUser launch/patient offline_access): confidential with a secret, or with
--public a public app with no secret (auth method none).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opengp.cli import DATABASE_HELP, Failure, open_store

if TYPE_CHECKING:
    pass

# The registry and the store load only when a command runs: `opengp --help` stays quick.

SCOPES_HELP = (
    'space-separated scopes: system/ for systems, e.g. "system/Patient.rs"; for apps'
    " patient/ and user/ ones and openid fhirUser launch/patient offline_access"
)


def register(commands: Any) -> None:
    clients = commands.add_parser("clients", help="OAuth2 system clients (backend services)")
    client_commands = clients.add_subparsers(
        dest="clients_command", required=True, metavar="COMMAND"
    )

    add = client_commands.add_parser(
        "add", help="register a client for the client-credentials grant"
    )
    add.add_argument("--name", required=True, help="what the client is, for people")
    add.add_argument("--scopes", required=True, type=_scopes, help=SCOPES_HELP)
    add.add_argument(
        "--purpose",
        type=_purpose,
        default="direct-care",
        help="direct-care (default) or migration",
    )
    add.add_argument(
        "--jwks", type=_jwks, metavar="FILE", help="the client's public keys (JWKS JSON)"
    )
    add.add_argument(
        "--redirect-uri",
        action="append",
        default=[],
        metavar="URI",
        help="an app's redirect URI, matched exactly (repeatable); makes the client an app",
    )
    add.add_argument(
        "--public", action="store_true", help="a public app: no secret, PKCE (auth method none)"
    )
    add.add_argument("--json", action="store_true", help="print the credentials as JSON")
    add.add_argument("--database", help=DATABASE_HELP)
    add.set_defaults(run=cmd_add, add_parser=add)

    listing = client_commands.add_parser("list", help="list registered clients")
    listing.add_argument("--json", action="store_true", help="print JSON lines")
    listing.add_argument("--database", help=DATABASE_HELP)
    listing.set_defaults(run=cmd_list)


def _purpose(text: str) -> str:
    from opengp.access.clients import PURPOSES

    if text not in PURPOSES:
        raise argparse.ArgumentTypeError(f"purpose must be one of {', '.join(PURPOSES)}")
    return text


def _scopes(text: str) -> str:
    from opengp.access.scopes import ScopeError, parse_scopes

    try:
        return " ".join(parse_scopes(text))
    except ScopeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _check_usage(args: argparse.Namespace) -> None:
    """Usage errors that depend on more than one option: exit 2 with the reason."""
    from opengp.access.clients import (
        ClientError,
        check_app_scopes,
        check_client_scopes,
        check_redirect_uris,
    )

    parser: argparse.ArgumentParser = args.add_parser
    try:
        if args.redirect_uri:
            check_app_scopes(args.scopes)
            check_redirect_uris(args.redirect_uri)
        else:
            check_client_scopes(args.scopes)
    except ClientError as exc:
        parser.error(str(exc))
    if args.public and not args.redirect_uri:
        parser.error("--public is for apps: give their --redirect-uri")
    if args.redirect_uri and args.jwks is not None:
        parser.error("--jwks is for system clients, not apps (--redirect-uri)")


def _jwks(path: str) -> dict[str, Any]:
    from opengp.access.clients import ClientError, check_jwks

    try:
        jwks = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise argparse.ArgumentTypeError(f"{path} is not JSON") from None
    try:
        return check_jwks(jwks)
    except ClientError as exc:
        raise argparse.ArgumentTypeError(f"{path}: {exc}") from None


def cmd_add(args: argparse.Namespace) -> None:
    from opengp.access.clients import ClientError
    from opengp.services.oauth import add_client

    _check_usage(args)
    store = open_store(args)
    try:
        client_id, secret = add_client(
            store,
            args.name,
            args.scopes,
            args.purpose,
            args.jwks,
            redirect_uris=args.redirect_uri,
            public=args.public,
        )
    except ClientError as exc:
        raise Failure(str(exc)) from None
    finally:
        store.dispose()
    if args.json:
        print(json.dumps({"client_id": client_id, "client_secret": secret}))
        return
    print(f"client_id:     {client_id}")
    if secret is None and args.public:
        print("a public app: no secret; it must use PKCE (S256)")
    elif secret is None:
        print("authenticates with private_key_jwt, using the keys in the JWKS given")
    else:
        print(f"client_secret: {secret}")
        print("The secret is shown only now: keep it in a secrets store.")


def cmd_list(args: argparse.Namespace) -> None:
    from opengp.services.oauth import list_clients

    store = open_store(args)
    try:
        clients = list_clients(store)
    finally:
        store.dispose()
    for client in clients:
        fields = {
            "client_id": client.client_id,
            "name": client.name,
            "auth_method": client.auth_method,
            "purpose": client.purpose,
            "scopes": " ".join(client.scopes),
            "redirect_uris": list(client.redirect_uris),
            "disabled": client.disabled,
            "created": client.created.isoformat(),
        }
        if args.json:
            print(json.dumps(fields))
        else:
            state = " (disabled)" if client.disabled else ""
            print(
                f"{client.client_id}  {client.name}{state}  {client.auth_method}"
                f"  {client.purpose}  {' '.join(client.scopes)}"
            )
