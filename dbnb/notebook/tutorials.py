"""The main job: execute the tutorial notebooks and publish them as HTML docs.

``dbnb tutorials`` (``make demo``) runs every notebook in ``notebooks/`` top to bottom with
nbclient on a fresh kernel, against the configured database or the embedded PostgreSQL, and
writes each one rendered as HTML into ``build/docs/`` next to an ``index.html``. With
``--write-back`` the executed outputs are stored back into the ``.ipynb`` files: that is how the
outputs that ``pytest --nbval`` compares are refreshed.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dbnb.display.tables import html_table, text_table
from dbnb.errors import ConfigError
from dbnb.notebook.outputs import (
    keep_equivalent_outputs,
    path_replacements,
    sanitize_rules,
    scrub_paths,
)
from dbnb.server.embedded import EmbeddedServer, embedded_server, home_dir
from dbnb.settings import Settings

__all__ = ["NotebookRun", "TutorialsReport", "main", "run_tutorials"]

_KERNEL = "python3"


@dataclass(frozen=True)
class NotebookRun:
    """How one notebook ran: its title, code cells executed, wall time and any error."""

    name: str
    title: str
    cells: int
    seconds: float
    html: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when every cell ran without an error."""
        return self.error is None

    def summary(self) -> str:
        """One line for a terminal: name, status, cells run and seconds."""
        status = "ok" if self.ok else "FAILED"
        line = f"{self.name:<32} {status:<6} {self.cells:>3} cells {self.seconds:6.1f} s"
        return line if self.ok else f"{line}  {self.error}"


@dataclass(frozen=True)
class TutorialsReport:
    """Every notebook's run, the server they used and where the HTML docs are."""

    runs: tuple[NotebookRun, ...]
    docs: Path
    server: str

    @property
    def ok(self) -> bool:
        """True when every notebook ran cleanly (and there was at least one)."""
        return bool(self.runs) and all(run.ok for run in self.runs)

    def _rows(self) -> list[tuple[Any, ...]]:
        return [
            (r.name, "ok" if r.ok else "FAILED", r.cells, round(r.seconds, 1)) for r in self.runs
        ]

    def __repr__(self) -> str:
        return text_table(["notebook", "status", "cells", "seconds"], self._rows())

    def _repr_html_(self) -> str:
        return html_table(
            ["notebook", "status", "cells", "seconds"], self._rows(), caption="tutorials"
        )


def _title(nb: Any, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return str(line.lstrip("#").strip())
    return fallback


def _warm_caches() -> None:
    # On a fresh machine matplotlib builds its font cache on first import and, when that is
    # slow, says so on stderr; building it here keeps that line out of the notebooks' outputs.
    with contextlib.suppress(ImportError):
        import matplotlib.font_manager  # noqa: F401


def _kernel_env() -> dict[str, str]:
    # psycopg returns timestamptz in the session's time zone, which libpq takes from PGTZ:
    # pinning it makes the outputs the same on every machine (asyncpg always returns UTC).
    return {**os.environ, "PGTZ": "UTC"}


def _execute(path: Path, timeout: int) -> tuple[Any, int, float, str | None]:
    import nbformat
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    start = time.perf_counter()
    error: str | None = None
    with tempfile.TemporaryDirectory(prefix="dbnb-kernel-") as sockets:
        # Unix sockets in a private directory rather than TCP ports on localhost: other users
        # of the machine cannot reach the kernel.
        km = AsyncKernelManager(kernel_name=_KERNEL, transport="ipc", ip=str(Path(sockets, "k")))
        client = NotebookClient(
            nb,
            km=km,
            timeout=timeout,
            record_timing=False,
            resources={"metadata": {"path": str(path.parent)}},
        )
        try:
            # The client did not create the kernel manager, so it must be told to shut it down.
            client.execute(cleanup_kc=True, env=_kernel_env())
        except Exception as exc:
            # A failing cell raises CellExecutionError carrying the kernel's error name and
            # value; timeouts and dead kernels raise other errors with a plain message.
            name = getattr(exc, "ename", None) or type(exc).__name__
            value = getattr(exc, "evalue", None) or str(exc)
            lines = [line for line in str(value).strip().splitlines() if line.strip()]
            error = f"{name}: {lines[0] if lines else ''}"
    seconds = time.perf_counter() - start
    cells = sum(
        1 for c in nb.cells if c.cell_type == "code" and c.get("execution_count") is not None
    )
    return nb, cells, seconds, error


def _render_html(nb: Any) -> str:
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")  # type: ignore[no-untyped-call]
    body, _ = exporter.from_notebook_node(nb)
    return str(body)


def _write_index(out: Path, report: TutorialsReport) -> None:
    rows = "".join(
        f"<tr><td><a href='{html.escape(r.html)}'>{html.escape(r.title)}</a></td>"
        f"<td>{html.escape(r.name)}</td><td>{'ok' if r.ok else 'FAILED'}</td>"
        f"<td>{r.cells}</td><td>{r.seconds:.1f}</td></tr>"
        for r in report.runs
    )
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>dbnb tutorials</title>"
        "<style>body{font-family:sans-serif;max-width:52em;margin:2em auto}"
        "td,th{padding:.3em .8em;text-align:left}</style></head><body>"
        "<h1>dbnb tutorials</h1><p>Executed notebooks, each on a fresh database of "
        f"the {html.escape(report.server)}.</p><table><thead><tr><th>tutorial</th>"
        "<th>notebook</th><th>status</th><th>cells</th><th>seconds</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></body></html>\n"
    )
    (out / "index.html").write_text(page, encoding="utf-8")


