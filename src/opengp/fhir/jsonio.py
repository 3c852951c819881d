"""FHIR JSON in and out, keeping decimal precision.

FHIR decimals carry their precision in their digits: 7.10 is not 7.1
(http://hl7.org/fhir/R4/datatypes.html#decimal). Parsing to float would drop trailing zeros,
so numbers with a fraction or exponent are parsed as `Decimal` and written back with exactly
the digits they arrived with.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson


class JsonError(ValueError):
    """The bytes are not one valid JSON value."""


def _constant(name: str) -> Any:
    raise JsonError(f"{name} is not valid JSON")


def loads(data: bytes | str) -> Any:
    try:
        return json.loads(data, parse_float=Decimal, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise JsonError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (UnicodeDecodeError, RecursionError) as exc:
        raise JsonError(str(exc)) from None


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise TypeError("a FHIR decimal must be finite")
        return orjson.Fragment(str(value))
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default)
