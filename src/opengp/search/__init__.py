"""Parse FHIR searches into frozen, typed descriptions. No SQL and no I/O here."""
