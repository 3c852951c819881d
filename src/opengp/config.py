"""Configuration, read once from the environment and passed explicitly (no hidden globals)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_DATABASE_URL = "sqlite:///var/opengp.db"
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
# SMART Backend Services: access tokens for system clients should live no more than 5 minutes
# (https://hl7.org/fhir/smart-app-launch/backend-services.html#issue-access-token).
DEFAULT_TOKEN_LIFETIME_SECONDS = 300
# What the screens ask the OpenID providers for: NHS CIS2 releases the national RBAC roles
# under `nationalrbacaccess`; NHS login the NHS number and date of birth under `profile`.
STAFF_OIDC_SCOPE = "openid profile nationalrbacaccess"
PATIENT_OIDC_SCOPE = "openid profile"


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True, slots=True)
class OidcProvider:
    """An OpenID provider the screens sign in with (OPENGP_OIDC_STAFF_* or _PATIENT_*)."""

    issuer: str  # ISSUER: its issuer identifier; discovery is at {issuer}/.well-known/...
    client_id: str  # CLIENT_ID: ours, as registered with the provider
    # CLIENT_SECRET (client_secret_basic) or PRIVATE_KEY, the path of a PEM private key whose
    # public half is registered with the provider (private_key_jwt, as NHS login requires).
    client_secret: str | None = field(default=None, repr=False)
    private_key_path: str | None = None
    scope: str = "openid"  # SCOPE: what to ask for (defaults: STAFF_OIDC_SCOPE ...)
    # STAFF_ORG_CODE: only NHS CIS2 roles held at this ODS code count (unset: any).
    org_code: str | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    # Largest request body accepted, in bytes; larger ones get 413 before they are read.
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # Public base URL of the FHIR endpoint (e.g. https://gp.example.nhs.uk/fhir) when served
    # behind a proxy; otherwise derived from each request.
    fhir_base_url: str | None = None
    # Public base URL of the whole server (e.g. https://gp.example.nhs.uk), from
    # OPENGP_PUBLIC_URL: the OAuth2 issuer and the base of /oauth2/... endpoint URLs. Unset,
    # it is derived from each request (right on 127.0.0.1, not behind a proxy).
    public_url: str | None = None
    # PEM private key (RSA, or EC P-256/P-384) that signs access tokens, from
    # OPENGP_SIGNING_KEY. Unset with an embedded SQLite database, one is generated once beside
    # the database (var/signing-key.pem, mode 0600); PostgreSQL deployments must set it, so
    # that every process signs with the same key.
    signing_key_path: str | None = None
    # Lifetime of access tokens issued to system clients, from OPENGP_TOKEN_LIFETIME_SECONDS.
    token_lifetime_seconds: int = DEFAULT_TOKEN_LIFETIME_SECONDS
    # Where bulk data jobs keep their files, from OPENGP_BULK_DIR. Unset: `bulk/` beside an
    # embedded SQLite database, otherwise var/bulk (opengp.services.bulk.jobs.bulk_directory).
    bulk_dir: str | None = None
    # OpenID Connect sign-in to the screens (docs/security.md, "Signing in with NHS CIS2 and
    # NHS login"): NHS CIS2 for staff, from OPENGP_OIDC_STAFF_*; NHS login for patients, from
    # OPENGP_OIDC_PATIENT_*. None (the default): that area signs in with passwords only.
    oidc_staff: OidcProvider | None = None
    oidc_patient: OidcProvider | None = None

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, database_url: str | None = None
    ) -> Settings:
        env = os.environ if env is None else env
        raw_limit = env.get("OPENGP_MAX_BODY_BYTES", str(DEFAULT_MAX_BODY_BYTES))
        try:
            limit = int(raw_limit)
        except ValueError:
            raise ConfigError(
                f"OPENGP_MAX_BODY_BYTES must be a whole number, not {raw_limit!r}"
            ) from None
        if limit <= 0:
            raise ConfigError("OPENGP_MAX_BODY_BYTES must be positive")
        base = env.get("OPENGP_FHIR_BASE_URL") or None
        public = env.get("OPENGP_PUBLIC_URL") or None
        return cls(
            database_url=database_url or env.get("OPENGP_DATABASE_URL") or DEFAULT_DATABASE_URL,
            max_body_bytes=limit,
            fhir_base_url=base.rstrip("/") if base else None,
            public_url=_public_url(public) if public else None,
            signing_key_path=env.get("OPENGP_SIGNING_KEY") or None,
            token_lifetime_seconds=_positive(
                env, "OPENGP_TOKEN_LIFETIME_SECONDS", DEFAULT_TOKEN_LIFETIME_SECONDS
            ),
            bulk_dir=env.get("OPENGP_BULK_DIR") or None,
            oidc_staff=_oidc_provider(env, "STAFF", STAFF_OIDC_SCOPE),
            oidc_patient=_oidc_provider(env, "PATIENT", PATIENT_OIDC_SCOPE),
        )


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name) or str(default)
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive")
    return value


def _public_url(url: str) -> str:
    """An http(s) origin with an optional path: the OAuth2 issuer identifier (RFC 8414 §2)."""
    scheme, _, rest = url.partition("://")
    if scheme not in ("http", "https") or not rest or "?" in rest or "#" in rest:
        raise ConfigError(
            f"OPENGP_PUBLIC_URL must be an http(s) URL without query or fragment, not {url!r}"
        )
    return url.rstrip("/")


def _oidc_provider(env: Mapping[str, str], area: str, default_scope: str) -> OidcProvider | None:
    """OPENGP_OIDC_{area}_*: unset ISSUER leaves OpenID Connect off for that area."""
    prefix = f"OPENGP_OIDC_{area}_"
    names = ["ISSUER", "CLIENT_ID", "CLIENT_SECRET", "PRIVATE_KEY", "SCOPE"]
    if area == "STAFF":
        names.append("ORG_CODE")  # NHS CIS2 roles are held at organisations
    values = {name: env.get(prefix + name, "").strip() for name in names}
    if not values["ISSUER"]:
        stray = sorted(prefix + name for name, value in values.items() if value)
        if stray:
            raise ConfigError(f"{', '.join(stray)} set without {prefix}ISSUER")
        return None
    issuer = values["ISSUER"].rstrip("/")
    if not _https_or_loopback(issuer) or "?" in issuer or "#" in issuer:
        raise ConfigError(
            f"{prefix}ISSUER must be an https URL (http only on a loopback address), not {issuer!r}"
        )
    if not values["CLIENT_ID"]:
        raise ConfigError(f"{prefix}CLIENT_ID is required with {prefix}ISSUER")
    if bool(values["CLIENT_SECRET"]) == bool(values["PRIVATE_KEY"]):
        raise ConfigError(f"set one of {prefix}CLIENT_SECRET and {prefix}PRIVATE_KEY")
    scope = " ".join(values["SCOPE"].split()) or default_scope
    if "openid" not in scope.split():
        raise ConfigError(f"{prefix}SCOPE must include openid, not {scope!r}")
    return OidcProvider(
        issuer=issuer,
        client_id=values["CLIENT_ID"],
        client_secret=values["CLIENT_SECRET"] or None,
        private_key_path=values["PRIVATE_KEY"] or None,
        scope=scope,
        org_code=values.get("ORG_CODE", "").upper() or None,
    )


def _https_or_loopback(url: str) -> bool:
    """https, or http to this machine only (tests, and a provider's local stand-in)."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    host = host[: host.find("]") + 1] if host.startswith("[") else host.split(":", 1)[0]
    if scheme == "https":
        return bool(host)
    return scheme == "http" and host in ("127.0.0.1", "[::1]", "localhost")
