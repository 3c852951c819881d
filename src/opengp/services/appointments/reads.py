"""Reading resources for the appointment use cases."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from opengp.fhir import jsonio
from opengp.fhir.errors import NotFound
from opengp.search.query import parse_query
from opengp.store import ReadTransaction

CHUNK = 500  # ids a statement: well inside every database's limit on bound parameters


def live_resource(tx: ReadTransaction, resource_type: str, id: str) -> dict[str, Any]:
    """The current version as a dict; NotFound when absent or deleted."""
    stored = tx.current(resource_type, id)
    if stored is None or stored.content is None:
        raise NotFound(f"{resource_type}/{id} is not known")
    body: dict[str, Any] = jsonio.loads(stored.content)
    return body


def read_all(
    tx: ReadTransaction, resource_type: str, ids: Sequence[str]
) -> Iterator[dict[str, Any]]:
    """The live ones of `ids`, in order, parsed."""
    for at in range(0, len(ids), CHUNK):
        for stored in tx.read_many(resource_type, ids[at : at + CHUNK]):
            if stored.content is not None:
                # orjson: these are read for their codes and dates, never written back.
                yield orjson.loads(stored.content)


def present(tx: ReadTransaction, resource_type: str, ids: Sequence[str]) -> set[str]:
    """Those of `ids` that exist, deleted or not."""
    found: set[str] = set()
    for at in range(0, len(ids), CHUNK):
        found |= {s.id for s in tx.read_many(resource_type, ids[at : at + CHUNK])}
    return found


def find(
    tx: ReadTransaction, resource_type: str, pairs: list[tuple[str, str]], limit: int = 100_000
) -> list[dict[str, Any]]:
    """The live resources matching a search (parsed strictly, as a conditional one is)."""
    ids = tx.find(parse_query(resource_type, pairs, strict=True), limit=limit)
    return list(read_all(tx, resource_type, ids))
