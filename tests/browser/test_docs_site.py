"""The docs site `make demo` builds, opened from build/ in Chromium, with no network.

The site is built here from the stored notebooks (their outputs, not re-executed), the way
``make demo`` builds it from freshly executed ones, and served from build/ on 127.0.0.1 as the
README says to view it: every navigation link resolves, nothing is requested from outside the
machine, no script fails, and every tutorial page shows outputs.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

from dbnb.notebook import site

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _title(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    match = re.search(r'"# ([^"\\]+)', text)
    return match.group(1) if match else path.stem


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


class Site:
    """The built site on disk and the loopback URL it is served at."""

    def __init__(self, root: Path, base: str) -> None:
        self.root = root
        self.base = base

    def url(self, page: str) -> str:
        return f"{self.base}/{page}"

    def file_of(self, url: str) -> Path:
        return self.root / unquote(urlparse(url).path).lstrip("/")

    def pages(self) -> list[str]:
        found = sorted((self.root / "tutorials").glob("*.html"))
        tutorials = [f"tutorials/{p.name}" for p in found]
        return ["index.html", "api.html", "benchmarks.html", *tutorials]


@pytest.fixture(scope="module")
def docs() -> Iterator[Site]:
    out = ROOT / "build" / "browser-docs"
    src = site.site_source(
        out.with_name("browser-docs-src"), NOTEBOOKS, [_title(p) for p in NOTEBOOKS], project=ROOT
    )
    site.build_site(src, out)
    handler = functools.partial(_Quiet, directory=str(out))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Site(out, f"http://127.0.0.1:{server.server_address[1]}")
    server.shutdown()
    server.server_close()
    thread.join()


def test_every_page_loads_offline_without_errors_and_its_links_resolve(
    docs: Site, watched: Any
) -> None:
    page = watched.page
    pages = docs.pages()
    assert len(pages) == 3 + len(NOTEBOOKS)
    for name in pages:
        page.goto(docs.url(name))
        page.wait_for_load_state("load")
        hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
        for href in hrefs:
            if href.startswith(docs.base):
                assert docs.file_of(href).exists(), f"{name}: broken link {href}"
        # The stylesheets and scripts all came from the site itself.
        sheets = page.eval_on_selector_all("link[rel=stylesheet], script[src]",
                                           "els => els.map(e => e.href || e.src)")
        assert sheets and all(s.startswith(docs.base) for s in sheets), sheets
    assert watched.outside == [], "requests that left the machine"
    assert watched.errors == [], "console errors"


def test_home_page_sidebar_and_previous_next(docs: Site, watched: Any) -> None:
    page = watched.page
    page.goto(docs.url("index.html"))
    assert page.locator("h1").first.inner_text().strip().startswith("dbnb")
    for heading in ("Install", "A 30-second tour", "Tutorials"):
        assert page.get_by_role("heading", name=heading).count() >= 1
    sidebar = page.locator(".sidebar-tree a.reference")
    names = sidebar.all_inner_texts()
    assert len(names) >= len(NOTEBOOKS) + 2 and "API reference" in names and "Benchmarks" in names
    watched.shot("docs-home")
    sidebar.first.click()  # the first tutorial, then forward with "next"
    page.wait_for_load_state("load")
    assert page.url.endswith("tutorials/01_quickstart.html")
    page.locator("a.next-page").click()
    assert page.url.endswith("tutorials/02_models_and_migrations.html")
    page.locator("a.prev-page").click()
    assert page.url.endswith("tutorials/01_quickstart.html")
    assert watched.outside == [] and watched.errors == []


def test_each_tutorial_shows_its_outputs_and_search_works_offline(
    docs: Site, watched: Any
) -> None:
    page = watched.page
    for name in docs.pages()[3:]:
        page.goto(docs.url(name))
        outputs = page.locator(".cell_output")
        assert outputs.count() >= 3, name
        assert outputs.first.is_visible()
        # No tutorial shows a stderr band: the server notice is a normal output now.
        assert page.locator(".output.stderr").count() == 0, name
    page.goto(docs.url("tutorials/02_models_and_migrations.html"))
    report = page.locator(".dbnb-report:has-text('table products')").first
    assert report.is_visible()
    align = report.locator("td").nth(1).evaluate("e => getComputedStyle(e).textAlign")
    assert align == "left"
    # pandas' tables come with border="1": the site's stylesheet leaves rules between rows only.
    page.goto(docs.url("tutorials/05_analysis_with_frames.html"))
    cell = page.locator("table.dataframe td").first
    assert cell.is_visible()
    sides = cell.evaluate(
        "e => [getComputedStyle(e).borderLeftWidth, getComputedStyle(e).borderBottomWidth]")
    assert sides == ["0px", "1px"]
    page.goto(docs.url("search.html?q=sandbox"))
    results = page.locator("#search-results li")
    results.first.wait_for()
    assert results.count() >= 1
    assert watched.outside == [] and watched.errors == []
