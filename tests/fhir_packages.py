"""Where the official R4 npm packages are unpacked (`make test` fetches them into build/)."""

from __future__ import annotations

from pathlib import Path

CACHE = Path(__file__).resolve().parents[1] / "build" / "fhir-packages"


def package_dir(name: str) -> Path | None:
    """The unpacked `package/` folder of `name` (e.g. hl7.fhir.r4.examples), if fetched."""
    candidate = CACHE / f"{name}-4.0.1" / "package"
    return candidate if (candidate / "package.json").exists() else None
