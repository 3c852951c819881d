"""An axe-core scan (WCAG 2.2 A and AA rules) of every screen, in each state a user meets it,
at a phone's width (320 CSS pixels: WCAG 1.4.10 reflow), at 200% zoom of a laptop screen
(640), and on a desktop (1280): no serious or critical finding, and no sideways scrolling."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from tests.browser.practice import Practice, axe_findings, tour
from tests.browser.test_admin_journeys import admin_practice, admin_tour
from tests.browser.test_reception_journeys import reception_tour, scan, seeded

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


@pytest.fixture(scope="module")
def appointment_book(
    tmp_path_factory: pytest.TempPathFactory, practice: Practice
) -> Iterator[Practice]:
    with seeded(tmp_path_factory.mktemp("appointment-book")) as running:
        yield running


@pytest.mark.parametrize("width", [320, 640, 1280])
def test_the_appointment_screens_pass_axe_and_reflow(
    appointment_book: Practice, browser: Browser, width: int
) -> None:
    context = browser.new_context(viewport={"width": width, "height": 800}, bypass_csp=True)
    page = context.new_page()
    seen, severe = scan(page, reception_tour(page, appointment_book, f"axe{width}"), width)
    context.close()
    assert len(seen) == 12
    assert severe == []


@pytest.fixture(scope="module")
def admin_book(tmp_path_factory: pytest.TempPathFactory, practice: Practice) -> Iterator[Practice]:
    with admin_practice(tmp_path_factory.mktemp("admin-book")) as running:
        yield running


@pytest.mark.parametrize("width", [320, 640, 1280])
def test_the_practice_admin_screens_pass_axe_and_reflow(
    admin_book: Practice, browser: Browser, width: int
) -> None:
    context = browser.new_context(viewport={"width": width, "height": 800}, bypass_csp=True)
    page = context.new_page()
    seen, severe = scan(page, admin_tour(page, admin_book, f"axe{width}"), width)
    context.close()
    assert len(seen) == 16
    assert severe == []
