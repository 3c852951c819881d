"""The two areas of the screens, each with its own sign-in: practice staff, and patients
(with the people acting for them as proxies). A session of one kind is refused by the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opengp.api.web.forms import FormSigner
from opengp.api.web.session import SignedIn
from opengp.store.sql import SqlStore


@dataclass(frozen=True, slots=True)
class Area:
    name: str  # the first segment of its paths
    service: str  # the service name in the header
    kinds: frozenset[str]  # the account kinds that may use it
    # Staff accounts come with an authenticator app (TOTP); patients may set one up. Either
    # way `accounts.sign_in` asks for the code exactly when the account has one.
    staff: bool

    @property
    def home(self) -> str:
        return f"/{self.name}"

    @property
    def sign_in(self) -> str:
        return f"/{self.name}/sign-in"

    @property
    def new_password(self) -> str:
        return f"/{self.name}/new-password"

    @property
    def sign_out(self) -> str:
        return f"/{self.name}/sign-out"

    @property
    def signed_out(self) -> str:
        return f"/{self.name}/signed-out"

    def page(self, title: str, signed_in: SignedIn | None = None, **extra: Any) -> dict[str, Any]:
        """What every page of the area shows: its header, and who is signed in."""
        return {
            "title": title,
            "service": self.service,
            "service_href": self.home,
            "area": self,
            "signed_in": signed_in,
            "sign_out_path": self.sign_out,
            **extra,
        }


STAFF = Area("staff", "OpenGP for practice staff", frozenset({"staff"}), staff=True)
PATIENT = Area("patient", "Your GP practice online", frozenset({"patient", "proxy"}), staff=False)


def area_of(kind: str) -> Area:
    return STAFF if kind in STAFF.kinds else PATIENT


@dataclass(frozen=True, slots=True)
class Web:
    """What the screens' handlers share."""

    store: SqlStore
    signer: FormSigner
    public_url: str | None  # OPENGP_PUBLIC_URL: our origin, when behind a proxy
    # By area name, the OpenID provider its sign-in page offers (api/web/oidc.py: Provider).
    sign_in_with: Mapping[str, Any] = field(default_factory=dict)
