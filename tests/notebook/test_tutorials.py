"""The tutorial notebooks are stored executed and clean, and the runner behind them works.

nbval (``pytest --nbval notebooks/``, run by ``make test``) re-executes every notebook and
compares outputs; these tests check what nbval does not: how the notebooks are stored, that
the sanitize file is sound, and that ``dbnb tutorials`` renders, writes back and fails loudly.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from sqlalchemy.engine import URL

import dbnb
from dbnb.cli import main
from dbnb.notebook.outputs import (
    keep_equivalent_outputs,
    path_replacements,
    sanitize_rules,
    scrub_paths,
)
from dbnb.notebook.tutorials import NotebookRun, TutorialsReport, run_tutorials

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SANITIZE = ROOT / "notebooks" / "sanitize.cfg"

# Roots of absolute paths on the machines that run notebooks (Linux, macOS, Windows).
_ABSOLUTE_PATH = re.compile(
    r"(?<![\w.~$/])/(?:tmp|root|home|Users|var|private|work|opt|usr|etc|srv|mnt|run)/"
    r"|\b[A-Z]:\\\\?[\w.-]"
)
_DSN_WITH_PASSWORD = re.compile(r"\b\w[\w+.-]*://[^\s/@:]+:[^\s/@]+@")
_PASSWORD = re.compile(r"password\s*[=:]\s*(?!\*\*\*)\S", re.IGNORECASE)
_TEXT_MIMES = ("text/plain", "text/html", "text/markdown", "application/json")


def _read(path: Path) -> Any:
    return nbformat.read(path, as_version=4)


def _code_cells(nb: Any) -> list[Any]:
    return [c for c in nb.cells if c.cell_type == "code"]


def _output_texts(nb: Any) -> Iterator[tuple[int, str]]:
    """Every piece of text a stored output holds, with its code cell's execution count."""
    for cell in _code_cells(nb):
        for out in cell.outputs:
            for key in ("text", "evalue"):
                if key in out:
                    yield cell.execution_count, str(out[key])
            yield from ((cell.execution_count, line) for line in out.get("traceback", []))
            for mime in _TEXT_MIMES:
                if mime in out.get("data", {}):
                    yield cell.execution_count, str(out["data"][mime])


def _sanitize_rules_as_nbval_reads_them() -> list[tuple[str, str]]:
    from nbval.plugin import get_sanitize_patterns

    rules: list[tuple[str, str]] = get_sanitize_patterns(SANITIZE.read_text())
    return rules


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def test_there_are_notebooks_named_by_number() -> None:
    assert NOTEBOOKS, "notebooks/ holds no tutorial"
    numbers = [p.name[:2] for p in NOTEBOOKS]
    assert all(re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", p.name) for p in NOTEBOOKS), numbers
    assert len(set(numbers)) == len(numbers)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_stored_executed_top_to_bottom(path: Path) -> None:
    nb = _read(path)
    counts = [c.execution_count for c in _code_cells(nb)]
    assert counts, "a tutorial without code"
    assert None not in counts, "unexecuted code cells: refresh with `dbnb tutorials --write-back`"
    # One clean run from a fresh kernel numbers the cells 1, 2, 3...
    assert counts == list(range(1, len(counts) + 1))
    assert nb.metadata.kernelspec.name == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_outputs_hold_no_secret_path_or_error(path: Path) -> None:
    nb = _read(path)
    machine = {str(ROOT), str(Path.home())} - {"/"}
    for count, text in _output_texts(nb):
        where = f"{path.name} cell [{count}]"
        assert not _ABSOLUTE_PATH.search(text), f"{where}: absolute path in {text[:200]!r}"
        assert not any(m in text for m in machine), f"{where}: this machine's path"
        assert not _DSN_WITH_PASSWORD.search(text), f"{where}: DSN with a password"
        assert not _PASSWORD.search(text), f"{where}: a password"
    errors = [
        c.execution_count
        for c in _code_cells(nb)
        if any(o.output_type == "error" for o in c.outputs)
        and "raises-exception" not in c.metadata.get("tags", [])
    ]
    assert not errors, f"cells {errors} stored an error: catch it and print what matters"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_errors_shown_on_purpose_are_compact_dbnb_errors(path: Path) -> None:
    """A cell that shows an error on purpose shows dbnb's compact form, not library internals."""
    for cell in _code_cells(_read(path)):
        for output in (o for o in cell.outputs if o.output_type == "error"):
            shown = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(output.traceback)).splitlines()
            assert len(shown) <= 15 and "%tb shows the whole chain" in shown[-1], shown
            assert not any("site-packages" in line or "sqlalchemy" in line for line in shown)
            assert output.ename in dbnb.__all__


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_shape_intro_fresh_database_summary(path: Path) -> None:
    nb = _read(path)
    first, last = nb.cells[0], nb.cells[-1]
    assert first.cell_type == "markdown"
    assert first.source.startswith("# ")
    assert last.cell_type == "markdown"
    assert "## Summary" in last.source
    code = "\n".join(c.source for c in _code_cells(nb))
    number = path.name[:2]
    fresh = re.search(
        rf"--database tutorial_{number} --reset|database=\"tutorial_{number}\", reset=True", code
    )
    assert fresh, f"{path.name} must connect to its own fresh database tutorial_{number}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_ignored_outputs_are_followed_by_an_assert_and_nothing_is_skipped(path: Path) -> None:
    cells = _code_cells(_read(path))
    for i, cell in enumerate(cells):
        tags = set(cell.metadata.get("tags", []))
        assert "NBVAL_SKIP" not in cell.source
        assert "nbval-skip" not in tags
        assert "NBVAL_RAISES_EXCEPTION" not in cell.source
        if "NBVAL_IGNORE_OUTPUT" in cell.source or "nbval-ignore-output" in tags:
            following = cells[i + 1].source if i + 1 < len(cells) else ""
            assert re.search(r"^\s*assert\b", following, re.M), (
                f"cell [{cell.execution_count}] ignores its output; the next cell must assert "
                "the fact it showed"
            )


