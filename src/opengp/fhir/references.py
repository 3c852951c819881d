"""Reference syntax and rewriting (http://hl7.org/fhir/R4/references.html).

A Reference.reference is one of: a relative literal reference `Type/id` (optionally
`/_history/vid`), an absolute URL, a contained reference `#id`, or a logical URI
(`urn:uuid:...`, `urn:oid:...`). Inside a transaction Bundle a reference may also be a
conditional reference `Type?search`, resolved by the server
(http://hl7.org/fhir/R4/http.html#trules).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

# http://hl7.org/fhir/R4/datatypes.html#id
ID_PATTERN = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_RELATIVE = re.compile(
    r"(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})(?:/_history/(?P<vid>[A-Za-z0-9\-.]{1,64}))?"
)
_UUID = re.compile(
    r"urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_OID = re.compile(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+")
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S+")
_CONDITIONAL = re.compile(r"(?P<type>[A-Z][A-Za-z]+)\?(?P<query>\S+)")


@dataclass(frozen=True, slots=True)
class LiteralReference:
    """A relative `Type/id[/_history/vid]` reference to a resource on this server."""

    resource_type: str
    id: str
    version_id: str | None = None


def is_valid_id(value: str) -> bool:
    return ID_PATTERN.fullmatch(value) is not None


def parse_relative(reference: str) -> LiteralReference | None:
    m = _RELATIVE.fullmatch(reference)
    if m is None:
        return None
    return LiteralReference(m["type"], m["id"], m["vid"])


def parse_conditional(reference: str) -> tuple[str, str] | None:
    """`Patient?identifier=x|y` -> ("Patient", "identifier=x|y")."""
    m = _CONDITIONAL.fullmatch(reference)
    return None if m is None else (m["type"], m["query"])


def syntax_problem(reference: str, resource_types: frozenset[str]) -> str | None:
    """Why `reference` is not a valid Reference.reference, or None when it is."""
    if reference.startswith("#"):
        return None if is_valid_id(reference[1:]) or reference == "#" else "bad contained id"
    if reference.startswith("urn:uuid:"):
        return None if _UUID.fullmatch(reference) else "malformed urn:uuid"
    if reference.startswith("urn:oid:"):
        return None if _OID.fullmatch(reference) else "malformed urn:oid"
    if _ABSOLUTE.fullmatch(reference):
        return None
    literal = parse_relative(reference)
    if literal is None:
        return "expected Type/id, an absolute URL, #contained, urn:uuid: or urn:oid:"
    if literal.resource_type not in resource_types:
        return f"unknown resource type {literal.resource_type!r}"
    return None


def iter_references(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (FHIRPath-ish location, Reference object) for every Reference in a resource.

    A Reference is any JSON object carrying a string `reference`; contained resources are
    walked too (they may reference each other and the container).
    """
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield path, node
        for key, value in node.items():
            if isinstance(value, dict | list):
                yield from iter_references(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from iter_references(item, f"{path}[{index}]")


def reference_strings(node: Any) -> Iterator[str]:
    """Every Reference.reference in a resource, as `iter_references` finds them, without
    their locations (the cheap walk: a bulk import looks at every reference it loads)."""
    if type(node) is dict:
        reference = node.get("reference")
        if type(reference) is str:
            yield reference
        for value in node.values():
            if type(value) is dict or type(value) is list:
                yield from reference_strings(value)
    elif type(node) is list:
        for item in node:
            if type(item) is dict or type(item) is list:
                yield from reference_strings(item)


def rewrite_references(resource: dict[str, Any], rewrite: Callable[[str], str | None]) -> None:
    """Replace, in place, every Reference.reference for which `rewrite` returns a new value."""
    for _, ref in iter_references(resource):
        new = rewrite(ref["reference"])
        if new is not None:
            ref["reference"] = new
