"""The text `_text` and `_content` search (http://hl7.org/fhir/R4/search.html#text).

`_text` searches the narrative (Resource.text.div, its markup removed); `_content` the whole
resource's text: every string in it, codes' displays and free text included, ids and
references not. The database does the word matching (SQLite FTS5, PostgreSQL tsvector).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

MAX_CHARACTERS = 100_000  # of each text kept per resource: enough for any letter
# Keys whose values are machine identifiers, not words a person would search for.
_SKIPPED = frozenset(
    {"id", "reference", "system", "url", "div", "fullUrl", "versionId", "resourceType"}
)
_SKIPPED_IN_RESOURCE = _SKIPPED | {"meta"}  # the resource's own (a contained one's is kept)
_WORD = re.compile(r"\w+")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def narrative(resource: dict[str, Any]) -> str:
    div = (resource.get("text") or {}).get("div")
    if not isinstance(div, str):
        return ""
    parser = _Text()
    parser.feed(div)
    return " ".join(" ".join(parser.parts).split())[:MAX_CHARACTERS]


def _object_strings(
    node: dict[str, Any], parts: list[str], skipped: frozenset[str] = _SKIPPED
) -> None:
    """Every string in a JSON object, in document order, into `parts`, but those under
    `skipped` keys."""
    for key, value in node.items():
        if key not in skipped:
            if isinstance(value, str):
                parts.append(value)
            elif isinstance(value, dict):
                _object_strings(value, parts)
            elif isinstance(value, list):
                _array_strings(value, parts)


def _array_strings(values: list[Any], parts: list[str]) -> None:
    """As _object_strings, for an array (of strings, objects or arrays)."""
    for value in values:
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, dict):
            _object_strings(value, parts)
        elif isinstance(value, list):
            _array_strings(value, parts)


def content(resource: dict[str, Any]) -> str:
    parts: list[str] = []
    _object_strings(resource, parts, _SKIPPED_IN_RESOURCE)
    text = " ".join(" ".join(parts).split())
    return f"{narrative(resource)} {text}".strip()[:MAX_CHARACTERS]


def words(query: str) -> list[str]:
    """The words of a `_text`/`_content` value: all must occur (in any order)."""
    return _WORD.findall(query.casefold())
