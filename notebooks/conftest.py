"""Run the notebooks under nbval against one embedded server kept up for the whole session.

Kernels inherit this process's environment: DBNB_HOME points them at a server started here, in
``build/nbval-home`` (never the user's data directory), so each notebook attaches to a running
postmaster instead of starting and stopping one. Any URL in the environment is dropped so the
stored outputs (made on the embedded server) are compared with outputs from the same kind of
server.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import dbnb


def pytest_sessionstart(session: pytest.Session) -> None:
    for name in ("DBNB_URL", "DATABASE_URL"):
        os.environ.pop(name, None)
    os.environ["DBNB_CONNECTIONS"] = ""  # no `default` connection from the user's own file
    home = Path(session.config.rootpath) / "build" / "nbval-home"
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DBNB_HOME"] = str(home)
    # Stored outputs were made in UTC (see dbnb.tutorials): psycopg returns timestamptz in
    # the session's zone, which libpq takes from PGTZ.
    os.environ["PGTZ"] = "UTC"
    dbnb.embedded_server(home, announce=False)
    # A fresh machine builds matplotlib's font cache on first import and may say so on stderr,
    # which would show up in the first notebook that plots: build it before any kernel starts.
    import matplotlib.font_manager  # noqa: F401


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # The kernels nbval stops are killed before they can detach from the server, so it would
    # outlive the run; this private server (build/nbval-home) is stopped here instead.
    home = Path(session.config.rootpath) / "build" / "nbval-home"
    dbnb.embedded_server(home, announce=False).stop(force=True)
