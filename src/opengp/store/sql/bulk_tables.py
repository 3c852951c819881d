"""Tables of bulk data jobs ($export, $import). Change them only with a new Alembic migration.

A job's output files live on disk, under the bulk directory (see `opengp.services.bulk`);
the row says who asked for what, how far the work has gone and what it produced.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, String, Table, Text

from opengp.store.sql.tables import UtcDateTime, metadata

# One asynchronous bulk request (https://hl7.org/fhir/uv/bulkdata/export.html): queued,
# running, then completed, failed or cancelled; completed ones expire (files deleted).
bulk_job = Table(
    "bulk_job",
    metadata,
    Column("id", String(36), primary_key=True),  # random: it is part of the status URL
    Column("kind", String(16), nullable=False),  # export | import
    Column("owner", String(140), nullable=False),  # Principal.label of who asked
    # JSON: the kick-off (level, parameters, base URL) and the grant it runs under.
    Column("request", Text, nullable=False),
    # queued | running | completed | failed | cancelled | expired
    Column("status", String(16), nullable=False),
    Column("progress", String(255), nullable=True),  # X-Progress while running
    Column("created", UtcDateTime, nullable=False),
    Column("transaction_time", UtcDateTime, nullable=True),  # the export's snapshot
    Column("finished", UtcDateTime, nullable=True),
    Column("expires", UtcDateTime, nullable=True),  # when the files are deleted
    Column("error", Text, nullable=True),  # why it failed (no patient data)
    Column("manifest", Text, nullable=True),  # JSON: the completion manifest
    Index("ix_bulk_job_status", "status", "created"),
)
