"""A patient's searches restricted to what the practice released to them online
(`opengp.search.release.Release`), as one SQL condition on `resource`.

It joins the search like the compartment condition does, so the database filters before
paging and counting: a hidden entry is neither on a page nor in `_total`.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, false, or_, select, true

from opengp.search.release import Release
from opengp.store.sql.search_tables import search_date
from opengp.store.sql.tables import resource


def _dated_from(resource_type: str, release: Release) -> ColumnElement[bool]:
    """Entries of `resource_type` dated on or after `release.since` (all when it is None)."""
    if release.since is None:
        return true()
    param = release.date_parameter(resource_type)
    if param is None:
        return false()  # no date to judge it by: hidden under prospective access
    d = search_date.c
    return resource.c.id.in_(
        select(d.resource_id).where(
            d.resource_type == resource_type, d.param == param, d.low >= release.since
        )
    )


def released(resource_type: str | None, release: Release) -> ColumnElement[bool]:
    """The condition for a search of `resource_type` (None: across types, `$everything`)."""
    if resource_type is not None:
        if not release.restricts(resource_type):
            return true()
        if resource_type not in release.released:
            return false()
        return _dated_from(resource_type, release)
    kind = resource.c.resource_type
    shown: list[ColumnElement[bool]] = [kind.in_(sorted(release.unrestricted))]
    if release.since is None:
        shown.append(kind.in_(sorted(release.released)))
    else:
        dated = sorted(t for t in release.released if release.date_parameter(t))
        shown += [and_(kind == t, _dated_from(t, release)) for t in dated]
    return or_(*shown)
