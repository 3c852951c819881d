"""What the layers above may ask of a store. Implementations: `opengp.store.sql.SqlStore`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from opengp.search.parse import RelationshipLink, SearchQuery

if TYPE_CHECKING:
    from opengp.store.sql.audit import AuditRow


class WriteConflict(Exception):
    """Another transaction changed the resource first; the interaction may be retried."""


@dataclass(frozen=True, slots=True)
class StoredResource:
    resource_type: str
    id: str
    version_id: int
    last_updated: datetime
    deleted: bool
    # The resource JSON exactly as stored (meta.versionId and meta.lastUpdated included);
    # served as-is on read. None for a deletion.
    content: bytes | None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    seq: int
    method: str  # POST | PUT | PATCH | DELETE: the interaction that made this version
    resource: StoredResource


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """Instance history (type and id), type history (type) or system history (neither)."""

    resource_type: str | None = None
    id: str | None = None
    since: datetime | None = None
    count: int = 50
    # Keyset cursor: only versions written before this sequence number (the next page).
    before_seq: int | None = None


@dataclass(frozen=True, slots=True)
class HistoryPage:
    entries: Sequence[HistoryEntry]
    total: int
    next_before_seq: int | None


class AuditRecord(Protocol):
    """One access to append to the audit trail (`opengp.access.audit.AuditEntry`).

    Described here as a shape, not imported, so the store need not know the access layer.
    """

    @property
    def action(self) -> str: ...
    @property
    def outcome(self) -> str: ...
    @property
    def principal(self) -> str: ...
    @property
    def on_behalf_of(self) -> str | None: ...
    @property
    def client_id(self) -> str | None: ...
    @property
    def purpose(self) -> str | None: ...
    @property
    def patient_id(self) -> str | None: ...
    @property
    def resource_type(self) -> str | None: ...
    @property
    def resource_id(self) -> str | None: ...
    @property
    def detail(self) -> Mapping[str, Any] | None: ...


class AuditLog(Protocol):
    def audit(self, *entries: AuditRecord) -> None:
        """Append entries to the audit trail, in order (a batch shares one transaction)."""


@dataclass(frozen=True, slots=True)
class SearchPage:
    matches: list[StoredResource]  # this page, in order
    included: list[StoredResource]  # by _include / _revinclude, each once, none a match
    total: int | None  # None with _total=none when it would cost a count
    next_cursor: str | None  # `_cursor` of the page after this one
    previous_cursor: str | None  # and of the one before
    pageable: int | None  # when fewer than total: how many results can be paged through


class ReadTransaction(Protocol):
    def current(
        self, resource_type: str, id: str, *, for_update: bool = False
    ) -> StoredResource | None:
        """The latest version, deleted or not; None if the resource never existed."""

    def version(self, resource_type: str, id: str, version_id: int) -> StoredResource | None: ...

    def find(self, query: SearchQuery, limit: int) -> list[str]:
        """Ids of the first `limit` live resources matching a type-level search."""

    def is_related(
        self,
        patient_id: str,
        links: Sequence[RelationshipLink],
        targets: Sequence[tuple[str, str]],
    ) -> bool:
        """Whether a resource of the patient's record of a `links` type refers, through its
        parameter, to one of `targets` (type, id)."""

    def audit_trail(
        self,
        *,
        patient_id: str | None = None,
        principal: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        count: int = 50,
        before_seq: int | None = None,
    ) -> list[AuditRow]:
        """Audit entries, newest first (see opengp.store.sql.audit.query_audit)."""

    def search(self, query: SearchQuery, owner: str) -> SearchPage:
        """One page of a search, with what it includes; `owner` alone may page further."""

    def read_many(self, resource_type: str, ids: Sequence[str]) -> list[StoredResource]: ...

    def history(self, query: HistoryQuery) -> HistoryPage: ...


class WriteTransaction(ReadTransaction, Protocol):
    def serialise(self, key: str) -> None:
        """Hold a lock on `key` until commit, so check-then-write steps cannot interleave."""

    def save(
        self,
        resource_type: str,
        id: str,
        resource: dict[str, Any],
        *,
        method: str,
        previous: StoredResource | None,
    ) -> StoredResource:
        """Write a new version after `previous` (None: create). Raises WriteConflict."""

    def delete(self, previous: StoredResource) -> StoredResource: ...

    def create_many(self, resources: Sequence[dict[str, Any]]) -> None:
        """Bulk-create new, already-validated resources (version 1 each)."""

    def audit(self, *entries: AuditRecord) -> None:
        """Append to the audit trail in this transaction: committed or rolled back with it."""


class ResourceStore(Protocol):
    def reading(self) -> AbstractContextManager[ReadTransaction]: ...

    def writing(self) -> AbstractContextManager[WriteTransaction]: ...

    def auditing(self) -> AbstractContextManager[AuditLog]:
        """Entries given inside the block are committed together, in one short transaction,
        when it ends without an exception (reads: before the response is sent)."""

    def is_ready(self) -> tuple[bool, str]:
        """Database reachable and migrated to the code's schema (for /readyz)."""

    def dispose(self) -> None: ...
