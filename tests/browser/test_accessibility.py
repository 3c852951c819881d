"""An axe-core scan (WCAG 2.2 A and AA rules) of every screen, in each state a user meets it,
at a phone's width (320 CSS pixels: WCAG 1.4.10 reflow), at 200% zoom of a laptop screen
(640), and on a desktop (1280): no serious or critical finding, and no sideways scrolling."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser

from tests.browser.practice import Practice, axe_findings, tour

SEVERE = {"serious", "critical"}


@pytest.mark.parametrize("width", [320, 640, 1280])
def test_every_page_passes_axe_and_reflows(
    practice: Practice, browser: Browser, width: int
) -> None:
    # axe is injected as a script tag: the test context lets it past the page's CSP.
    context = browser.new_context(viewport={"width": width, "height": 800}, bypass_csp=True)
    page = context.new_page()
    severe, seen = [], []
    for name in tour(page, practice, f"axe{width}"):
        seen.append(name)
        for finding in axe_findings(page):
            print(f"{width}px {name}: {finding['impact']} {finding['id']}: {finding['help']}")
            if finding["impact"] in SEVERE:
                severe.append((name, finding["id"], [n["target"] for n in finding["nodes"]]))
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} scrolls sideways at {width}px"
    context.close()
    assert len(seen) == 11
    assert severe == []
