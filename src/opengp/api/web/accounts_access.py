"""Who may use the account screens, and how their actions are recorded.

Only roles the access policy lets manage accounts (`policy.may_manage_accounts`: Systems
Support, R8015). Each change is made in one transaction with its audit entry; what a page
shows is audited by screen_audit.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import Response

from opengp.access.audit import Action, entry_for
from opengp.access.policy import may_manage_accounts
from opengp.access.principal import Principal
from opengp.api.web import pages
from opengp.api.web.areas import STAFF, Web
from opengp.api.web.guard import refused, signed_in, signed_in_post
from opengp.api.web.session import SignedIn
from opengp.store.sql import SqlStore

ACCOUNTS = "/staff/accounts"
ONLINE_ACCESS = "/staff/accounts/online-access"
NOT_ALLOWED = "Your access role does not let you manage accounts."

T = TypeVar("T")

# The staff home page shows the link only to those who may follow it.
pages.ENVIRONMENT.globals["may_manage_accounts"] = may_manage_accounts


async def manager(web: Web, request: Request) -> SignedIn | Response:
    signed = await signed_in(web, STAFF, request)
    if isinstance(signed, Response):
        return signed
    if not may_manage_accounts(signed.principal):
        return refused(STAFF, NOT_ALLOWED, 403, signed)
    return signed


async def manager_post(web: Web, request: Request) -> tuple[SignedIn, dict[str, str]] | Response:
    posted = await signed_in_post(web, STAFF, request)
    if isinstance(posted, Response):
        return posted
    if not may_manage_accounts(posted[0].principal):
        return refused(STAFF, NOT_ALLOWED, 403, posted[0])
    return posted


def audited_change(
    store: SqlStore,
    principal: Principal,
    action: Action,
    change: Callable[[Connection], T],
    **detail: Any,
) -> T:
    """`change(conn)` and its audit entry, in one transaction: both or neither."""
    with store.writing() as tx:
        result = change(tx.conn)
        tx.audit(entry_for(principal, action, detail={"screen": "accounts", **detail}))
    return result
