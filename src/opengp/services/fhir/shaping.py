"""`_summary` and `_elements`: which parts of each resource a search Bundle carries
(http://hl7.org/fhir/R4/search.html#summary, http://hl7.org/fhir/R4/search.html#elements).

Without either, the stored bytes go out untouched. Otherwise the resource is parsed (decimals
kept exact by opengp.fhir.jsonio), filtered at the top level, and tagged SUBSETTED when
anything may have been left out, so that a client does not write the partial resource back.
A `_summary` mode other than `false` takes precedence over `_elements`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson

from opengp.fhir import jsonio
from opengp.fhir.definitions import CHOICES
from opengp.fhir.definitions.r4 import MANDATORY_ELEMENTS, SUMMARY_ELEMENTS
from opengp.store import StoredResource

Shaper = Callable[[StoredResource], Any]

SUBSETTED_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
ALWAYS = ("resourceType", "id", "meta")
MODES = ("true", "text", "data", "count")


def shaper(summary: str | None, elements: tuple[str, ...]) -> Shaper:
    """What goes into a Bundle entry's `resource` for each stored resource; `summary` is a
    `_summary` value ("count" is answered by the caller, and treated here as "true")."""
    if summary not in (None, "false", *MODES):
        raise ValueError(f"unknown _summary mode {summary!r}")
    if summary in (None, "false") and not elements:
        return _as_stored
    if summary == "data":
        return lambda stored: _dump({k: v for k, v in _parse(stored).items() if k != "text"})

    keep_by_type: dict[str, frozenset[str]] = {}

    def keep(resource_type: str) -> frozenset[str]:
        names = keep_by_type.get(resource_type)
        if names is None:
            mandatory = MANDATORY_ELEMENTS.get(resource_type, ())
            if summary == "text":
                names = frozenset((*ALWAYS, "text", *mandatory))
            elif summary in ("true", "count"):
                names = frozenset((*ALWAYS, *SUMMARY_ELEMENTS.get(resource_type, ())))
            else:
                listed = _expand_choices(resource_type, elements)
                names = frozenset((*ALWAYS, *mandatory, *listed))
            keep_by_type[resource_type] = names
        return names

    def shape(stored: StoredResource) -> Any:
        names = keep(stored.resource_type)
        # `_name` holds the id and extensions of primitive `name`: kept or dropped with it.
        resource = {k: v for k, v in _parse(stored).items() if k.removeprefix("_") in names}
        _tag_subsetted(resource)
        return _dump(resource)

    return shape


def _as_stored(stored: StoredResource) -> Any:
    if stored.content is None:
        raise ValueError(f"{stored.resource_type}/{stored.id} is deleted")
    return orjson.Fragment(stored.content)


def _parse(stored: StoredResource) -> dict[str, Any]:
    if stored.content is None:
        raise ValueError(f"{stored.resource_type}/{stored.id} is deleted")
    resource: dict[str, Any] = jsonio.loads(stored.content)
    return resource


def _dump(resource: dict[str, Any]) -> Any:
    return orjson.Fragment(jsonio.dumps(resource))  # orjson alone cannot write Decimal


def _expand_choices(resource_type: str, names: Iterable[str]) -> set[str]:
    """`names` with each choice base name (value) replaced by its JSON names (valueQuantity,
    valueString...)."""
    choices = {
        base: [base + t[0].upper() + t[1:] for t in options]
        for base, options in CHOICES.get(resource_type, {}).items()
    }
    found: set[str] = set()
    for name in names:
        found.update(choices.get(name, [name]))
    return found


def _tag_subsetted(resource: dict[str, Any]) -> None:
    tags = resource.setdefault("meta", {}).setdefault("tag", [])
    if not any(t.get("system") == SUBSETTED_SYSTEM and t.get("code") == "SUBSETTED" for t in tags):
        tags.append({"system": SUBSETTED_SYSTEM, "code": "SUBSETTED"})
