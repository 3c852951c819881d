"""The OAuth2 client registry, replay memory and token revocation, on SQLite and PostgreSQL."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import select

from opengp.access.clients import (
    ClientError,
    check_secret,
    find_client,
    list_clients,
    register_client,
    remember_assertion,
)
from opengp.access.tokens import is_revoked, revoke
from opengp.store.sql import SqlStore
from opengp.store.sql.access_tables import oauth_client, oauth_grant

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def public_jwks(*keys: RSAKey | ECKey, alg: str = "RS384") -> dict[str, Any]:
    return {
        "keys": [
            {**key.as_dict(private=False), "kid": f"key-{n}", "alg": alg, "use": "sig"}
            for n, key in enumerate(keys)
        ]
    }


def weak_rsa_key() -> RSAKey:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        return RSAKey.generate_key(1024)


def test_a_secret_client_gets_a_secret_stored_only_as_an_argon2id_hash(store: SqlStore) -> None:
    with store.writing() as tx:
        client_id, secret = register_client(
            tx.conn, "Lab feed", "system/Observation.cruds system/Patient.rs", now=NOW
        )
    assert secret is not None and len(secret) >= 43  # 256 bits, URL-safe base64
    with store.reading() as tx:
        client = find_client(tx.conn, client_id)
        row = tx.conn.execute(select(oauth_client)).one()
    assert client is not None
    assert client.name == "Lab feed"
    assert client.scopes == ("system/Observation.cruds", "system/Patient.rs")
    assert (client.purpose, client.auth_method) == ("direct-care", "client_secret_basic")
    assert client.grant_types == ("client_credentials",)
    assert client.created == NOW and not client.disabled and client.jwks is None
    assert row.secret_hash.startswith("$argon2id$")
    assert secret not in " ".join(str(value) for value in row)
    assert secret not in repr(client)
    assert check_secret(client, secret)
    assert not check_secret(client, secret[:-1])
    assert not check_secret(client, "")


def test_a_key_client_has_its_jwks_and_no_secret(store: SqlStore) -> None:
    jwks = public_jwks(RSAKey.generate_key(2048), ECKey.generate_key("P-384"))
    jwks["keys"][1]["alg"] = "ES384"
    with store.writing() as tx:
        client_id, secret = register_client(
            tx.conn,
            "Migration tool",
            "system/*.cruds",
            purpose="migration",
            auth_method="private_key_jwt",
            jwks=jwks,
        )
    assert secret is None
    with store.reading() as tx:
        client = find_client(tx.conn, client_id)
    assert client is not None
    assert client.jwks == jwks
    assert (client.purpose, client.auth_method) == ("migration", "private_key_jwt")
    assert not check_secret(client, "anything")


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"name": " "}, "name must be 1 to 255"),
        ({"name": "x\x00y"}, "control characters"),
        ({"scopes": "system/Patinet.rs"}, "not a FHIR R4 resource type"),
        ({"scopes": "patient/Patient.rs"}, "only system/ scopes"),
        ({"scopes": "openid system/*.rs"}, "only system/ scopes"),
        ({"scopes": ""}, "no scopes given"),
        ({"purpose": "research"}, "purpose must be one of direct-care, migration"),
        ({"auth_method": "none"}, "auth_method must be one of"),
        ({"auth_method": "private_key_jwt"}, "needs its public keys"),
        ({"jwks": {"keys": []}}, "only for private_key_jwt"),
        ({"grant_types": ["implicit"]}, "grant_types must be from client_credentials"),
        ({"grant_types": ["authorization_code"]}, "an app may hold only patient/ and user/"),
        (
            {"grant_types": ["authorization_code"], "scopes": "patient/*.rs"},
            "an app needs at least one redirect URI",
        ),
        (
            {
                "grant_types": ["authorization_code"],
                "scopes": "patient/*.rs",
                "redirect_uris": ["https://app.example/cb#x"],
            },
            "without a fragment",
        ),
        (
            {
                "grant_types": ["authorization_code"],
                "scopes": "patient/*.rs",
                "redirect_uris": ["https://app.example/cb"],
                "auth_method": "private_key_jwt",
            },
            "auth_method must be one of client_secret_basic, none",
        ),
        ({"grant_types": ["client_credentials", "authorization_code"]}, "either a system"),
        ({"grant_types": ["client_credentials", "refresh_token"]}, "refresh_token is only"),
        ({"redirect_uris": ["https://app.example/cb"]}, "only for apps"),
    ],
)
def test_registrations_that_are_refused(
    store: SqlStore, change: dict[str, Any], complaint: str
) -> None:
    arguments: dict[str, Any] = {"name": "Feed", "scopes": "system/*.rs", **change}
    with pytest.raises(ClientError, match=complaint), store.writing() as tx:
        register_client(tx.conn, **arguments)
    with store.reading() as tx:
        assert list_clients(tx.conn) == []


@pytest.mark.parametrize(
    ("jwks", "complaint"),
    [
        ({}, "non-empty"),
        ({"keys": "x"}, "non-empty"),
        ({"keys": [{"kty": "RSA"}]}, 'own "kid"'),
        ({"keys": [{"kty": "oct", "kid": "a", "k": "c2VjcmV0"}]}, "private key material"),
        ({"keys": [{"kty": "OKP", "kid": "a", "crv": "Ed25519", "x": "AA"}]}, "RSA or EC"),
    ],
)
def test_malformed_jwks_are_refused(store: SqlStore, jwks: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ClientError, match=complaint), store.writing() as tx:
        register_client(tx.conn, "X", "system/*.rs", auth_method="private_key_jwt", jwks=jwks)


def test_jwks_keys_must_be_public_and_fit_smart_algorithms(store: SqlStore) -> None:
    rsa = RSAKey.generate_key(2048)
    cases = [
        ({"keys": [{**rsa.as_dict(private=True), "kid": "a"}]}, "private key material"),
        (public_jwks(rsa, alg="RS256"), "alg must be one of RS384, ES384"),
        (public_jwks(ECKey.generate_key("P-256"), alg="ES256"), "P-384"),
        (public_jwks(weak_rsa_key()), "at least 2048 bits"),
        ({"keys": [{**public_jwks(rsa)["keys"][0], "use": "enc"}]}, 'use must be "sig"'),
        ({"keys": public_jwks(rsa)["keys"] * 2}, 'own "kid"'),
    ]
    for jwks, complaint in cases:
        with pytest.raises(ClientError, match=complaint), store.writing() as tx:
            register_client(tx.conn, "X", "system/*.rs", auth_method="private_key_jwt", jwks=jwks)


def test_clients_are_listed_in_registration_order(store: SqlStore) -> None:
    with store.writing() as tx:
        for n, name in enumerate(["B feed", "A feed", "C feed"]):
            register_client(tx.conn, name, "system/*.rs", now=NOW + timedelta(minutes=n))
    with store.reading() as tx:
        names = [client.name for client in list_clients(tx.conn)]
        assert find_client(tx.conn, "no-such-client") is None
    assert names == ["B feed", "A feed", "C feed"]


def test_an_assertion_id_is_accepted_once_per_client(store: SqlStore) -> None:
    later = NOW + timedelta(minutes=6)
    with store.writing() as tx:
        assert remember_assertion(tx.conn, "client-1", "jti-1", later, NOW)
        assert not remember_assertion(tx.conn, "client-1", "jti-1", later, NOW)
        assert remember_assertion(tx.conn, "client-2", "jti-1", later, NOW)
    with store.writing() as tx:
        assert not remember_assertion(tx.conn, "client-1", "jti-1", later, NOW)
        # Past keep_until the assertion itself has expired; its row is swept.
        assert remember_assertion(tx.conn, "client-1", "jti-2", later, later + timedelta(seconds=1))
    with store.reading() as tx:
        kinds = tx.conn.execute(select(oauth_grant.c.kind, oauth_grant.c.client_id)).all()
    assert sorted(kinds) == [("assertion", "client-1"), ("assertion", "client-2")]


def test_revoked_token_ids_are_kept_until_the_token_would_expire(store: SqlStore) -> None:
    expires = NOW + timedelta(minutes=5)
    with store.writing() as tx:
        revoke(tx.conn, "jti-a", expires, NOW)
        revoke(tx.conn, "jti-a", expires, NOW)  # twice is fine
    with store.reading() as tx:
        assert is_revoked(tx.conn, "jti-a")
        assert not is_revoked(tx.conn, "jti-b")
    with store.writing() as tx:
        revoke(tx.conn, "jti-b", expires + timedelta(minutes=5), expires + timedelta(seconds=1))
    with store.reading() as tx:
        assert not is_revoked(tx.conn, "jti-a")  # swept: it has expired anyway
        assert is_revoked(tx.conn, "jti-b")
