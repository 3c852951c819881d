"""The CapabilityStatement, generated from the route table (http://hl7.org/fhir/R4/capabilitystatement.html)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any, Protocol

import orjson

import opengp
from opengp.fhir.definitions.r4 import RESOURCE_TYPES
from opengp.search.registry import params_for


class RouteLike(Protocol):
    @property
    def shape(self) -> str: ...
    @property
    def interaction(self) -> str: ...
    @property
    def conditional(self) -> bool: ...


# http://hl7.org/fhir/R4/valueset-type-restful-interaction.html
TYPE_INTERACTIONS = {"read", "vread", "update", "patch", "delete", "history-instance"}
TYPE_INTERACTIONS |= {"history-type", "create", "search-type"}
# Standard operations (routes named $...) -> their OperationDefinition. OpenGP's own
# ($break-glass) are described in docs/api.md.
OPERATIONS = {"everything": "http://hl7.org/fhir/OperationDefinition/Patient-everything"}
# Bulk Data export (api/bulk.py, docs/bulk.md): served beside the route table, so named here
# (https://hl7.org/fhir/uv/bulkdata/export.html#operations). Key: None for the system level.
BULK_DATA = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition"
EXPORTS = {None: "export", "Patient": "patient-export", "Group": "group-export"}
SYSTEM_INTERACTIONS = {"transaction", "batch", "history-system", "search-system"}
# Parameters R4 defines but OpenGP does not search, and why (docs/api.md, "Search").
NOT_SEARCHED = {"_query": "named queries", "_filter": "_filter"}


def _search_params(resource_type: str) -> list[dict[str, Any]]:
    return [
        {"name": p.code, "definition": p.url, "type": p.type}
        for p in params_for(resource_type).values()
        if p.code not in NOT_SEARCHED and (p.expression is not None or p.code.startswith("_"))
    ]


def _operations(routes: tuple[tuple[str, str, bool], ...], resource_type: str) -> dict[str, Any]:
    named = (
        []
        if resource_type != "Patient"
        else sorted(i for shape, i, _ in routes if i in OPERATIONS and "$" in shape)
    )
    operations = [{"name": n, "definition": OPERATIONS[n]} for n in named]
    if resource_type in EXPORTS:
        operations.append(_export(resource_type))
    return {"operation": operations} if operations else {}


def _export(resource_type: str | None) -> dict[str, str]:
    return {"name": "export", "definition": f"{BULK_DATA}/{EXPORTS[resource_type]}"}


def statement(routes: Sequence[RouteLike], base_url: str) -> bytes:
    return _statement(tuple((r.shape, r.interaction, r.conditional) for r in routes), base_url)


@cache
def _statement(routes: tuple[tuple[str, str, bool], ...], base_url: str) -> bytes:
    type_interactions = sorted(
        {i for shape, i, _ in routes if shape.startswith("{type}")} & TYPE_INTERACTIONS
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
        "searchInclude": ["*"],
        "searchRevInclude": ["*"],
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
                "resource": [
                    {
                        "type": t,
                        **resource_entry,
                        "searchParam": _search_params(t),
                        **_operations(routes, t),
                    }
                    for t in sorted(RESOURCE_TYPES)
                ],
                "interaction": [{"code": code} for code in system],
                "operation": [_export(None)],
            }
        ],
    }
    return orjson.dumps(body)
