"""The one exception hierarchy of OpenGP, mapped to an OperationOutcome at the edge.

Every error names the element (`Issue.expression`, a FHIRPath) and the rule it broke.
See http://hl7.org/fhir/R4/operationoutcome.html and http://hl7.org/fhir/R4/http.html#Status-Codes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Issue:
    """One OperationOutcome.issue. `code` is from http://hl7.org/fhir/R4/valueset-issue-type.html."""

    code: str
    diagnostics: str
    expression: tuple[str, ...] = ()
    severity: str = "error"

    def to_fhir(self) -> dict[str, Any]:
        issue: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
        }
        if self.expression:
            issue["expression"] = list(self.expression)
        return issue


def operation_outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]}


class FhirError(Exception):
    """A request that cannot be carried out; `status` is the HTTP status it maps to."""

    status = 400
    code = "invalid"
    audited = False  # set by whoever has written its audit entry

    def __init__(
        self,
        diagnostics: str = "",
        *,
        expression: Iterable[str] = (),
        issues: Iterable[Issue] = (),
        status: int | None = None,
    ) -> None:
        found = tuple(issues)
        if diagnostics:
            found = (Issue(self.code, diagnostics, tuple(expression)), *found)
        self.issues: tuple[Issue, ...] = found
        if status is not None:
            self.status = status
        super().__init__("; ".join(i.diagnostics for i in found))

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.issues)


class BadRequest(FhirError):
    """400: the request could not be parsed or broke a basic FHIR rule."""


class InvalidResource(FhirError):
    """400 (structure, datatypes) or 422 (bindings, profiles, business rules)."""

    code = "invalid"


class NotFound(FhirError):
    status = 404
    code = "not-found"


class Gone(FhirError):
    """410: the resource was deleted (its history is kept)."""

    status = 410
    code = "deleted"


class MethodNotAllowed(FhirError):
    status = 405
    code = "not-supported"


class NotAcceptable(FhirError):
    status = 406
    code = "not-supported"


class Conflict(FhirError):
    status = 409
    code = "conflict"


class PreconditionFailed(FhirError):
    """412: If-Match did not match, or a conditional interaction matched more than one resource."""

    status = 412
    code = "conflict"


class PayloadTooLarge(FhirError):
    status = 413
    code = "too-costly"


class UnsupportedMediaType(FhirError):
    status = 415
    code = "not-supported"


class Unprocessable(FhirError):
    status = 422
    code = "business-rule"


class ServerError(FhirError):
    """500: a fault of the server, never of the request. Logged without request details."""

    status = 500
    code = "exception"


class Unauthorized(FhirError):
    """401: no identity, or a token that is not good (RFC 6750)."""

    status = 401
    code = "login"

    def __init__(self, diagnostics: str, *, challenge: str = 'Bearer realm="fhir"') -> None:
        super().__init__(diagnostics)
        self.challenge = challenge  # the WWW-Authenticate header (RFC 6750 §3)


class Forbidden(FhirError):
    """403: the identity may not do this (the policy said no)."""

    status = 403
    code = "forbidden"


class Concealed(NotFound):
    """404 for something that exists but may not be seen: a patient asking for another
    patient's record learns nothing, not even that it exists. Audited as a denial."""
