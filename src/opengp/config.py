"""Configuration, read once from the environment and passed explicitly (no hidden globals)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_DATABASE_URL = "sqlite:///var/opengp.db"
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024


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
        return cls(
            database_url=database_url or env.get("OPENGP_DATABASE_URL") or DEFAULT_DATABASE_URL,
            max_body_bytes=limit,
            fhir_base_url=base.rstrip("/") if base else None,
        )
