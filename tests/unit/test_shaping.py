"""_summary and _elements shaping of search results (opengp.services.fhir.shaping)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from opengp.fhir import jsonio
from opengp.fhir.definitions.r4 import MANDATORY_ELEMENTS, RESOURCE_TYPES, SUMMARY_ELEMENTS
from opengp.services.fhir.shaping import SUBSETTED_SYSTEM, shaper
from opengp.store import StoredResource

SUBSETTED = {"system": SUBSETTED_SYSTEM, "code": "SUBSETTED"}
META = {"versionId": "1", "lastUpdated": "2024-01-01T00:00:00Z"}
PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "meta": META,
    "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'},
    "name": [{"family": "Smith"}],
    "birthDate": "1970-01-01",
    "_birthDate": {"extension": [{"url": "http://example.org/x", "valueString": "y"}]},
    "contact": [{"name": {"family": "Jones"}}],
    "photo": [{"contentType": "image/png", "size": 10}],
}
OBSERVATION = (
    b'{"resourceType":"Observation","id":"o1","meta":{"versionId":"1"},"status":"final",'
    b'"code":{"text":"Hb"},"subject":{"reference":"Patient/p1"},'
    b'"effectiveDateTime":"2024-01-01","valueQuantity":{"value":7.10,"unit":"g/dL"},'
    b'"note":[{"text":"n"}]}'
)
BASE = {"resourceType", "id", "meta"}


def stored(content: bytes, resource_type: str = "Patient") -> StoredResource:
    return StoredResource(resource_type, "x", 1, datetime(2024, 1, 1, tzinfo=UTC), False, content)


def shape(summary: str | None, elements: tuple[str, ...], content: bytes) -> tuple[bytes, Any]:
    """The bytes a Bundle entry would carry, and their parsed form."""
    out = shaper(summary, elements)(stored(content, jsonio.loads(content)["resourceType"]))
    assert isinstance(out, orjson.Fragment)
    written = orjson.dumps({"resource": out})
    return written, jsonio.loads(written)["resource"]


@pytest.mark.parametrize(
    ("summary", "elements", "keys", "subsetted"),
    [
        ("true", (), BASE | {"name", "birthDate", "_birthDate"}, True),
        ("count", (), BASE | {"name", "birthDate", "_birthDate"}, True),
        ("text", (), BASE | {"text"}, True),
        ("data", (), set(PATIENT) - {"text"}, False),
        (None, ("photo",), BASE | {"photo"}, True),
        ("false", ("birthDate", "nonsense"), BASE | {"birthDate", "_birthDate"}, True),
        ("text", ("photo",), BASE | {"text"}, True),  # _summary takes precedence
    ],
)
def test_patient_modes(
    summary: str | None, elements: tuple[str, ...], keys: set[str], subsetted: bool
) -> None:
    _, resource = shape(summary, elements, orjson.dumps(PATIENT))
    assert set(resource) == keys
    assert (SUBSETTED in resource["meta"].get("tag", [])) is subsetted
    assert resource["meta"]["versionId"] == "1"
    for key in keys - {"meta"}:
        assert resource[key] == PATIENT[key]


@pytest.mark.parametrize("summary", [None, "false"])
def test_fast_path_returns_the_stored_bytes(summary: str | None) -> None:
    content = OBSERVATION + b" "  # not what orjson would write: proves nothing re-serialised
    out = shaper(summary, ())(stored(content, "Observation"))
    assert isinstance(out, orjson.Fragment)
    assert orjson.dumps({"resource": out}) == b'{"resource":' + content + b"}"


def test_elements_keep_choice_expansions_mandatory_elements_and_decimals() -> None:
    written, resource = shape(None, ("value", "code"), OBSERVATION)
    # status is mandatory; subject, effective[x] and note were not asked for
    assert set(resource) == BASE | {"status", "code", "valueQuantity"}
    assert b'"value":7.10' in written
    assert str(resource["valueQuantity"]["value"]) == "7.10"


@pytest.mark.parametrize("summary", ["true", "data"])
def test_decimals_keep_their_digits_when_parsed(summary: str) -> None:
    written, _ = shape(summary, (), OBSERVATION)
    assert b'"value":7.10,' in written


def test_subsetted_is_added_once_and_other_tags_kept() -> None:
    other = {"system": "http://example.org", "code": "other"}
    patient = PATIENT | {"meta": META | {"tag": [other, SUBSETTED]}}
    _, resource = shape("true", (), orjson.dumps(patient))
    assert resource["meta"]["tag"] == [other, SUBSETTED]
    without_meta = {k: v for k, v in PATIENT.items() if k != "meta"}
    _, resource = shape("text", (), orjson.dumps(without_meta))
    assert resource["meta"] == {"tag": [SUBSETTED]}


def test_unknown_summary_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="_summary"):
        shaper("maybe", ())


def test_generated_summary_and_mandatory_elements() -> None:
    assert SUMMARY_ELEMENTS.keys() == MANDATORY_ELEMENTS.keys() == RESOURCE_TYPES
    assert {"valueQuantity", "valueString", "status", "code", "id", "meta"} <= set(
        SUMMARY_ELEMENTS["Observation"]
    )
    assert not {"text", "note", "value", "dataAbsentReason"} & set(SUMMARY_ELEMENTS["Observation"])
    assert not {"photo", "contact", "text"} & set(SUMMARY_ELEMENTS["Patient"])
    assert MANDATORY_ELEMENTS["Observation"] == ("code", "status")
    assert MANDATORY_ELEMENTS["Patient"] == ()
