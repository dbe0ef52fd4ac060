"""The main job: execute the tutorial notebooks and publish them as a docs site.

``dbnb tutorials`` (``make demo``) runs every notebook in ``notebooks/`` top to bottom with
nbclient on a fresh kernel, on the embedded PostgreSQL (or the server named by ``--url``, never
silently the one ``DBNB_URL`` / ``DATABASE_URL`` name), and builds the docs site into
``build/docs/`` from the executed notebooks (see :mod:`dbnb.notebook.site`). With
``--write-back`` the executed outputs are stored back into the ``.ipynb`` files: that is how the
outputs that ``pytest --nbval`` compares are refreshed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dbnb.display.tables import Table
from dbnb.display.values import Duration, Status
from dbnb.errors import ConfigError
from dbnb.notebook import site
from dbnb.notebook.outputs import (
    keep_equivalent_outputs,
    path_replacements,
    sanitize_rules,
    scrub_paths,
)
from dbnb.server.embedded import EmbeddedServer, embedded_server, home_dir
from dbnb.settings import parse_url, safe_url

__all__ = ["NotebookRun", "TutorialsReport", "main", "run_tutorials"]

_KERNEL = "python3"
_URL_VARIABLES = ("DBNB_URL", "DATABASE_URL")


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
    site: Path | None = None

    @property
    def ok(self) -> bool:
        """True when every notebook ran cleanly (and there was at least one)."""
        return bool(self.runs) and all(run.ok for run in self.runs)

    def _table(self) -> Table:
        rows = [
            (r.name, Status(r.ok, "ok" if r.ok else "FAILED"), r.cells, Duration(r.seconds))
            for r in self.runs
        ]
        return Table(
            ["notebook", "status", "cells", "time"], rows, caption="tutorials", ok=self.ok,
            empty="no tutorials ran",
        )

    def __repr__(self) -> str:
        return self._table().text()

    def _repr_html_(self) -> str:
        return self._table().html()


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


def _kernel_env(url: str | None) -> dict[str, str]:
    # psycopg returns timestamptz in the session's time zone, which libpq takes from PGTZ:
    # pinning it makes the outputs the same on every machine (asyncpg always returns UTC).
    env = {k: v for k, v in os.environ.items() if k not in _URL_VARIABLES}
    if url is not None:
        env["DBNB_URL"] = url
    # DBNB_CONNECTIONS="" hides the user's connections file: its `default` entry must not
    # take the tutorials to another server.
    return {**env, "PGTZ": "UTC", "DBNB_CONNECTIONS": ""}


def _execute(path: Path, timeout: int, url: str | None) -> tuple[Any, int, float, str | None]:
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
            client.execute(cleanup_kc=True, env=_kernel_env(url))
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


def _server(url: str | None) -> tuple[str, Path | None, EmbeddedServer | None]:
    """Start (or attach to) the server the kernels will use, so they share one postmaster.

    Returns its description, the embedded server's home (None for a URL), and the embedded
    server when this call started it, so the run can stop it at the end.
    """
    if url is not None:
        return safe_url(parse_url(url, source="--url")), None, None
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
    url: str | None = None,
    build_site: bool = True,
) -> TutorialsReport:
    """Execute the notebooks in ``source`` and build the docs site from them into ``out``.

    Each notebook runs on a fresh ``python3`` kernel whose working directory is ``source``,
    on the embedded server (started here first so every kernel attaches to the same one) or
    on ``url``; ``DBNB_URL`` / ``DATABASE_URL`` are not passed to the kernels. A failing
    notebook does not stop the others.

    Args:
        source: directory holding the ``.ipynb`` files.
        out: directory for the docs site (replaced); its Sphinx sources go to ``<out>-src``.
        names: run only these notebooks (file names with or without ``.ipynb``).
        write_back: store the executed outputs back into the notebooks that ran cleanly,
            with this machine's paths replaced by ``~`` / ``$DBNB_HOME``.
        timeout: seconds one cell may run before the notebook fails.
        url: run on this server instead of the embedded one.
        build_site: build the site (``False``: only execute, e.g. to refresh outputs).

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
    server, server_home, started = _server(url)
    _warm_caches()
    pairs = path_replacements(server_home)
    executed = out.with_name(out.name + "-executed")
    executed.mkdir(parents=True, exist_ok=True)
    runs = []
    for path in paths:
        nb, cells, seconds, error = _execute(path, timeout, url)
        scrub_paths(nb, pairs)
        if write_back and error is None:
            stored = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
            keep_equivalent_outputs(stored, nb, sanitize_rules(source))
            nbformat.write(nb, path)  # type: ignore[no-untyped-call]
        nbformat.write(nb, executed / path.name)  # type: ignore[no-untyped-call]
        page = f"tutorials/{path.stem}.html"
        runs.append(NotebookRun(path.name, _title(nb, path.stem), cells, seconds, page, error))
    if started is not None:
        # Kernels that nbclient shuts down hard never tell the server they are gone, so it
        # would outlive the run; stop it here (a server that was already up is left alone).
        started.stop(force=True)
    index = None
    if build_site:
        src = site.site_source(
            out.with_name(out.name + "-src"),
            [executed / p.name for p in paths],
            [r.title for r in runs],
            project=_project_root(source),
        )
        index = site.build_site(src, out)
    return TutorialsReport(tuple(runs), out, server, index)


def _project_root(source: Path) -> Path | None:
    """The repository the notebooks belong to (README.md beside or above them), if any."""
    for directory in (source.resolve(), *source.resolve().parents):
        if (directory / "README.md").exists() and (directory / "pyproject.toml").exists():
            return directory
    return None


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
    parser.add_argument(
        "--url", help="run on this server (URL or env:NAME) instead of the embedded PostgreSQL"
    )
    parser.add_argument(
        "--no-site", action="store_true", help="only execute the notebooks; build no site"
    )
    return parser


def _given_url(value: str | None) -> str | None:
    if value is None or not value.startswith("env:"):
        return value
    name = value.removeprefix("env:")
    resolved = os.environ.get(name, "").strip()
    if not resolved:
        raise ConfigError(f"--url env:{name}: the environment variable {name} is not set")
    return resolved


def main(argv: Sequence[str], say: Callable[[str], None]) -> int:
    """Run ``dbnb tutorials [names] [--dir] [--out] [--write-back]``; 1 if a notebook failed.

    Says where the docs are and one line per notebook (status, cells run, seconds).
    """
    args = _parser().parse_args(list(argv))
    url = _given_url(args.url)
    ignored = [n for n in _URL_VARIABLES if os.environ.get(n, "").strip()]
    if url is None and ignored:
        say(f"note: {' and '.join(ignored)} not used; make demo URL=... (dbnb tutorials --url) "
            "runs the tutorials on another server")
    report = run_tutorials(
        args.dir, args.out, names=args.names, write_back=args.write_back, timeout=args.timeout,
        url=url, build_site=not args.no_site,
    )
    say(f"server: {report.server}")
    for run in report.runs:
        say(run.summary())
    if report.site is not None:
        say(f"docs: {report.site.resolve()}")
    if args.write_back:
        kept = sum(r.ok for r in report.runs)
        say(f"outputs stored back into {kept} of {len(report.runs)} notebooks")
    if not report.ok:
        failed = ", ".join(r.name for r in report.runs if not r.ok)
        say(f"FAILED: {failed}")
        return 1
    return 0