def test_python3_kernel_is_this_interpreter() -> None:
    """nbval and the runner start `python3`; it must be this venv's Python, not another one."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    # jupyter_client swaps a bare "python" for sys.executable when it launches the kernel.
    assert spec.argv[0] in {"python", "python3", sys.executable}, spec.argv
    assert spec.argv[1:3] == ["-m", "ipykernel_launcher"]


def test_sanitize_rules_compile_have_reasons_and_are_idempotent() -> None:
    rules = _sanitize_rules_as_nbval_reads_them()
    assert rules
    text = SANITIZE.read_text()
    for regex, _ in rules:
        re.compile(regex)
        block = text[: text.index(f"regex: {regex}")].rstrip().splitlines()
        assert block[-1].startswith("["), regex
        assert block[-2].startswith("# "), f"rule {block[-1]} needs a comment saying why"
    samples = {
        "dbnb: using the embedded PostgreSQL in /tmp/pytest-7/dbnb-home0\n": "DBNB_HOME",
        "<Database 'x' (embedded PostgreSQL in ~/.local/share/dbnb) open>": "DBNB_HOME)",
        "HealthReport(ok=True, driver='psycopg', latency_ms=0.52, server_version='18.4')":
            "latency_ms=LATENCY, server_version='VERSION'",
        "<th style='text-align:left'>latency</th><td style='text-align:left'>12 ms</td>":
            ">LATENCY<",
        "<th style='text-align:left'>size</th><td style='text-align:left'>7.3 MB</td>": ">SIZE<",
        "<div class='dbnb-progress' style='x'><div role='progressbar'><div></div></div>"
        "<span>loading t: 10 rows, 1 s, 10 rows/s (done)</span></div>": "PROGRESS",
        "progress: reading: 200,000 rows, 78 ms, 2.6 M rows/s (done)": "progress: PROGRESS",
        "application_name dbnb:4242": "dbnb:PID",
        "upgrade: 0002 -> 1f3b364f6fc0 (1 revision)": "0002 -> REVISION (",
        "id=00000002-0000-4000-8000-000000000005": "8000-000000000005",
    }
    for sample, expected in samples.items():
        once = sample
        for regex, replace in rules:
            once = re.sub(regex, replace, once)
        twice = once
        for regex, replace in rules:
            twice = re.sub(regex, replace, twice)
        assert expected in once, (sample, once)
        assert twice == once


def test_scrub_replaces_machine_paths_in_every_kind_of_output() -> None:
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("x")]
    )
    nb.cells[0].outputs = [
        nbformat.v4.new_output(
            "stream", name="stderr", text="in /srv/pg/home and /home/ana/x\n"
        ),
        nbformat.v4.new_output(
            "execute_result",
            data={"text/plain": "'/home/ana/y'", "text/html": "<b>/srv/pg/home</b>"},
        ),
    ]
    scrub_paths(nb, [("/srv/pg/home", "$DBNB_HOME"), ("/home/ana", "~")])
    outputs = nb.cells[0].outputs
    assert outputs[0].text == "in $DBNB_HOME and ~/x\n"
    assert outputs[1].data["text/plain"] == "'~/y'"
    assert outputs[1].data["text/html"] == "<b>$DBNB_HOME</b>"


def test_path_replacements_name_the_server_home_only_outside_the_user_home() -> None:
    home = Path.home()
    outside = Path("/srv/dbnb-home")
    assert path_replacements(outside) == [(str(outside), "$DBNB_HOME"), (str(home), "~")]
    # Under ~ the server's home is already shown as ~/...; the user home rule covers it.
    assert path_replacements(home / ".local" / "share" / "dbnb") == [(str(home), "~")]
    assert path_replacements(None) == [(str(home), "~")]


def _executed(*texts: str) -> Any:
    v4 = nbformat.v4
    nb = v4.new_notebook(cells=[v4.new_code_cell(f"cell{i}") for i in range(len(texts))])
    for i, (cell, text) in enumerate(zip(nb.cells, texts, strict=True)):
        cell.id, cell.execution_count = f"c{i}", i + 1
        cell.outputs = [v4.new_output("stream", name="stdout", text=text)]
    return nb


def test_write_back_keeps_outputs_that_differ_only_in_sanitized_parts() -> None:
    rules = sanitize_rules(SANITIZE.parent)
    assert len(rules) == len(_sanitize_rules_as_nbval_reads_them())
    stored = _executed("app dbnb:111 latency_ms=0.52", "total 10")
    fresh = _executed("app dbnb:222 latency_ms=3.10", "total 11")
    keep_equivalent_outputs(stored, fresh, rules)
    # Only pid and latency changed in the first cell: the stored text stays (no churn);
    # the second cell really changed and takes the fresh output.
    assert fresh.cells[0].outputs[0].text == "app dbnb:111 latency_ms=0.52"
    assert fresh.cells[1].outputs[0].text == "total 11"
    # One print per stream message or several: nbval joins a cell's stream pieces, so do we.
    split = _executed("a\nb\n")
    split.cells[0].outputs = [
        nbformat.v4.new_output("stream", name="stdout", text=part) for part in ("a\n", "b\n")
    ]
    stored = _executed("a\nb\n")
    keep_equivalent_outputs(stored, split, rules)
    assert [o.text for o in split.cells[0].outputs] == ["a\nb\n"]


def test_report_summary_and_rendering() -> None:
    good = NotebookRun("01_a.ipynb", "A", 3, 1.25, "01_a.html")
    bad = NotebookRun("02_b.ipynb", "B", 1, 0.5, "02_b.html", "CellExecutionError: boom")
    assert good.ok
    assert not bad.ok
    assert good.summary().split() == ["01_a.ipynb", "ok", "3", "cells", "1.2", "s"]
    assert bad.summary().endswith("CellExecutionError: boom")
    report = TutorialsReport((good, bad), Path("docs"), "embedded PostgreSQL in ~/x")
    assert not report.ok
    assert not TutorialsReport((), Path("docs"), "x").ok
    assert "FAILED" in repr(report)
    assert "#cf222e'>FAILED</span>" in report._repr_html_()  # red where it failed


@pytest.fixture
def runner_url(embedded: dbnb.EmbeddedServer | None, server_url: URL) -> str | None:
    """The --url that makes the runner's kernels reach the test server (None: embedded home)."""
    if embedded is None:
        return server_url.render_as_string(hide_password=False)
    return None


