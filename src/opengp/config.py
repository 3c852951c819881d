"""Configuration, read once from the environment and passed explicitly (no hidden globals)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_DATABASE_URL = "sqlite:///var/opengp.db"
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
# SMART Backend Services: access tokens for system clients should live no more than 5 minutes
# (https://hl7.org/fhir/smart-app-launch/backend-services.html#issue-access-token).
DEFAULT_TOKEN_LIFETIME_SECONDS = 300


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


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
