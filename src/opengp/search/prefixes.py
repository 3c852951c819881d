"""What a search prefix means: the one reference predicate over half-open ranges.

http://hl7.org/fhir/R4/search.html#prefix: a search value and a stored value each stand for a
range (their precision's, see ranges.py), and a prefix compares the two ranges. With ranges
half-open, [low, high), the R4 wording becomes:

    eq  the search range contains the target range      sl <= tl and th <= sh
    ne  not eq
    gt  the range above the search value overlaps        th > sh
        the target
    lt  the range below the search value overlaps        tl < sl
        the target
    ge  gt or eq
    le  lt or eq
    sa  the target starts after the search range ends    tl >= sh
    eb  the target ends before the search range starts   th <= sl
    ap  the target overlaps the search range widened     tl < wh and wl < th
        by `approximate`

This module is the single source of truth for these rules: the SQL compiler mirrors
`matches_range` clause by clause (and uses `approximate` itself, so `ap` is a plain overlap
in SQL), and the generative tests compare database results with it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal, TypeVar

from opengp.search.ranges import MAX_INSTANT, MIN_INSTANT

Prefix = Literal["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"]
PREFIXES: tuple[Prefix, ...] = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")

Bound = TypeVar("Bound", datetime, Decimal)

# "the recommended value for the approximation is 10% of the stated value (or for a date, 10%
# of the gap between now and the date)" (http://hl7.org/fhir/R4/search.html#prefix).
APPROXIMATION = Decimal("0.1")


def approximate(low: Bound, high: Bound, now: datetime | None = None) -> tuple[Bound, Bound]:
    """The search range [low, high) widened for `ap`.

    Numbers: by 10% of the value (the middle of the range) either side. Dates: by 10% of the
    gap between `now` and the range (no widening when `now` falls inside it), kept within
    [MIN_INSTANT, MAX_INSTANT].
    """
    if isinstance(low, Decimal) and isinstance(high, Decimal):
        margin = abs(low + high) / 2 * APPROXIMATION
        return low - margin, high + margin
    assert isinstance(low, datetime)
    assert isinstance(high, datetime)
    if now is None:
        raise ValueError("approximating a date needs the current time")
    gap = max(low - now, now - high, timedelta(0))
    widen = gap / 10
    wide_low = MIN_INSTANT if low - MIN_INSTANT <= widen else low - widen
    wide_high = MAX_INSTANT if MAX_INSTANT - high <= widen else high + widen
    return wide_low, wide_high


def matches_range(
    prefix: Prefix,
    search_low: Bound,
    search_high: Bound,
    target_low: Bound,
    target_high: Bound,
    now: datetime | None = None,
) -> bool:
    """Whether a stored value [target_low, target_high) matches `prefix` [search_low, search_high).

    `now` is needed only for `ap` on dates.
    """
    contains = search_low <= target_low and target_high <= search_high
    match prefix:
        case "eq":
            return contains
        case "ne":
            return not contains
        case "gt":
            return target_high > search_high
        case "lt":
            return target_low < search_low
        case "ge":
            return target_high > search_high or contains
        case "le":
            return target_low < search_low or contains
        case "sa":
            return target_low >= search_high
        case "eb":
            return target_high <= search_low
        case "ap":
            wide_low, wide_high = approximate(search_low, search_high, now)
            return target_low < wide_high and wide_low < target_high
