"""The CapabilityStatement, generated from the route table (http://hl7.org/fhir/R4/capabilitystatement.html)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any, Protocol

import orjson

import opengp
from opengp.fhir.definitions.r4 import RESOURCE_TYPES
from opengp.search.criteria import SUPPORTED_PARAMETERS


class RouteLike(Protocol):
    @property
    def shape(self) -> str: ...
    @property
    def interaction(self) -> str: ...
    @property
    def conditional(self) -> bool: ...


SEARCH_PARAMS = {
    "_id": ("token", "Logical id of the resource"),
    "identifier": ("token", "An identifier of the resource (system|value)"),
}
SYSTEM_INTERACTIONS = {"transaction", "batch", "history-system"}


def statement(routes: Sequence[RouteLike], base_url: str) -> bytes:
    return _statement(tuple((r.shape, r.interaction, r.conditional) for r in routes), base_url)


@cache
def _statement(routes: tuple[tuple[str, str, bool], ...], base_url: str) -> bytes:
    type_interactions = sorted(
        {i for shape, i, _ in routes if shape.startswith("{type}") and i != "search-type"}
        | {"search-type"}
    )
    conditional = {i for shape, i, c in routes if c}
    system = sorted(
        {i for shape, i, _ in routes if not shape.startswith("{type}")} & SYSTEM_INTERACTIONS
        | {"batch"}
    )
    resource_entry: dict[str, Any] = {
        "interaction": [{"code": code} for code in type_interactions],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": True,
        "conditionalCreate": True,
        "conditionalRead": "full-support",
        "conditionalUpdate": "update" in conditional,
        "conditionalDelete": "single" if "delete" in conditional else "not-supported",
        "referencePolicy": ["literal", "logical"],
        "searchParam": [
            {"name": name, "type": kind, "documentation": doc}
            for name, (kind, doc) in SEARCH_PARAMS.items()
            if name in SUPPORTED_PARAMETERS
        ],
    }
    body = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": datetime.now(UTC).date().isoformat(),
        "publisher": "OpenGP",
        "kind": "instance",
        "software": {"name": "OpenGP", "version": opengp.__version__},
        "implementation": {"description": "OpenGP FHIR R4 server", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [
            {
                "mode": "server",
                "resource": [{"type": t, **resource_entry} for t in sorted(RESOURCE_TYPES)],
                "interaction": [{"code": code} for code in system],
            }
        ],
    }
    return orjson.dumps(body)