def _server() -> tuple[str, Path | None, EmbeddedServer | None]:
    """Start (or attach to) the server the kernels will use, so they share one postmaster.

    Returns its description, the embedded server's home (None for a configured URL), and the
    embedded server when this call started it, so the run can stop it at the end.
    """
    settings = Settings.resolve()
    if settings.url is not None:
        from dbnb.settings import safe_url

        return safe_url(settings.url), None, None
    already_up = EmbeddedServer(home_dir()).is_running()
    server = embedded_server(announce=False)
    return server.describe(), server.home, None if already_up else server


def run_tutorials(
    source: Path | str = "notebooks",
    out: Path | str = "build/docs",
    *,
    names: Sequence[str] = (),
    write_back: bool = False,
    timeout: int = 300,
) -> TutorialsReport:
    """Execute the notebooks in ``source`` and write them as HTML into ``out``.

    Each notebook runs on a fresh ``python3`` kernel whose working directory is ``source``;
    the embedded server (when no URL is configured) is started here first so every kernel
    attaches to the same one. A failing notebook does not stop the others.

    Args:
        source: directory holding the ``.ipynb`` files.
        out: directory for the HTML pages and ``index.html`` (created if missing).
        names: run only these notebooks (file names with or without ``.ipynb``).
        write_back: store the executed outputs back into the notebooks that ran cleanly,
            with this machine's paths replaced by ``~`` / ``$DBNB_HOME``.
        timeout: seconds one cell may run before the notebook fails.

    Example::

        report = run_tutorials(write_back=True)
        assert report.ok, report
    """
    import nbformat

    source, out = Path(source), Path(out)
    wanted = {n.removesuffix(".ipynb") for n in names}
    paths = [p for p in sorted(source.glob("*.ipynb")) if not wanted or p.stem in wanted]
    if not paths:
        raise ConfigError(
            f"no notebooks to run in {source}"
            + (f" named {sorted(wanted)}" if wanted else "")
            + "; pass --dir with the notebooks' directory"
        )
    out.mkdir(parents=True, exist_ok=True)
    server, server_home, started = _server()
    _warm_caches()
    pairs = path_replacements(server_home)
    runs = []
    for path in paths:
        nb, cells, seconds, error = _execute(path, timeout)
        page = f"{path.stem}.html"
        (out / page).write_text(_render_html(nb), encoding="utf-8")
        if write_back and error is None:
            scrub_paths(nb, pairs)
            stored = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
            keep_equivalent_outputs(stored, nb, sanitize_rules(source))
            nbformat.write(nb, path)  # type: ignore[no-untyped-call]
        runs.append(NotebookRun(path.name, _title(nb, path.stem), cells, seconds, page, error))
    if started is not None:
        # Kernels that nbclient shuts down hard never tell the server they are gone, so it
        # would outlive the run; stop it here (a server that was already up is left alone).
        started.stop(force=True)
    report = TutorialsReport(tuple(runs), out, server)
    _write_index(out, report)
    return report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dbnb tutorials",
        description="Execute the tutorial notebooks and write them as HTML docs.",
    )
    parser.add_argument("names", nargs="*", help="only these notebooks (default: all)")
    parser.add_argument("--dir", default="notebooks", type=Path, help="notebook directory")
    parser.add_argument("--out", default="build/docs", type=Path, help="HTML output directory")
    parser.add_argument(
        "--write-back", action="store_true", help="store the executed outputs in the notebooks"
    )
    parser.add_argument("--timeout", default=300, type=int, help="seconds allowed per cell")
    return parser


def main(argv: Sequence[str], say: Callable[[str], None]) -> int:
    """Run ``dbnb tutorials [names] [--dir] [--out] [--write-back]``; 1 if a notebook failed.

    Says where the docs are and one line per notebook (status, cells run, seconds).
    """
    args = _parser().parse_args(list(argv))
    report = run_tutorials(
        args.dir, args.out, names=args.names, write_back=args.write_back, timeout=args.timeout
    )
    say(f"server: {report.server}")
    for run in report.runs:
        say(run.summary())
    say(f"docs: {(report.docs / 'index.html').resolve()}")
    if args.write_back:
        kept = sum(r.ok for r in report.runs)
        say(f"outputs stored back into {kept} of {len(report.runs)} notebooks")
    if not report.ok:
        failed = ", ".join(r.name for r in report.runs if not r.ok)
        say(f"FAILED: {failed}")
        return 1
    return 0
