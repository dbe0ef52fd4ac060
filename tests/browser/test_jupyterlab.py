"""dbnb in JupyterLab, through the UI, as a person uses it: what the DOM shows after each cell.

A fixture starts JupyterLab on 127.0.0.1 with a token and a temporary root directory (stopped
by pid); the test creates a new notebook from the launcher, types and runs cells (connect, a
model and to_frame, %%db with a parameter, %db help / pool / tables, a 2,000,000-row
from_frame load, an iter_frames loop, a unique violation) and asserts what is visible: no
stderr-styled output for successful operations, report text left-aligned by computed style,
captions on one line at 1400 px, a progress bar with a total during the load and no empty box
after it, and a dbnb error shown compactly.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import URL

import dbnb

STDERR = '[data-mime-type="application/vnd.jupyter.stderr"]'
# Settings a fresh JupyterLab would otherwise ask about or fetch from the internet.
_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False,
    },
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def lab(
    tmp_path_factory: pytest.TempPathFactory,
    embedded: dbnb.EmbeddedServer | None,
    server_url: URL,
    need_program: Any,
) -> Iterator[str]:
    """JupyterLab on 127.0.0.1 with a token; its kernels reach the test server."""
    need_program("chromium", "chromium")  # no browser, no point starting the server
    root = tmp_path_factory.mktemp("lab")
    settings = root / ".settings"
    for name, values in _SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    token, port = secrets.token_hex(16), _free_port()
    env = {
        **os.environ,
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(root / ".workspaces"),
        "JUPYTER_CONFIG_DIR": str(root / ".config"),
        "JUPYTER_RUNTIME_DIR": str(root / ".runtime"),
        "PGTZ": "UTC",
    }
    if embedded is None:
        env["DBNB_URL"] = server_url.render_as_string(hide_password=False)
    argv = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}", "--LabApp.news_url=", "--ServerApp.port_retries=0",
    ]
    if os.geteuid() == 0:
        argv.append("--allow-root")
    log = (root / "lab.log").open("w")
    process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"JupyterLab did not start: {(root / 'lab.log').read_text()[-2000:]}"
                    ) from None
                time.sleep(0.5)
        yield f"{base}/lab?token={token}"
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


class Notebook:
    """A notebook open in JupyterLab: type a cell, run it, read its outputs."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.runs = 0

    def run(self, source: str, *, wait: bool = True) -> Any:
        """Type ``source`` into the active cell and run it (Shift+Enter); return the cell."""
        page = self.page
        cell = page.locator(".jp-Notebook .jp-Cell").nth(self.runs)
        cell.locator(".cm-content").click()
        page.keyboard.insert_text(source)  # one text input: no auto-closed brackets or indent
        page.keyboard.press("Shift+Enter")
        self.runs += 1
        if wait:
            self.wait(cell)
        return cell

    def wait(self, cell: Any) -> None:
        prompt = cell.locator(".jp-InputArea-prompt").element_handle()
        started = "e => /\\[(\\*|\\d+)\\]/.test(e.textContent)"
        try:
            self.page.wait_for_function(started, arg=prompt, timeout=15_000)
        except Exception:
            # A run asked for while the kernel was still connecting is dropped by the front
            # end (the prompt stays [ ]): ask again, in place, as a person would.
            cell.locator(".cm-content").click()
            self.page.keyboard.press("Control+Enter")
        self.page.wait_for_function(
            "e => /\\[\\d+\\]/.test(e.textContent)", arg=prompt, timeout=180_000
        )


def _no_stderr(cell: Any, what: str) -> None:
    assert cell.locator(STDERR).count() == 0, f"{what}: stderr-styled output"
    assert cell.locator(".jp-OutputArea-output").count() >= 1, f"{what}: no output"


def _left(locator: Any) -> bool:
    return bool(locator.evaluate("e => getComputedStyle(e).textAlign") in {"left", "start"})


