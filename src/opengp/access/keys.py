"""The server's signing key: it signs access tokens, and its public half is the JWKS.

The key comes from a PEM file: `OPENGP_SIGNING_KEY`, or, for the embedded SQLite database,
`signing-key.pem` beside the database file (var/signing-key.pem by default), generated the
first time it is needed. Key material is never logged or shown: only the key id (the RFC 7638
thumbprint of the public key) and the algorithm are.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey, KeyParameters, KeySet, RSAKey

from opengp.config import ConfigError, Settings
from opengp.store.sql.dialects import database_url

KEY_FILE = "signing-key.pem"
# RS256 for tokens: RFC 9068 §2.1 and OpenID Connect Discovery require every party to support
# it. RSA-3072 gives 128-bit security (NIST SP 800-57 Part 1, table 2), beyond 2030.
GENERATED_RSA_BITS = 3072
MIN_RSA_BITS = 2048
EC_ALGORITHMS = {"P-256": "ES256", "P-384": "ES384"}


@dataclass(frozen=True, slots=True)
class SigningKey:
    private: RSAKey | ECKey = field(repr=False)  # carries kid, alg and use "sig"
    alg: str  # JWS algorithm the key signs with: RS256, ES256 or ES384
    kid: str  # RFC 7638 thumbprint: the same in every process that loads the same key
    public: KeySet = field(repr=False)

    @classmethod
    def of(cls, key: RSAKey | ECKey, alg: str) -> SigningKey:
        kid = key.thumbprint()
        parameters: KeyParameters = {"kid": kid, "alg": alg, "use": "sig"}
        private = type(key).import_key(key.as_dict(private=True), parameters=parameters)
        public = KeySet([type(key).import_key(key.as_dict(private=False), parameters=parameters)])
        return cls(private, alg, kid, public)

    def signing_keys(self) -> KeySet:
        """The private key as a set: signing with a set writes its kid into the header."""
        return KeySet([self.private])

    def jwks(self) -> dict[str, Any]:
        """The public JSON Web Key Set, as served at /oauth2/jwks (RFC 7517 §5)."""
        return dict(self.public.as_dict(private=False))


def key_path(settings: Settings) -> Path:
    """Where the signing key is: configured, or beside the embedded SQLite database."""
    if settings.signing_key_path:
        return Path(settings.signing_key_path)
    url = database_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).parent / KEY_FILE
    raise ConfigError(
        "OPENGP_SIGNING_KEY must name the PEM private key that signs access tokens"
        " (only an embedded SQLite database gets one generated)"
    )


def load_signing_key(settings: Settings) -> SigningKey:
    """The configured key; with the embedded database, generated on first use."""
    path = key_path(settings)
    if not settings.signing_key_path and not path.exists():
        generate_key_file(path)
    return read_signing_key(path)


def generate_key_file(path: Path) -> None:
    """Write a new RSA private key to `path` (mode 0600), unless another process got there.

    The key is written to a private temporary file and hard-linked into place: the link is
    atomic and fails if the file exists, so concurrent workers all end up with one key.
    """
    pem = RSAKey.generate_key(GENERATED_RSA_BITS).as_pem(private=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def read_signing_key(path: Path) -> SigningKey:
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the signing key {path}: {exc.strerror}") from None
    return signing_key_from_pem(pem, str(path))


def signing_key_from_pem(pem: bytes, where: str = "the signing key") -> SigningKey:
    key: RSAKey | ECKey
    try:
        key = RSAKey.import_key(pem)
    except Exception:
        try:
            key = ECKey.import_key(pem)
        except Exception:
            raise ConfigError(f"{where} is not an unencrypted PEM RSA or EC private key") from None
    if not key.is_private:
        raise ConfigError(f"{where} holds a public key; the private key is needed to sign")
    if isinstance(key, RSAKey):
        if key.raw_value.key_size < MIN_RSA_BITS:
            raise ConfigError(f"{where}: RSA keys must have at least {MIN_RSA_BITS} bits")
        alg = "RS256"
    else:
        if key.curve_name not in EC_ALGORITHMS:
            raise ConfigError(f"{where}: EC keys must be on P-256 or P-384")
        alg = EC_ALGORITHMS[key.curve_name]
    return SigningKey.of(key, alg)
