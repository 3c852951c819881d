"""Content types and formats (http://hl7.org/fhir/R4/http.html#mime-type)."""

from __future__ import annotations

from opengp.fhir.errors import NotAcceptable, UnsupportedMediaType

FHIR_JSON = "application/fhir+json"
JSON_PATCH = "application/json-patch+json"
JSON_TYPES = frozenset({FHIR_JSON, "application/json", "application/json+fhir", "text/json"})
_FORMAT_ALIASES = {"json": FHIR_JSON, "application/json": "application/json", FHIR_JSON: FHIR_JSON}
XML_TYPES = frozenset(
    {"xml", "text/xml", "application/xml", "application/fhir+xml", "application/xml+fhir"}
)


def media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def response_type(format_param: str | None, accept: str | None) -> str:
    """The media type to answer with, or 406 when the client accepts nothing we produce."""
    if format_param is not None:
        chosen = _FORMAT_ALIASES.get(format_param.strip().lower().replace(" ", "+"))
        if chosen is None:
            kind = "XML is" if format_param.lower() in XML_TYPES else f"_format={format_param!r} is"
            raise NotAcceptable(f"{kind} not supported; use _format=json")
        return chosen
    if not accept:
        return FHIR_JSON
    for item in accept.split(","):
        kind = media_type(item)
        if kind in ("*/*", "application/*", FHIR_JSON):
            return FHIR_JSON
        if kind in JSON_TYPES:
            return "application/json"
    raise NotAcceptable(f"cannot answer with {accept!r}; this server speaks {FHIR_JSON}")


def check_body_type(content_type: str | None, *, patch: bool) -> None:
    kind = media_type(content_type)
    if patch:
        if kind != JSON_PATCH:
            raise UnsupportedMediaType(
                f"PATCH needs Content-Type {JSON_PATCH}, not {kind or 'none'!r}"
            )
        return
    if kind not in JSON_TYPES:
        raise UnsupportedMediaType(f"Content-Type must be {FHIR_JSON}, not {kind or 'none'!r}")
