"""The completion manifest of an export (https://hl7.org/fhir/uv/bulkdata/export.html#response---complete-status),
with OpenGP's additions: each file's resource `count` (optional in Bulk Data v2) and its
`sha256`, so the receiver can tell a complete, unaltered copy from a damaged one.

`opengp export` writes it as `manifest.json` beside the files, with file names as URLs;
`opengp import` and `opengp migrate verify` read it back.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from opengp.fhir.datetimes import instant
from opengp.services.bulk.export import Output

MANIFEST = "manifest.json"
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")


class ManifestError(ValueError):
    """A manifest that cannot be read; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class ManifestFile:
    type: str
    file: str  # a plain name in the manifest's directory
    count: int | None
    sha256: str | None


def manifest(
    transaction_time: datetime,
    request: str,
    outputs: Sequence[Output],
    url_of: Callable[[str], str],
    *,
    requires_token: bool,
    errors: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    return {
        "transactionTime": instant(transaction_time),
        "request": request,
        "requiresAccessToken": requires_token,
        "output": [
            {"type": o.type, "url": url_of(o.file), "count": o.count, "sha256": o.sha256}
            for o in outputs
        ],
        "error": list(errors),
    }


def write_manifest(directory: Path, body: dict[str, Any]) -> None:
    (directory / MANIFEST).write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n")


def read_manifest(directory: Path) -> list[ManifestFile]:
    """The files a manifest lists; a URL's last path segment is taken as the file name."""
    path = directory / MANIFEST
    try:
        body = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise ManifestError(f"{path} is missing: is this the output of 'opengp export'?") from None
    except orjson.JSONDecodeError as exc:
        raise ManifestError(f"{path} is not valid JSON: {exc}") from None
    outputs = body.get("output") if isinstance(body, dict) else None
    if not isinstance(outputs, list):
        raise ManifestError(f"{path} has no output list")
    files = []
    for number, item in enumerate(outputs, 1):
        if not isinstance(item, dict):
            raise ManifestError(f"{path}: output {number} is not an object")
        name = str(item.get("url", "")).rsplit("/", 1)[-1]
        kind, count, sha256 = item.get("type"), item.get("count"), item.get("sha256")
        if not isinstance(kind, str) or not _FILE_NAME.fullmatch(name) or ".." in name:
            raise ManifestError(f"{path}: output {number} needs a type and a plain file name")
        files.append(
            ManifestFile(
                kind,
                name,
                count if isinstance(count, int) else None,
                sha256 if isinstance(sha256, str) else None,
            )
        )
    return files
