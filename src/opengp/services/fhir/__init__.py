"""The FHIR RESTful API as framework-neutral use cases (http://hl7.org/fhir/R4/http.html).

`router.dispatch` takes a `FhirRequest` and returns a `FhirResponse`; the HTTP adapter in
`opengp.api` and Bundle processing both go through it, so each interaction is written once.
"""
