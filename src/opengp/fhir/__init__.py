"""Pure FHIR knowledge: definitions, validation, references, Bundles, OperationOutcomes. No I/O."""
