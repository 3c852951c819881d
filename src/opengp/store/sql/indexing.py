"""Search index rows of a resource, built in the same transaction as the resource itself.

This is the one place the write path indexes. It is pure (resource in, rows out); the store
replaces a resource's rows on every write and removes them on delete.
"""

from __future__ import annotations

from typing import Any

# Index columns hold this many characters; longer tokens are indexed (and queried, see
# `token_key`) by their first TOKEN_WIDTH characters. Real identifiers are far shorter.
TOKEN_WIDTH = 255


def token_key(value: str) -> str:
    return value[:TOKEN_WIDTH]


def identifier_rows(resource: dict[str, Any]) -> list[tuple[str, str]]:
    """(system, value) of each Resource.identifier with a value; de-duplicated."""
    identifiers = resource.get("identifier")
    if isinstance(identifiers, dict):  # a few resource types have identifier 0..1
        identifiers = [identifiers]
    rows: dict[tuple[str, str], None] = {}
    for identifier in identifiers or ():
        if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
            system = str(identifier.get("system", ""))
            rows[(token_key(system), token_key(identifier["value"]))] = None
    return list(rows)
