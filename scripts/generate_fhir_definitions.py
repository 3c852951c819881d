"""Generate src/opengp/fhir/definitions/r4.py from the official FHIR R4 (4.0.1) packages.

Inputs are the CC0 npm packages `hl7.fhir.r4.examples@4.0.1` (StructureDefinitions,
ValueSets, CodeSystems) and `hl7.fhir.r4.expansions@4.0.1` (ValueSet expansions). Pass
unpacked `package/` directories with --package-dir / --expansions-dir, or let the script
`npm pack` them into build/fhir-packages/ (a cache: keep build/ out of git) and unpack them.

The output is deterministic (everything sorted), so re-running gives an identical file;
`--check` exits 1 when the committed file is stale.

    .venv/bin/python scripts/generate_fhir_definitions.py
    .venv/bin/python scripts/generate_fhir_definitions.py --package-dir /tmp/r4/ex/package \
        --expansions-dir /tmp/r4/exp/package --check

The output carries what opengp.fhir.validation checks: each type's elements with their
cardinality (list or not, required or not) and choices, required bindings, and the regex of
each primitive type (the `http://hl7.org/fhir/StructureDefinition/regex` extension on the
`value` element of its StructureDefinition). Resource types in NOT_YET_ACCEPTED are left out.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "src" / "opengp" / "fhir" / "definitions" / "r4.py"
CACHE = ROOT / "build" / "fhir-packages"
EXAMPLES_PACKAGE = "hl7.fhir.r4.examples@4.0.1"
EXPANSIONS_PACKAGE = "hl7.fhir.r4.expansions@4.0.1"

SYSTEM_TYPE = "http://hl7.org/fhirpath/System."
FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
# JSON representation of each primitive type (http://hl7.org/fhir/R4/json.html#primitive).
JSON_KIND = {"boolean": "boolean", "integer": "integer", "positiveInt": "integer"}
JSON_KIND |= {"unsignedInt": "integer", "decimal": "decimal"}
# Types whose instances carry codes that a required binding constrains.
BINDABLE = {"code", "string", "uri", "Coding", "CodeableConcept"}
REGEX_EXT = "http://hl7.org/fhir/StructureDefinition/regex"
# R4 resource types OpenGP does not yet accept. They were left out while validation used the
# fhir.resources R4B models, which have no model for them or lack some of their R4 elements.
NOT_YET_ACCEPTED = (
    "EffectEvidenceSynthesis",
    "Evidence",
    "EvidenceVariable",
    "MedicinalProduct",
    "MedicinalProductAuthorization",
    "MedicinalProductContraindication",
    "MedicinalProductIndication",
    "MedicinalProductIngredient",
    "MedicinalProductInteraction",
    "MedicinalProductManufactured",
    "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect",
    "RiskEvidenceSynthesis",
    "SubstanceNucleicAcid",
    "SubstancePolymer",
    "SubstanceProtein",
    "SubstanceReferenceInformation",
    "SubstanceSourceMaterial",
    "SubstanceSpecification",
)
NOT_YET_ACCEPTED_REASON = "not yet accepted by OpenGP"


@dataclass(frozen=True, slots=True)
class Element:
    """One JSON property of an R4 type (choice elements already expanded)."""

    name: str
    type: str  # primitive or datatype name, "Resource", or the path of a backbone element
    is_list: bool
    min: int
    path: str  # the R4 element path, e.g. Observation.value[x]
    binding: str | None  # ValueSet canonical of a required binding
    choice: str | None  # the choice element's base name (value for value[x])
    # False for FHIRPath System types (Resource.id, Element.id, Extension.url): these are
    # not FHIR primitives, so they have no `_name` companion for id/extensions.
    extensible: bool = True
    summary: bool = False  # isSummary (http://hl7.org/fhir/R4/search.html#summary)


Model = dict[str, dict[str, Element]]


# --- fetching --------------------------------------------------------------------------


def fetch(spec: str, cache: Path) -> Path:
    """`npm pack` a package into the cache (once) and return its unpacked package/ dir."""
    name = spec.replace("@", "-")
    target = cache / name
    if not (target / "package" / "package.json").exists():
        cache.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(
            ["npm", "pack", spec, "--pack-destination", str(cache), "--json"],
            check=True,
            capture_output=True,
            text=True,
        )
        tarball = cache / json.loads(out.stdout)[0]["filename"]
        with tarfile.open(tarball) as tar:
            tar.extractall(target, filter="data")
    return target / "package"


def load_json(directory: Path, pattern: str) -> Iterator[dict[str, Any]]:
    for path in sorted(directory.glob(pattern)):
        yield json.loads(path.read_text(encoding="utf-8"))


# --- R4 element model -----------------------------------------------------------------


def type_code(element: dict[str, Any], type_: dict[str, Any]) -> str:
    code: str = type_["code"]
    if code.startswith(SYSTEM_TYPE):
        # Snapshot elements like Resource.id and Extension.url carry a FHIRPath system type
        # with the FHIR type in an extension.
        for ext in type_.get("extension", []):
            if ext["url"] == FHIR_TYPE_EXT:
                code = ext["valueUrl"]
        if element.get("base", {}).get("path") == "Resource.id":
            code = "id"  # http://hl7.org/fhir/R4/resource.html#id: Resource.id is an `id`
    return code


def upper_first(s: str) -> str:
    return s[0].upper() + s[1:]


def type_elements(sd: dict[str, Any]) -> Iterator[tuple[str, Element]]:
    """(owner type key, element) for each JSON property defined by a StructureDefinition.

    The owner key is the type name for top-level elements and the element path for children
    of BackboneElements, e.g. ("Patient.contact", Element(name="gender", ...)).
    """
    elements = [e for e in sd["snapshot"]["element"] if ":" not in e["id"]]
    paths = {e["path"] for e in elements}
    root = sd["type"]
    for e in elements:
        path: str = e["path"]
        if path == root or e["max"] == "0":
            continue
        owner, name = path.rsplit(".", 1)
        is_list = e["max"] == "*" or int(e["max"]) > 1
        binding = e.get("binding", {})
        vs = binding.get("valueSet") if binding.get("strength") == "required" else None
        vs = vs.split("|")[0] if vs else None
        if "contentReference" in e:
            types_ = [e["contentReference"].lstrip("#")]
        elif any(p.startswith(path + ".") for p in paths):
            types_ = [path]  # a BackboneElement (or Element) with its own children
        else:
            types_ = [type_code(e, t) for t in e["type"]]
        system = any(t["code"].startswith(SYSTEM_TYPE) for t in e.get("type", []))
        summary = bool(e.get("isSummary"))
        if name.endswith("[x]"):
            base = name[:-3]
            for t in types_:
                name_t = base + upper_first(t)
                yield owner, Element(name_t, t, is_list, e["min"], path, vs, base, True, summary)
        else:
            yield (
                owner,
                Element(name, types_[0], is_list, e["min"], path, vs, None, not system, summary),
            )


def value_regex(sd: dict[str, Any]) -> str | None:
    """The regex of a primitive type: an extension on the type of its `value` element."""
    for e in sd["snapshot"]["element"]:
        if e["path"] == f"{sd['type']}.value":
            for type_ in e.get("type", []):
                for ext in type_.get("extension", []):
                    if ext["url"] == REGEX_EXT:
                        regex: str = ext["valueString"]
                        return regex
    return None


def build_model(sds: Iterable[dict[str, Any]]) -> Model:
    model: Model = {}
    for sd in sds:
        model.setdefault(sd["type"], {})
        for owner, element in type_elements(sd):
            model.setdefault(owner, {})[element.name] = element
    return model


# --- value sets ------------------------------------------------------------------------

Codes = dict[str, set[str]]  # system -> codes


class NotEnumerable(Exception):
    pass


@dataclass
class Terminology:
    value_sets: dict[str, dict[str, Any]]
    expansions: dict[str, dict[str, Any]]
    code_systems: dict[str, dict[str, Any]]

    def enumerate(self, url: str, seen: frozenset[str] = frozenset()) -> Codes:
        """All codes of a value set, from its compose or else a complete expansion."""
        if url in seen:
            raise NotEnumerable(f"{url} includes itself")
        vs = self.value_sets.get(url)
        if vs is None:
            raise NotEnumerable(f"value set {url} is not in the package")
        try:
            return self._compose(vs["compose"], seen | {url})
        except NotEnumerable as problem:
            expanded = self._expansion(url)
            if expanded is None:
                raise NotEnumerable(str(problem)) from None
            return expanded

    def _compose(self, compose: dict[str, Any], seen: frozenset[str]) -> Codes:
        codes: Codes = {}
        for include in compose.get("include", []):
            for system, found in self._include(include, seen).items():
                codes.setdefault(system, set()).update(found)
        for exclude in compose.get("exclude", []):
            for system, found in self._include(exclude, seen).items():
                codes.get(system, set()).difference_update(found)
        return {s: c for s, c in codes.items() if c}

    def _include(self, include: dict[str, Any], seen: frozenset[str]) -> Codes:
        if include.get("filter"):
            raise NotEnumerable(f"filter on {include.get('system')}")
        codes: Codes | None = None
        for url in include.get("valueSet", []):
            found = self.enumerate(url.split("|")[0], seen)
            codes = found if codes is None else intersect(codes, found)
        system = include.get("system")
        if system is None:
            return codes or {}
        if "concept" in include:
            mine = {system: {c["code"] for c in include["concept"]}}
        else:
            mine = {system: self._whole_system(system)}
        return mine if codes is None else intersect(codes, mine)

    def _whole_system(self, system: str) -> set[str]:
        cs = self.code_systems.get(system)
        if cs is None:
            raise NotEnumerable(f"code system {system} is not in the package")
        if cs.get("content") != "complete":
            raise NotEnumerable(f"code system {system} content is {cs.get('content')}")
        return set(walk_concepts(cs.get("concept", [])))

    def _expansion(self, url: str) -> Codes | None:
        vs = self.expansions.get(url)
        if vs is None:
            return None
        expansion = vs["expansion"]
        # A 'limitedExpansion' parameter or a missing total marks a partial expansion.
        if any(p["name"] == "limitedExpansion" for p in expansion.get("parameter", [])):
            return None
        contains = list(walk_contains(expansion.get("contains", [])))
        if expansion.get("total") != len(contains):
            return None
        codes: Codes = {}
        for system, code in contains:
            codes.setdefault(system, set()).add(code)
        return codes


def walk_concepts(concepts: list[dict[str, Any]]) -> Iterator[str]:
    for concept in concepts:
        yield concept["code"]
        yield from walk_concepts(concept.get("concept", []))


def walk_contains(contains: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    for item in contains:
        if "code" in item and not item.get("abstract"):
            yield item["system"], item["code"]
        yield from walk_contains(item.get("contains", []))


def intersect(a: Codes, b: Codes) -> Codes:
    return {s: a[s] & b[s] for s in a.keys() & b.keys() if a[s] & b[s]}


# --- output ----------------------------------------------------------------------------


def reachable(model: Model, roots: Iterable[str]) -> set[str]:
    """Type keys used, directly or through other types, by `roots`."""
    found: set[str] = set()
    todo = list(roots)
    while todo:
        key = todo.pop()
        if key in found or key not in model:
            continue
        found.add(key)
        todo += [e.type for e in model[key].values()]
    return found


BASES = ("DomainResource", "Resource", "BackboneElement", "Element")


def tokens(elements: Iterable[Element], open_types: str) -> set[str]:
    """`name:type`, `*` marking arrays, `!` System types and a final `+` required elements
    (min >= 1); a choice element is one token `value[x]:string|Quantity|...`, or
    `value[x]:@open` for all types (OPEN_TYPES)."""
    found: set[str] = set()
    choices: dict[str, list[str]] = {}
    required: set[str] = set()
    for e in elements:
        if e.choice is not None:
            choices.setdefault(e.choice, []).append(e.type)
            if e.min >= 1:
                required.add(e.choice)
        else:
            found.add(
                f"{e.name}:{e.type}{'*' if e.is_list else ''}{'' if e.extensible else '!'}"
                f"{'+' if e.min >= 1 else ''}"
            )
    for name, choice_types in choices.items():
        listed = "|".join(sorted(choice_types))
        plus = "+" if name in required else ""
        found.add(f"{name}[x]:{'@open' if listed == open_types else listed}{plus}")
    return found


def encode(key: str, model: Model, open_types: str) -> str:
    """Space-separated tokens, led by `^Base` when the type has all of Base's elements."""
    mine = tokens(model[key].values(), open_types)
    for base in BASES:
        inherited = tokens(model[base].values(), open_types)
        if key != base and inherited <= mine:
            return " ".join([f"^{base}", *sorted(mine - inherited)])
    return " ".join(sorted(mine))


