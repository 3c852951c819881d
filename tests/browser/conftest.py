"""Browser tests: Playwright driving Debian's Chromium against a real `opengp serve`.

They skip, saying why, only when Chromium or the front-end assets are missing here.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from tests.browser.practice import Practice, chromium, missing_tools, served


@pytest.fixture(scope="session")
def practice(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Practice]:
    reason = missing_tools()
    if reason:
        pytest.skip(f"browser tests SKIPPED: {reason}")
    with served(tmp_path_factory.mktemp("browser")) as running:
        yield running


@pytest.fixture(scope="session")
def browser(practice: Practice) -> Iterator[Browser]:
    with chromium() as launched:
        yield launched
