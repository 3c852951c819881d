"""The account screens, for Systems Support (R8015, `policy.may_manage_accounts`): the
practice's staff accounts, and patients' online access (accounts_online.py).

    /staff/accounts                          the staff accounts
    /staff/accounts/new                      add one: a one-time password, shown once
    /staff/accounts/{id}                     one account: what can be done with it
    /staff/accounts/{id}/password            a new one-time password (POST), shown once
    /staff/accounts/{id}/second-factor       a new authenticator secret (POST), shown once
    /staff/accounts/{id}/status?to=disable   disable or enable: are you sure, then do
    /staff/accounts/online-access            find a patient: their online record access

The account services are those behind `opengp users` (access/accounts.py). A new secret is
shown on the answer to the POST that made it (never stored in clear, so it cannot be shown
again after a redirect); the page is not cached.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from opengp.access import accounts
from opengp.access.accounts import NATIONAL_ROLES, AccountError, CreatedUser, UsernameTaken
from opengp.api.web import accounts_online, pages
from opengp.api.web.accounts_access import (
    ACCOUNTS,
    ONLINE_ACCESS,
    audited_change,
    manager,
    manager_post,
)
from opengp.api.web.areas import STAFF, Web
from opengp.api.web.guard import refused, see_other
from opengp.api.web.service_calls import call
from opengp.api.web.session import SignedIn
from opengp.fhir.references import is_valid_id

Handler = Callable[[Web, Request], Awaitable[Response]]
NO_ACCOUNT = "There is no such staff account."


def routes(web: Web) -> list[BaseRoute]:
    def bind(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await handler(web, request)

        return endpoint

    one = f"{ACCOUNTS}/{{id}}"
    return [
        Route(ACCOUNTS, bind(list_accounts)),
        Route(f"{ACCOUNTS}/new", bind(new_account)),
        Route(f"{ACCOUNTS}/new", bind(add_account), methods=["POST"]),
        Route(ONLINE_ACCESS, bind(accounts_online.find)),
        Route(f"{ONLINE_ACCESS}/{{id}}", bind(accounts_online.show)),
        Route(f"{ONLINE_ACCESS}/{{id}}", bind(accounts_online.save), methods=["POST"]),
        Route(one, bind(show_account)),
        Route(f"{one}/password", bind(new_password), methods=["POST"]),
        Route(f"{one}/second-factor", bind(new_second_factor), methods=["POST"]),
        Route(f"{one}/status", bind(confirm_status)),
        Route(f"{one}/status", bind(change_status), methods=["POST"]),
    ]


async def list_accounts(web: Web, request: Request) -> Response:
    signed = await manager(web, request)
    if isinstance(signed, Response):
        return signed
    found = await call(STAFF, signed, lambda: _staff(web))
    if isinstance(found, Response):
        return found
    now = web.store.clock()
    rows = [
        {
            "id": a.id,
            "name": a.display_name,
            "username": a.username,
            "roles": ", ".join(sorted(a.roles)),
            "status": _status(a, now),
        }
        for a in found
    ]
    context = STAFF.page("Staff accounts", signed, back_href=STAFF.home, accounts=rows)
    return pages.render("accounts_list.jinja", context)


def _staff(web: Web) -> list[accounts.Account]:
    with web.store.reading() as tx:
        return [a for a in accounts.list_accounts(tx.conn) if a.kind == "staff"]


def _status(account: accounts.Account, now: datetime) -> str:
    if account.disabled:
        return "Disabled"
    if account.locked(now):
        return "Locked after failed sign-ins"
    return "Must choose a password" if account.must_change_password else "Active"


async def new_account(web: Web, request: Request) -> Response:
    signed = await manager(web, request)
    if isinstance(signed, Response):
        return signed
    return _form(signed, {}, set(), {})


async def add_account(web: Web, request: Request) -> Response:
    posted = await manager_post(web, request)
    if isinstance(posted, Response):
        return posted
    signed, form = posted
    values = {k: form.get(k, "").strip() for k in ("name", "username", "practitioner")}
    roles = {v for k, v in form.items() if k.startswith("role_")}
    errors: dict[str, str] = {}
    if not values["name"]:
        errors["name"] = "Enter the person's full name"
    if not accounts.USERNAME.fullmatch(accounts.normalise_username(values["username"])):
        errors["username"] = (
            "Enter a username of 3 to 64 letters, numbers or . _ @ -, starting with a letter"
            " or number"
        )
    if not roles or not roles <= NATIONAL_ROLES.keys():
        errors["roles"] = "Select at least one access role"
    practitioner = values["practitioner"]
    if practitioner and not is_valid_id(practitioner):
        errors["practitioner"] = (
            "Enter the Practitioner ID from the practice directory, or leave it empty"
        )
    if not errors and practitioner and not await _practitioner_exists(web, practitioner):
        errors["practitioner"] = "There is no Practitioner with this ID: check the ID"
    if errors:
        return _form(signed, values, roles, errors, status=400)
    principal = signed.principal

    def create() -> CreatedUser:
        return audited_change(
            web.store,
            principal,
            "create",
            lambda conn: accounts.create_user(
                conn,
                username=values["username"],
                kind="staff",
                display_name=values["name"],
                roles=roles,
                fhir_user=f"Practitioner/{practitioner}" if practitioner else None,
                organization_id=principal.organization_id,
                with_totp=True,
                now=web.store.clock(),
            ),
            what="new staff account",
        )

    try:
        created = await call(STAFF, signed, create)
    except UsernameTaken:
        errors["username"] = "This username is already taken: choose another"
        return _form(signed, values, roles, errors, status=400)
    except AccountError as exc:
        errors["name"] = str(exc)[:1].upper() + str(exc)[1:]
        return _form(signed, values, roles, errors, status=400)
    if isinstance(created, Response):
        return created
    return _secret(signed, created, "Account created", values["name"])


async def _practitioner_exists(web: Web, id: str) -> bool:
    def look() -> bool:
        with web.store.reading() as tx:
            stored = tx.current("Practitioner", id)
        return stored is not None and not stored.deleted

    return await run_in_threadpool(look)


def _form(
    signed: SignedIn,
    values: dict[str, str],
    roles: set[str],
    errors: dict[str, str],
    *,
    status: int = 200,
) -> Response:
    choices = [
        {
            "name": f"role_{code}",
            "value": code,
            "text": f"{name} ({code})",
            "checked": code in roles,
        }
        for code, name in NATIONAL_ROLES.items()
    ]
    context = STAFF.page(
        "Add a staff account",
        signed,
        back_href=ACCOUNTS,
        values=values,
        roles=choices,
        errors=errors,
    )
    return pages.render("accounts_new.jinja", context, status=status)


def _secret(signed: SignedIn, created: CreatedUser, title: str, name: str) -> Response:
    context = STAFF.page(title, signed, created=created, name=name, accounts_href=ACCOUNTS)
    return pages.render("accounts_secret.jinja", context)


async def _account(web: Web, signed: SignedIn, id: str) -> accounts.Account | Response:
    def find() -> accounts.Account | None:
        with web.store.reading() as tx:
            return accounts.get_account(tx.conn, id)

    found = await call(STAFF, signed, find)
    if isinstance(found, Response):
        return found
    if found is None or found.kind != "staff":
        return refused(STAFF, NO_ACCOUNT, 404, signed)
    return found


async def _account_shown(
    web: Web, request: Request
) -> tuple[SignedIn, accounts.Account] | Response:
    """The manager, and the staff account the path names."""
    signed = await manager(web, request)
    if isinstance(signed, Response):
        return signed
    account = await _account(web, signed, request.path_params["id"])
    if isinstance(account, Response):
        return account
    return signed, account


async def _account_posted(
    web: Web, request: Request
) -> tuple[SignedIn, dict[str, str], accounts.Account] | Response:
    """The manager, their checked form, and the staff account the path names."""
    posted = await manager_post(web, request)
    if isinstance(posted, Response):
        return posted
    signed, form = posted
    account = await _account(web, signed, request.path_params["id"])
    if isinstance(account, Response):
        return account
    return signed, form, account


async def show_account(web: Web, request: Request) -> Response:
    found = await _account_shown(web, request)
    if isinstance(found, Response):
        return found
    signed, account = found
    roles = [f"{NATIONAL_ROLES.get(r, r)} ({r})" for r in sorted(account.roles)]
    context = STAFF.page(
        account.display_name,
        signed,
        back_href=ACCOUNTS,
        account=account,
        roles=roles,
        status=_status(account, web.store.clock()),
        changed=request.query_params.get("changed"),
        own=account.id == signed.principal.id,
    )
    return pages.render("accounts_account.jinja", context)


async def new_password(web: Web, request: Request) -> Response:
    return await _new_secret(web, request, "password")


async def new_second_factor(web: Web, request: Request) -> Response:
    return await _new_secret(web, request, "second-factor")


async def _new_secret(web: Web, request: Request, what: str) -> Response:
    posted = await _account_posted(web, request)
    if isinstance(posted, Response):
        return posted
    signed, _, account = posted
    principal, id = signed.principal, account.id

    def reset() -> CreatedUser:
        if what == "password":
            password = audited_change(
                web.store,
                principal,
                "update",
                lambda conn: accounts.reset_password(conn, id),
                what="new one-time password",
                account=id,
            )
            return CreatedUser(id, account.username, one_time_password=password)
        return audited_change(
            web.store,
            principal,
            "update",
            lambda conn: accounts.reset_second_factor(conn, id),
            what="new authenticator secret",
            account=id,
        )

    created = await call(STAFF, signed, reset)
    if isinstance(created, Response):
        return created
    title = "New one-time password" if what == "password" else "New authenticator app set-up"
    return _secret(signed, created, title, account.display_name)


def _wanted(request: Request, form: dict[str, str] | None = None) -> bool | None:
    """True to disable, False to enable; None when the request says neither."""
    to = (form or {}).get("to") if form is not None else request.query_params.get("to")
    return {"disable": True, "enable": False}.get(to or "")


async def confirm_status(web: Web, request: Request) -> Response:
    found = await _account_shown(web, request)
    if isinstance(found, Response):
        return found
    signed, account = found
    disable = _wanted(request)
    if disable is None:
        return refused(STAFF, "Choose to disable or enable the account.", 400, signed)
    if disable and account.id == signed.principal.id:
        return refused(STAFF, "You cannot disable your own account.", 400, signed)
    context = STAFF.page(
        f"{'Disable' if disable else 'Enable'} {account.display_name}'s account?",
        signed,
        back_href=f"{ACCOUNTS}/{account.id}",
        account=account,
        disable=disable,
    )
    return pages.render("accounts_confirm.jinja", context)


async def change_status(web: Web, request: Request) -> Response:
    posted = await _account_posted(web, request)
    if isinstance(posted, Response):
        return posted
    signed, form, account = posted
    disable = _wanted(request, form)
    if disable is None:
        return refused(STAFF, "Choose to disable or enable the account.", 400, signed)
    if disable and account.id == signed.principal.id:
        return refused(STAFF, "You cannot disable your own account.", 400, signed)
    principal, id = signed.principal, account.id

    def change() -> None:
        audited_change(
            web.store,
            principal,
            "update",
            lambda conn: accounts.set_disabled(conn, id, disable),
            what="account disabled" if disable else "account enabled",
            account=id,
        )

    done = await call(STAFF, signed, change)
    if isinstance(done, Response):
        return done
    return see_other(f"{ACCOUNTS}/{id}?changed={'disabled' if disable else 'enabled'}")
