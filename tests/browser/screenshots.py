"""`make screenshots`: a picture of each main screen, at a phone's size, into a folder
(docs/screenshots/), from a real `opengp serve` on a fresh practice database.

    python -m tests.browser.screenshots docs/screenshots
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.browser.practice import chromium, missing_tools, served, tour
from tests.browser.test_admin_journeys import admin_practice, admin_tour
from tests.browser.test_reception_journeys import reception_tour, seeded

PHONE = {"width": 390, "height": 844}


def main(folder: Path) -> int:
    reason = missing_tools()
    if reason:
        print(f"no screenshots: {reason}", file=sys.stderr)
        return 1
    folder.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as work,
        served(Path(work)) as practice,
        chromium() as browser,
    ):
        page = browser.new_context(viewport=PHONE).new_page()
        for name in tour(page, practice, "pictures"):
            page.screenshot(path=folder / f"{name}.png", full_page=True)
            print(f"{folder / name}.png")
        (Path(work) / "appointments").mkdir()
        with seeded(Path(work) / "appointments") as booked:
            page = browser.new_context(viewport=PHONE).new_page()
            for name in reception_tour(page, booked, "pictures"):
                page.screenshot(path=folder / f"{name}.png", full_page=True)
                print(f"{folder / name}.png")
        (Path(work) / "admin").mkdir()
        with admin_practice(Path(work) / "admin") as admin_book:
            page = browser.new_context(viewport=PHONE).new_page()
            for name in admin_tour(page, admin_book, "pictures"):
                page.screenshot(path=folder / f"{name}.png", full_page=True)
                print(f"{folder / name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")))
