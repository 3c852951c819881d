"""Bulk data: FHIR Bulk Data export, NDJSON import, and verified practice migration.

- `export`: what to export and writing it (stored bytes straight to NDJSON files);
- `checking`, `importing`, `ledger`: checking, resolving and loading an import;
- `verify`: reconciling an export with a database;
- `manifest`, `ndjson`: the files, their manifest and the content hash;
- `jobs`, `requests`: asynchronous jobs and the use cases behind the HTTP API.

See docs/bulk.md.
"""