def test_kernels_get_only_the_server_they_are_told(monkeypatch: pytest.MonkeyPatch) -> None:
    """make demo never uses DATABASE_URL / DBNB_URL's server silently; --url says which."""
    from dbnb.notebook.tutorials import _kernel_env

    monkeypatch.setenv("DATABASE_URL", "postgresql://app@prod/shop")
    monkeypatch.setenv("DBNB_URL", "postgresql://app@prod/shop")
    env = _kernel_env(None)
    assert "DATABASE_URL" not in env and "DBNB_URL" not in env and env["PGTZ"] == "UTC"
    assert _kernel_env("postgresql://me@test/db")["DBNB_URL"] == "postgresql://me@test/db"


_GOOD = [
    "# The good one\n\nIt queries the database.",
    'import dbnb\ndb = dbnb.connect(database="t_tutorials_runner", reset=True)',
    'db.execute("SELECT 40 + :n AS answer", n=2)[0].answer',
    "## Summary\n\nIt worked.",
]
_BAD = ["# The bad one", "x = 1", "1 / 0", "x + 1"]


def _notebook(path: Path, sources: list[str]) -> None:
    v4 = nbformat.v4
    cells = [
        v4.new_markdown_cell(s) if s.startswith("#") else v4.new_code_cell(s)
        for s in sources
    ]
    nb = v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(nb, path)


