"""OpenGP: an open-source GP clinical system whose record is FHIR R4 (UK Core)."""

__version__ = "0.1.0"