def py(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


@dataclass
class Definitions:
    resource_types: list[str]
    excluded: dict[str, str]
    primitives: dict[str, str]
    regexes: dict[str, str]  # primitive type -> regex of its value
    model: Model
    bindings: dict[str, str]
    unchecked: dict[str, str]
    value_sets: dict[str, Codes]

    def names(self, keep: Callable[[Element], bool]) -> list[str]:
        """`"Type": ("name", ...),` of the top-level properties of each resource type that
        `keep` selects (sorted; choices expanded)."""
        out = []
        for rt in self.resource_types:
            found = [py(n) for n, e in sorted(self.model[rt].items()) if keep(e)]
            out.append(f"    {py(rt)}: ({', '.join(found)}{',' if found else ''}),")
        return out

    def render(self) -> str:
        extension = self.model["Extension"].values()
        open_types = "|".join(sorted(e.type for e in extension if e.choice == "value"))
        out = [
            '"""FHIR R4 (4.0.1) definitions for validation. GENERATED by',
            "scripts/generate_fhir_definitions.py from hl7.fhir.r4.examples@4.0.1 and",
            'hl7.fhir.r4.expansions@4.0.1 (CC0). Do not edit; re-run the script."""',
            "",
            "# R4 resource types OpenGP does not yet accept (NOT_YET_ACCEPTED in the script: they",
            "# were left out while validation used the fhir.resources R4B models, which have no",
            "# model for them or lack some of their R4 elements).",
            "",
            'FHIR_VERSION: str = "4.0.1"',
            "",
            "RESOURCE_TYPES: frozenset[str] = frozenset({",
            *(f"    {py(t)}," for t in self.resource_types),
            "})",
            "",
            "EXCLUDED_RESOURCE_TYPES: dict[str, str] = {",
            *(f"    {py(t)}: {py(r)}," for t, r in sorted(self.excluded.items())),
            "}",
            "",
            "# Primitive type -> its JSON representation (http://hl7.org/fhir/R4/json.html).",
            "PRIMITIVE_TYPES: dict[str, str] = {",
            *(f"    {py(t)}: {py(k)}," for t, k in sorted(self.primitives.items())),
            "}",
            "",
            "# Primitive type -> the regex its value matches as a whole",
            "# (http://hl7.org/fhir/R4/datatypes.html#primitive); for JSON numbers and booleans it",
            "# describes their text. xhtml has none.",
            "PRIMITIVE_REGEXES: dict[str, str] = {",
            *(f"    {py(t)}: {py(r)}," for t, r in sorted(self.regexes.items())),
            "}",
            "",
            "# The types of Extension.value[x] (http://hl7.org/fhir/R4/datatypes.html#open).",
            f"OPEN_TYPES: tuple[str, ...] = ({', '.join(py(t) for t in open_types.split('|'))},)",
            "",
            "# Type (resource, datatype, or path of a BackboneElement) -> its JSON properties as",
            '# "name:type"; "*" marks arrays, "!" FHIRPath System types (no `_name` companion), a',
            '# final "+" required elements (min >= 1); "^Base" all properties of Base;',
            '# "name[x]:T1|T2" a choice (nameT1, nameT2), with "@open" for OPEN_TYPES.',
            "ELEMENTS: dict[str, str] = {",
            *(f"    {py(k)}: {py(encode(k, self.model, open_types))}," for k in sorted(self.model)),
            "}",
            "",
            "# Resource type -> its top-level properties marked isSummary, for _summary=true",
            "# (http://hl7.org/fhir/R4/search.html#summary); choices expanded.",
            "SUMMARY_ELEMENTS: dict[str, tuple[str, ...]] = {",
            *self.names(lambda e: e.summary),
            "}",
            "",
            "# Resource type -> its mandatory (min >= 1) top-level properties; choices expanded.",
            "MANDATORY_ELEMENTS: dict[str, tuple[str, ...]] = {",
            *self.names(lambda e: e.min >= 1),
            "}",
            "",
            "# Type.property -> ValueSet of its required binding (checked).",
            "REQUIRED_BINDINGS: dict[str, str] = {",
            *(f"    {py(k)}: {py(v)}," for k, v in sorted(self.bindings.items())),
            "}",
            "",
            "# Required bindings whose ValueSet cannot be enumerated here (unchecked).",
            "UNCHECKED_BINDINGS: dict[str, str] = {",
            *(f"    {py(k)}: {py(v)}," for k, v in sorted(self.unchecked.items())),
            "}",
            "",
            "# ValueSet -> code system -> codes.",
            "VALUE_SETS: dict[str, dict[str, tuple[str, ...]]] = {",
        ]
        for url, codes in sorted(self.value_sets.items()):
            out.append(f"    {py(url)}: {{")
            for system, found in sorted(codes.items()):
                out.append(f"        {py(system)}: ({', '.join(py(c) for c in sorted(found))},),")
            out.append("    },")
        out += ["}", ""]
        return "\n".join(out)


def generate(examples: Path, expansions: Path) -> Definitions:
    sds = [
        sd
        for sd in load_json(examples, "StructureDefinition-*.json")
        if sd["kind"] in ("resource", "complex-type", "primitive-type")
        and (sd.get("derivation") == "specialization" or sd["type"] in ("Element", "Resource"))
    ]
    primitives = {
        sd["type"]: JSON_KIND.get(sd["type"], "string")
        for sd in sds
        if sd["kind"] == "primitive-type"
    }
    regexes = {
        sd["type"]: regex
        for sd in sds
        if sd["kind"] == "primitive-type" and (regex := value_regex(sd)) is not None
    }
    # Primitive StructureDefinitions only describe `value`; their `_x` companion is an Element.
    model = build_model(sd for sd in sds if sd["kind"] != "primitive-type")
    candidates = sorted(
        sd["type"] for sd in sds if sd["kind"] == "resource" and not sd.get("abstract")
    )
    unknown = set(NOT_YET_ACCEPTED) - set(candidates)
    if unknown:
        raise SystemExit(f"not R4 resource types: {sorted(unknown)}")
    excluded = dict.fromkeys(NOT_YET_ACCEPTED, NOT_YET_ACCEPTED_REASON)
    resource_types = [rt for rt in candidates if rt not in excluded]
    keep = reachable(model, [*resource_types, *BASES])
    model = {k: v for k, v in model.items() if k in keep}

    terminology = Terminology(
        value_sets={vs["url"]: vs for vs in load_json(examples, "ValueSet-*.json")},
        expansions={vs["url"]: vs for vs in load_json(expansions, "ValueSet-*.json")},
        code_systems={cs["url"]: cs for cs in load_json(examples, "CodeSystem-*.json")},
    )
    bindings: dict[str, str] = {}
    unchecked: dict[str, str] = {}
    value_sets: dict[str, Codes] = {}
    for key, elements in model.items():
        for name, e in elements.items():
            if e.binding is None or e.type not in BINDABLE:
                continue
            where = f"{key}.{name}"
            try:
                value_sets.setdefault(e.binding, terminology.enumerate(e.binding))
                bindings[where] = e.binding
            except NotEnumerable as reason:
                unchecked[where] = f"{e.binding}: {reason}"
    return Definitions(
        resource_types, excluded, primitives, regexes, model, bindings, unchecked, value_sets
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package-dir", type=Path, help=f"unpacked {EXAMPLES_PACKAGE}")
    parser.add_argument("--expansions-dir", type=Path, help=f"unpacked {EXPANSIONS_PACKAGE}")
    parser.add_argument("--cache-dir", type=Path, default=CACHE)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true", help="fail if the output is stale")
    args = parser.parse_args(argv)
    examples = args.package_dir or fetch(EXAMPLES_PACKAGE, args.cache_dir)
    expansions = args.expansions_dir or fetch(EXPANSIONS_PACKAGE, args.cache_dir)
    text = generate(examples, expansions).render()
    return write_or_check(args.output, text, check=args.check, script=Path(__file__).name)


def write_or_check(output: Path, text: str, *, check: bool, script: str) -> int:
    """Write the generated module, or with `check` exit 1 when the committed one differs."""
    if check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != text:
            print(f"{output} is stale; re-run {script}", file=sys.stderr)
            return 1
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    print(f"wrote {output} ({len(text) // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