def test_cli_runs_renders_writes_back_and_fails_loudly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], runner_url: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/never_used")
    source, out = tmp_path / "nb", tmp_path / "docs"
    source.mkdir()
    _notebook(source / "01_good.ipynb", _GOOD)
    _notebook(source / "02_bad.ipynb", _BAD)
    bad_before = (source / "02_bad.ipynb").read_text()

    url = ["--url", runner_url] if runner_url else []
    code = main(["tutorials", "--dir", str(source), "--out", str(out), "--write-back", *url])

    assert code == 1
    printed = capsys.readouterr().out.splitlines()
    if not url:  # DATABASE_URL is set, and said to be left alone
        assert printed.pop(0).startswith("note: DATABASE_URL not used; make demo URL=")
    assert printed[1].split()[:4] == ["01_good.ipynb", "ok", "2", "cells"]
    assert printed[2].split()[:4] == ["02_bad.ipynb", "FAILED", "2", "cells"]
    assert "ZeroDivisionError" in printed[2]
    assert printed[-1] == "FAILED: 02_bad.ipynb"
    assert any(line == f"docs: {out.resolve() / 'index.html'}" for line in printed)
    index = (out / "index.html").read_text()
    assert 'href="tutorials/01_good.html"' in index and "The good one" in index
    assert "ZeroDivisionError" in (out / "tutorials" / "02_bad.html").read_text()
    page = (out / "tutorials" / "01_good.html").read_text()
    assert "<pre><span></span>42\n</pre>" in page  # the stored output, rendered
    assert 'rel="next"' in page and 'rel="prev"' in page and (out / "searchindex.js").exists()
    good = _read(source / "01_good.ipynb")
    assert [c.execution_count for c in _code_cells(good)] == [1, 2]
    assert _code_cells(good)[1].outputs[0].data["text/plain"] == "42"
    # A notebook that failed is left exactly as it was.
    assert (source / "02_bad.ipynb").read_text() == bad_before


def test_runner_can_pick_notebooks_and_reports_a_missing_directory(
    tmp_path: Path, runner_url: str | None
) -> None:
    _notebook(tmp_path / "01_good.ipynb", _GOOD)
    _notebook(tmp_path / "02_bad.ipynb", _BAD)
    report = run_tutorials(
        tmp_path, tmp_path / "docs", names=["01_good"], url=runner_url, build_site=False
    )
    assert report.ok and report.site is None
    assert [r.name for r in report.runs] == ["01_good.ipynb"]
    assert not (tmp_path / "docs-executed" / "02_bad.ipynb").exists()
    with pytest.raises(dbnb.ConfigError, match="no notebooks to run"):
        run_tutorials(tmp_path / "nowhere", tmp_path / "docs")


def test_runner_stops_only_a_server_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedded: dbnb.EmbeddedServer | None
) -> None:
    if embedded is None:
        pytest.skip("DBNB_TEST_URL is set: the runner uses that server, not an embedded one")
    _notebook(tmp_path / "01_good.ipynb", _GOOD)
    assert run_tutorials(tmp_path, tmp_path / "docs", build_site=False).ok
    assert embedded.is_running()  # the session's server was up before: left alone
    # Outside pytest's basetemp, which a concurrent pytest run on the machine may prune.
    own_home = Path(tempfile.mkdtemp(prefix="dbnb-runner-home-"))
    monkeypatch.setenv("DBNB_HOME", str(own_home))
    try:
        assert run_tutorials(tmp_path, tmp_path / "docs", build_site=False).ok
        assert not dbnb.EmbeddedServer(own_home).is_running()  # started for the run: stopped
    finally:
        shutil.rmtree(own_home, ignore_errors=True)
