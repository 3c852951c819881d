"""NDJSON files of FHIR resources: reading them line by line, writing them with a running
SHA-256, problems named by file and line, and the content hash that compares resources.

NDJSON is one JSON value per line (https://github.com/ndjson/ndjson-spec); the FHIR Bulk
Data format puts one resource on each (https://hl7.org/fhir/uv/bulkdata/export.html).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import orjson

from opengp.fhir.errors import Issue, operation_outcome

# A line longer than this is reported, not read: a file without newlines must not fill memory.
MAX_LINE_BYTES = 16 * 1024 * 1024
_BOM = b"\xef\xbb\xbf"
_CHUNK = 1 << 20
# Elements a server sets on every write: they legitimately differ between two copies of the
# same resource, so the content hash leaves them out.
SERVER_META = ("versionId", "lastUpdated")


@dataclass(frozen=True, slots=True)
class Line:
    number: int  # from 1
    data: bytes  # without the line ending; empty when `too_long`
    too_long: bool = False


def lines(stream: IO[bytes]) -> Iterator[Line]:
    """The lines of an NDJSON stream, numbered, holding at most one line in memory."""
    number = 0
    while True:
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        if number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while (more := stream.readline(_CHUNK)) and not more.endswith(b"\n"):
                pass  # skip the rest of the overlong line
            yield Line(number, b"", too_long=True)
            continue
        yield Line(number, raw.rstrip(b"\r\n"))


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with one line of an input file (line 0: with the file as a whole)."""

    file: str
    line: int
    message: str
    code: str = "invalid"  # http://hl7.org/fhir/R4/valueset-issue-type.html
    expression: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.file} line {self.line}" if self.line else self.file

    def text(self) -> str:
        return f"{self.where}: {self.message}"

    def outcome(self) -> dict[str, Any]:
        """As an OperationOutcome: one line of a Bulk Data error file."""
        return operation_outcome([Issue(self.code, self.text(), self.expression)])


def _decimal(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))  # the digits as written (jsonio keeps them)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def canonical(body: dict[str, Any]) -> bytes:
    """A resource as canonical JSON: keys sorted, no whitespace, decimals as written, and
    without meta.versionId and meta.lastUpdated (meta left out if nothing else is in it)."""
    meta = body.get("meta")
    if isinstance(meta, dict) and any(k in meta for k in SERVER_META):
        kept = {k: v for k, v in meta.items() if k not in SERVER_META}
        body = {k: v for k, v in body.items() if k != "meta"}
        if kept:
            body["meta"] = kept
    return orjson.dumps(body, default=_decimal, option=orjson.OPT_SORT_KEYS)


def content_hash(body: dict[str, Any]) -> str:
    """SHA-256 (hex) of `canonical(body)`: equal for two copies of a resource that differ
    only in what a server sets on writing (version and time), or in key order."""
    return hashlib.sha256(canonical(body)).hexdigest()


class Writer:
    """An NDJSON file written batch by batch, counting lines and hashing as it goes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._sha = hashlib.sha256()
        self._file = path.open("wb")

    def write(self, rows: list[bytes]) -> None:
        """Write lines (JSON without newlines, e.g. stored resource content)."""
        block = b"\n".join(rows) + b"\n"
        self._file.write(block)
        self._sha.update(block)
        self.count += len(rows)

    def close(self) -> str:
        """Close the file; its SHA-256 (hex)."""
        self._file.close()
        return self._sha.hexdigest()

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


def file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            sha.update(chunk)
    return sha.hexdigest()
