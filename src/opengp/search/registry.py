"""Which search parameters each resource type has: the official R4 set, as data.

The parameters come from the R4 SearchParameter definitions (generated into
definitions/r4.py by scripts/generate_search_parameters.py), each with its FHIRPath
expression already restricted to the one type. Every type also has the parameters defined
on Resource (`_id`, `_lastUpdated`, `_tag`, `_profile`, `_security`, `_source`, `_content`,
`_query`, `_filter`), and DomainResources also `_text`
(http://hl7.org/fhir/R4/resource.html#search, http://hl7.org/fhir/R4/domainresource.html).
`_list`, `_has` and `_type` are not SearchParameter resources in R4; they are handled by
the search parser, not looked up here.

UK Core and GP additions (UK_ADDITIONS) are empty, deliberately. What a GP system searches
on that looks UK-specific is already an R4 parameter:
- NHS number: `Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9000000009`;
- the registered GP practice: `Patient?general-practitioner=Organization/...` (UK Core
  records it in Patient.generalPractitioner, an R4 parameter);
- ODS codes of practices and staff: `Organization?identifier=https://fhir.nhs.uk/Id/ods-
  organization-code|A12345`, `Practitioner?identifier=...`;
- SNOMED CT / dm+d codes: the `code` parameters (token) of Condition, Observation,
  Procedure, MedicationRequest, AllergyIntolerance, Immunization (`vaccine-code`);
- slot type and service category of appointments: Slot `service-type`, Appointment
  `service-type`, `appointment-type`.
UK Core itself defines no SearchParameter resources; its profiles constrain elements through
extensions (ethnic category, residential status, ...) that GP workflows do not search by.
Add an entry to UK_ADDITIONS (a `SearchParam` with its FHIRPath) when one is needed: the
indexer and the query compiler pick it up like any R4 parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from types import MappingProxyType
from typing import cast

from opengp.fhir.definitions import RESOURCE_TYPES, TYPES
from opengp.search.definitions.r4 import CANONICAL, SEARCH_PARAMETERS, Param
from opengp.search.model import Component, ParamType, SearchParam

__all__ = ["UK_ADDITIONS", "is_domain_resource", "param", "params_for", "resource_types"]

# Parameters OpenGP adds to R4's, by resource type (see the module doc for why it is empty).
UK_ADDITIONS: Mapping[str, tuple[SearchParam, ...]] = MappingProxyType({})

# Where the parameters every resource type inherits are defined.
_BASES = ("Resource", "DomainResource")


def _search_param(resource_type: str, row: Param) -> SearchParam:
    code, type_, expression, targets, components, id_ = row
    return SearchParam(
        resource_type=resource_type,
        code=code,
        type=cast(ParamType, type_),
        expression=expression,
        targets=targets,
        components=tuple(Component(c, cast(ParamType, t), e) for c, t, e in components),
        url=CANONICAL + id_,
    )


def is_domain_resource(resource_type: str) -> bool:
    """True for DomainResources: every R4 resource type but Bundle, Binary and Parameters,
    which lack DomainResource's `contained` in the R4 element model. Types outside the model
    (those OpenGP does not store) are all DomainResources."""
    elements = TYPES.get(resource_type)
    return elements is None or "contained" in elements


@cache
def params_for(resource_type: str) -> Mapping[str, SearchParam]:
    """All the parameters of a resource type, by code: its own, the UK additions, and those
    it inherits from Resource (and DomainResource). Empty for an unknown type."""
    if resource_type not in resource_types():
        return MappingProxyType({})
    bases = _BASES if is_domain_resource(resource_type) else _BASES[:1]
    found: dict[str, SearchParam] = {}
    for base in bases:
        found |= {row[0]: _search_param(base, row) for row in SEARCH_PARAMETERS[base]}
    for row in SEARCH_PARAMETERS.get(resource_type, ()):
        found[row[0]] = _search_param(resource_type, row)
    for extra in UK_ADDITIONS.get(resource_type, ()):
        found[extra.code] = extra
    return MappingProxyType(dict(sorted(found.items())))


def param(resource_type: str, code: str) -> SearchParam | None:
    """The parameter `code` of `resource_type`, or None when the type has no such parameter."""
    return params_for(resource_type).get(code)


@cache
def resource_types() -> frozenset[str]:
    """Every R4 resource type that can be searched: those with parameters of their own and
    those OpenGP stores (Binary has only the Resource ones)."""
    return frozenset({t for t in SEARCH_PARAMETERS if t not in _BASES} | RESOURCE_TYPES)
