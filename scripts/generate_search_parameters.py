"""Generate src/opengp/search/definitions/r4.py from the official FHIR R4 SearchParameters.

Input is the CC0 npm package `hl7.fhir.r4.examples@4.0.1` (its SearchParameter-*.json),
fetched and cached exactly as scripts/generate_fhir_definitions.py does, or an unpacked
`package/` directory given with --package-dir.

For each resource type the output lists every parameter with its expression *restricted to
that type*: shared definitions such as `clinical-code` have one expression for many types
(`AllergyIntolerance.code | Condition.code | (DeviceRequest.code as CodeableConcept) | ...`);
only the `|` branches rooted at the type are kept, and an expression without per-type
branches is kept whole. Composite components are resolved to the code and type of the
parameter they reuse. `_id`, `_lastUpdated`, `_tag`, ... stay under Resource and `_text`
under DomainResource, as the package defines them.

Experimental definitions are left out: they are the spec's worked examples
(SearchParameter-example*) and draft extension parameters (genetics, patient-extensions,
codesystem-/valueset-extensions), some without a base or with an expression for another
type; none is part of the R4 core search API.

The output is deterministic (sorted); `--check` exits 1 when the committed file is stale.

    .venv/bin/python scripts/generate_search_parameters.py [--package-dir DIR] [--check]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from generate_fhir_definitions import (
    CACHE,
    EXAMPLES_PACKAGE,
    ROOT,
    fetch,
    load_json,
    py,
    write_or_check,
)

from opengp.search.fhirpath import split_top_level

OUTPUT = ROOT / "src" / "opengp" / "search" / "definitions" / "r4.py"
CANONICAL = "http://hl7.org/fhir/SearchParameter/"
# The type (or `%resource`) an expression branch starts from, also inside `(X as T)`.
_ROOT = re.compile(r"\(*\s*(%?[A-Za-z]+)")

# Corrections to the official definitions, each with its reason.
# DocumentReference-relationship gives its components each other's expressions: the
# reference component `relatesto` reads `code` (a code) and the token `relation` reads
# `target` (a Reference). Each gets the path of its own parameter instead
# (DocumentReference-relatesto is relatesTo.target, DocumentReference-relation relatesTo.code).
COMPONENT_ERRATA = {
    ("DocumentReference-relationship", "relatesto"): "target",
    ("DocumentReference-relationship", "relation"): "code",
}

Component = tuple[str, str, str]  # code, type, expression relative to the composite's items
Param = tuple[str, str, str | None, tuple[str, ...], tuple[Component, ...], str]


def restrict(expression: str, resource_type: str) -> str:
    """The branches of `expression` that apply to `resource_type` (see the module doc)."""
    branches = split_top_level(expression, "|")
    roots = [m[1] if (m := _ROOT.match(b)) else "" for b in branches]
    if not any(root[:1].isupper() for root in roots):
        return expression  # e.g. InsurancePlan-name: `name | alias`
    mine = [b for b, root in zip(branches, roots, strict=True) if root == resource_type]
    if not mine:
        raise SystemExit(f"no branch of {expression!r} applies to {resource_type}")
    return " | ".join(mine)


def referable_types(package: Path) -> tuple[str, ...]:
    """Every R4 resource type but Parameters, which is never stored, so never referred to:
    the targets of parameters whose Reference may point to any resource (`focus`, ...)."""
    return tuple(
        sorted(
            sd["type"]
            for sd in load_json(package, "StructureDefinition-*.json")
            if sd["kind"] == "resource"
            and sd.get("derivation") == "specialization"
            and not sd.get("abstract")
            and sd["type"] != "Parameters"
        )
    )


def generate(package: Path) -> dict[str, list[Param]]:
    definitions = [
        sp
        for sp in load_json(package, "SearchParameter-*.json")
        if not sp.get("experimental") and sp.get("base")
    ]
    by_url = {sp["url"]: sp for sp in definitions}
    params: dict[str, list[Param]] = {}
    for sp in definitions:
        if sp["url"] != CANONICAL + sp["id"]:
            raise SystemExit(f"{sp['id']}: url {sp['url']} is not {CANONICAL}<id>")
        components = []
        for c in sp.get("component", ()):
            code, type_ = by_url[c["definition"]]["code"], by_url[c["definition"]]["type"]
            expression = COMPONENT_ERRATA.get((sp["id"], code), c["expression"])
            components.append((code, type_, expression))
        for base in sp["base"]:
            expression = sp.get("expression")
            params.setdefault(base, []).append(
                (
                    sp["code"],
                    sp["type"],
                    None if expression is None else restrict(expression, base),
                    tuple(sorted(sp.get("target", ()))),
                    tuple(components),
                    sp["id"],
                )
            )
    for base, found in params.items():
        found.sort()
        codes = [p[0] for p in found]
        if len(codes) != len(set(codes)):
            raise SystemExit(f"{base} defines a search parameter code twice: {codes}")
    return dict(sorted(params.items()))


def literal(value: Any, any_type: tuple[str, ...]) -> str:
    """A Python literal for the strings, None and nested tuples of the output."""
    if value == any_type:
        return "ANY"
    if value is None:
        return "None"
    if isinstance(value, str):
        return py(value)
    items = [literal(v, any_type) for v in value]
    return f"({', '.join(items)}{',' if len(items) == 1 else ''})"


def compartments(package: Path) -> dict[str, dict[str, tuple[str, ...]]]:
    """Compartment (Patient, Practitioner...) -> member resource type -> the parameters that
    make a resource of that type a member (http://hl7.org/fhir/R4/compartmentdefinition.html)."""
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for definition in load_json(package, "CompartmentDefinition-*.json"):
        if definition.get("id") == "example":
            continue
        members = {
            r["code"]: tuple(r["param"]) for r in definition.get("resource", ()) if r.get("param")
        }
        out[definition["code"]] = dict(sorted(members.items()))
    return dict(sorted(out.items()))


def render(
    params: dict[str, list[Param]],
    any_type: tuple[str, ...],
    compartment: dict[str, dict[str, tuple[str, ...]]],
) -> str:
    out = [
        '"""FHIR R4 (4.0.1) search parameters. GENERATED by scripts/generate_search_parameters.py',
        'from hl7.fhir.r4.examples@4.0.1 (CC0). Do not edit; re-run the script."""',
        "",
        "# ruff: noqa: E501",
        "# fmt: off",
        "from __future__ import annotations",
        "",
        "from typing import TypeAlias",
        "",
        "# The canonical URL of a parameter is CANONICAL + the SearchParameter id.",
        f"CANONICAL: str = {py(CANONICAL)}",
        "",
        "# The targets of a reference that may point to any resource: every R4 resource type",
        "# but Parameters, which is never stored.",
        f"ANY: tuple[str, ...] = {literal(any_type, ())}",
        "",
        "# (code, type, expression relative to the composite's items)",
        "Component: TypeAlias = tuple[str, str, str]",
        "# (code, type, FHIRPath restricted to the type or None, targets, components, id)",
        "Param: TypeAlias = tuple[",
        "    str, str, str | None, tuple[str, ...], tuple[Component, ...], str",
        "]",
        "",
        "# Resource type (or Resource, DomainResource) -> its own parameters, by code.",
        "SEARCH_PARAMETERS: dict[str, tuple[Param, ...]] = {",
    ]
    for base, found in params.items():
        out.append(f"    {py(base)}: (")
        out += [f"        {literal(p, any_type)}," for p in found]
        out.append("    ),")
    out += [
        "}",
        "",
        "# Compartment -> member resource type -> parameters naming the compartment's resource.",
        "COMPARTMENTS: dict[str, dict[str, tuple[str, ...]]] = {",
    ]
    for name, members in compartment.items():
        out.append(f"    {py(name)}: {{")
        out += [f"        {py(t)}: {literal(p, ())}," for t, p in members.items()]
        out.append("    },")
    out += ["}", "# fmt: on", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package-dir", type=Path, help=f"unpacked {EXAMPLES_PACKAGE}")
    parser.add_argument("--cache-dir", type=Path, default=CACHE)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true", help="fail if the output is stale")
    args = parser.parse_args(argv)
    package = args.package_dir or fetch(EXAMPLES_PACKAGE, args.cache_dir)
    text = render(generate(package), referable_types(package), compartments(package))
    return write_or_check(args.output, text, check=args.check, script=Path(__file__).name)


if __name__ == "__main__":
    sys.exit(main())
