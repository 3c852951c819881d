"""A horizontal bar chart drawn on the server as SVG: no JavaScript, no images to fetch.

Accessible as an image with a name (`role="img"`, `aria-labelledby` its `<title>`), whose
full description is the table of the same figures beside it (`aria-describedby`): the
table is the text alternative, so the chart's own words (names cut short to fit) are
hidden from assistive technology by the `img` role. Presentation attributes only (the
pages' Content-Security-Policy forbids inline styles); the NHS.UK blue bars and text colour
meet WCAG 1.4.11 against white. It scales to its column (a `viewBox`, width 100%).
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH = 400  # viewBox units; the chart is drawn at its column's width
ROW = 40  # a label above its bar
BAR = 14
FONT = 14
LABEL_CHARACTERS = 48  # about what fits the width at FONT
NUMBER_ROOM = 48  # for the count at the end of the longest bar
BLUE = "#005eb8"  # NHS blue
TEXT = "#212b32"  # NHS.UK text colour


def bar_chart(chart_id: str, title: str, rows: Sequence[tuple[str, int]], table_id: str) -> Markup:
    """An SVG of `rows` (label, count) as bars, longest bar for the largest count."""
    largest = max((count for _, count in rows), default=0)
    height = ROW * max(len(rows), 1) + 4
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="opengp-chart" role="img" '
        f'aria-labelledby="{escape(chart_id)}-title" aria-describedby="{escape(table_id)}" '
        f'viewBox="0 0 {WIDTH} {height}" width="100%" focusable="false">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
    ]
    if not rows:
        parts.append(_text(0, FONT + 4, "No appointments"))
    for i, (label, count) in enumerate(rows):
        top = i * ROW
        length = round((WIDTH - NUMBER_ROOM) * count / largest) if largest else 0
        parts.append(_text(0, top + FONT, _short(label)))
        parts.append(
            f'<rect x="0" y="{top + FONT + 6}" width="{length}" height="{BAR}" fill="{BLUE}"/>'
        )
        parts.append(_text(length + 6, top + FONT + 6 + BAR - 2, str(count)))
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every value above went through escape()


def _text(x: int, y: int, words: str) -> str:
    return (
        f'<text x="{x}" y="{y}" font-size="{FONT}" font-family="Arial, sans-serif" '
        f'fill="{TEXT}">{escape(words)}</text>'
    )


def _short(label: str) -> str:
    if len(label) <= LABEL_CHARACTERS:
        return label
    return label[: LABEL_CHARACTERS - 1].rstrip() + "…"
