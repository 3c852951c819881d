"""What of a patient's own record their searches may find: the part the practice released to
them online (set by the access policy, `opengp.access.policy.OnlineRecordAccess`).

Pure description, turned into SQL by the store (`opengp.store.sql.release`), so a search by a
patient or proxy is restricted where it runs: paging and `_total` count only what they may
see, and nothing hidden is disclosed by a count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True, repr=False)
class Release:
    """Types in `unrestricted` are shown whatever the release (the patient's details,
    appointments, who accessed the record). Of the others (clinical entries),
    only those in `released`; and when `since` is set (prospective access), only entries
    whose date (by the search parameter `dated_by` names for their type) is on or after it.
    A restricted type without a dating parameter is hidden under prospective access."""

    unrestricted: frozenset[str]  # types never restricted (not clinical entries)
    released: frozenset[str]  # clinical types released online
    since: datetime | None = None
    dated_by: tuple[tuple[str, str], ...] = ()  # (resource type, date search parameter)

    def restricts(self, resource_type: str) -> bool:
        return resource_type not in self.unrestricted

    def date_parameter(self, resource_type: str) -> str | None:
        return dict(self.dated_by).get(resource_type)

    def __repr__(self) -> str:
        # Sorted, so equal releases print alike in every process (search snapshots are
        # keyed by a digest of the query's repr; set order varies with hash seeds).
        parts = (sorted(self.unrestricted), sorted(self.released), self.since, self.dated_by)
        return f"Release{parts!r}"
