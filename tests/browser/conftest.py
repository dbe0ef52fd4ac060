"""A real browser for the tests of what a person sees: Chromium driven by Playwright.

Playwright's own browser download is not needed: Debian's ``chromium`` (``/usr/bin/chromium``)
is launched through ``executable_path``. Every request that would leave the machine is aborted
and recorded, so a page that needs the internet fails its test. A failing test saves a
screenshot under ``build/browser/``; the screenshots a person looks at (a report table, a
progress bar mid-load, the docs home page) are saved there on every run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "browser"
_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
_LOCAL = {"127.0.0.1", "localhost", "[::1]", "::1"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[_FAILED] = report.failed


_FAILED = pytest.StashKey[bool]()


@pytest.fixture(scope="module")
def chromium(need_program: Any) -> Iterator[Any]:
    """Chromium, headless, from the system (Debian's package), for one test module.

    Playwright's sync API keeps an event loop marked as running while it is started, which
    would stop every async test after it; a module scope ends it with the browser tests.
    """
    executable = need_program("chromium", "chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=_ARGS)
        yield browser
        browser.close()


class Watched:
    """A page, and what it tried that a person would not want: outside requests, JS errors."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.outside: list[str] = []
        self.errors: list[str] = []
        page.route("**/*", self._route)
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _route(self, route: Any) -> None:
        url = urlparse(route.request.url)
        if url.scheme in {"file", "data", "blob"} or url.hostname in _LOCAL:
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def shot(self, name: str, selector: str | None = None) -> Path:
        """Save a screenshot (of one element when ``selector`` is given) under build/browser."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        target = self.page.locator(selector).first if selector else self.page
        target.screenshot(path=str(path))
        return path


@pytest.fixture
def watched(chromium: Any, request: pytest.FixtureRequest) -> Iterator[Watched]:
    """A fresh 1400 px wide page whose outside requests fail; screenshot kept on failure."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    watched = Watched(page)
    yield watched
    if request.node.stash.get(_FAILED, False):
        watched.shot(f"FAILED-{request.node.name}")
    context.close()