def test_a_session_in_jupyterlab_looks_finished(lab: str, watched: Any) -> None:
    page = watched.page
    page.goto(lab)
    page.locator('.jp-LauncherCard[data-category="Notebook"]').first.click()
    page.locator(".jp-Notebook .jp-Cell .cm-content").first.wait_for()
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for()
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=120_000)
    nb = Notebook(page)

    connect = nb.run(
        "import dbnb\n%load_ext dbnb\ndb = %db connect --database t_browser_lab --reset\ndb"
    )
    _no_stderr(connect, "connect")
    assert connect.locator(".dbnb-report").inner_text().startswith("database t_browser_lab")

    frame = nb.run(
        "from sqlalchemy import String\n"
        "from sqlalchemy.orm import Mapped, mapped_column\n"
        "from dbnb import Base, BigIntPrimaryKey, Repository\n\n"
        "class Thing(BigIntPrimaryKey, Base):\n"
        "    __tablename__ = 'things'\n"
        "    name: Mapped[str] = mapped_column(String(50), unique=True)\n\n"
        "Base.metadata.create_all(db.engine)\n"
        "things = Repository(Thing, db)\n"
        "things.create_many([{'name': 'ant'}, {'name': 'bee'}, {'name': 'cat'}])\n"
        "things.to_frame(order_by='id')"
    )
    _no_stderr(frame, "to_frame")
    assert frame.locator("table.dataframe tbody tr").count() == 3

    nb.run("first_id = 1")
    query = nb.run("%%db\nSELECT name FROM things WHERE id > :first_id ORDER BY id")
    _no_stderr(query, "%%db")
    assert query.locator("table.dataframe tbody").inner_text().split() == ["0", "bee", "1", "cat"]

    help_cell = nb.run("%db help")
    _no_stderr(help_cell, "%db help")
    usage = help_cell.locator(".dbnb-report td").nth(1)
    assert usage.inner_text().startswith("%db ") and _left(usage)
    pool = nb.run("%db pool")
    _no_stderr(pool, "%db pool")
    tables = nb.run("%db tables")
    _no_stderr(tables, "%db tables")
    row = tables.locator(".dbnb-report tbody tr").first
    assert _left(row.locator("td").nth(1)) and not _left(row.locator("td").nth(4))  # name, size
    # Captions stay on one line at 1400 px.
    for caption in page.locator(".dbnb-caption").all():
        box = caption.bounding_box()
        size = float(caption.evaluate("e => parseFloat(getComputedStyle(e).fontSize)"))
        assert box is not None and box["height"] < 2 * size, caption.inner_text()
    # The footer's `code` spans are code, not stray backticks.
    footer = help_cell.locator(".dbnb-note").first
    assert footer.locator("code").count() >= 3 and "`" not in footer.inner_text()
    # Tall enough for the whole help table: JupyterLab leaves cells outside the window unpainted.
    page.set_viewport_size({"width": 1400, "height": 2200})
    watched.shot("report-table", ".jp-Cell:has(.dbnb-report:has-text('dbnb commands'))")
    page.set_viewport_size({"width": 1400, "height": 1000})

    load = nb.run(
        "import numpy as np\nimport pandas as pd\n\n"
        "class Big(BigIntPrimaryKey, Base):\n"
        "    __tablename__ = 'big'\n"
        "    n: Mapped[int]\n\n"
        "Base.metadata.create_all(db.engine)\n"
        "big = Repository(Big, db)\n"
        "big.from_frame(pd.DataFrame({'n': np.arange(2_000_000)}))",
        wait=False,
    )
    bar = load.locator("[role=progressbar][aria-valuemax='2000000']")
    bar.wait_for(timeout=120_000)  # shown while the load runs, with its total
    line = load.locator(".dbnb-progress").inner_text()
    assert "of 2,000,000 rows (" in line and "rows/s" in line, line
    watched.shot("progress-mid-load", ".jp-Cell:has(.dbnb-progress)")
    nb.wait(load)
    _no_stderr(load, "from_frame")
    done = load.locator(".dbnb-progress").inner_text()
    assert done.startswith("loading big: 2,000,000 rows") and done.endswith("(done)")
    assert load.locator(".jp-OutputArea-output").last.inner_text().strip() == "2000000"

    loop = nb.run(
        "total = 0\n"
        "for chunk in big.iter_frames(chunksize=250_000, order_by='id'):\n"
        "    total += len(chunk)\n"
        "total"
    )
    _no_stderr(loop, "iter_frames")
    assert loop.locator(".dbnb-progress").inner_text().startswith("reading: 2,000,000 rows")
    assert loop.locator(".jp-OutputArea-output").last.inner_text().strip() == "2000000"
    # No empty box anywhere: every output holds something to show (textContent, not innerText:
    # JupyterLab hides the cells scrolled out of view, whose innerText is then empty).
    for output in page.locator(".jp-OutputArea-output").all():
        shown = (output.text_content() or "").strip() or output.locator("img").count()
        assert shown, f"an empty output: {output.evaluate('e => e.outerHTML')[:300]}"

    violation = nb.run("things.create(name='ant')")
    error = violation.locator(STDERR)
    assert error.count() == 1
    shown = error.inner_text()
    # Compact (issue 11): the user's cell and the message; the library frames one %tb away.
    assert "UniqueViolation" in shown and "%tb shows the whole chain" in shown
    assert "site-packages" not in shown and "psycopg.errors" not in shown
    assert len([line for line in shown.splitlines() if line.strip()]) <= 12, shown
    watched.shot("compact-error", ".jp-Cell:has(.jp-OutputArea-output[data-mime-type="
                 "'application/vnd.jupyter.stderr'])")
    assert watched.outside == [], "requests that left the machine"
