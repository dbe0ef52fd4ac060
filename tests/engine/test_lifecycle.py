"""Process-level lifecycle: close_all(), engines disposed at interpreter exit, two processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

from sqlalchemy.engine import URL

import dbnb

CHILD = textwrap.dedent(
    """
    import asyncio, os, sys
    import dbnb
    url = os.environ["CHILD_URL"]
    a = dbnb.connect(url, database="t_life_a", reset=True, application_name="dbnb-child")
    b = dbnb.connect(url, database="t_life_b", reset=True, application_name="dbnb-child")
    a.execute("SELECT 1"); b.execute("SELECT 1")
    dbnb.run(a.asyncio.execute("SELECT 1"))
    if sys.argv[1] == "close_all":
        dbnb.close_all()
        print(a.closed, b.closed)
    else:
        print("leaving without closing")
    """
)


def _child(url: URL, mode: str) -> str:
    env = dict(os.environ, CHILD_URL=url.render_as_string(hide_password=False))
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", CHILD, mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr  # no unclosed-connection warnings
    return done.stdout.strip()


def _child_connections(db: dbnb.Database) -> int:
    rows = db.execute(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'dbnb-child'"
    )
    return int(rows[0].n)


def _wait_for_no_child_connections(db: dbnb.Database) -> int:
    deadline = time.monotonic() + 5
    while (n := _child_connections(db)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return n


def test_close_all_closes_every_database(server_url: URL, db: dbnb.Database) -> None:
    assert _child(server_url, "close_all") == "True True"
    assert _wait_for_no_child_connections(db) == 0


def test_engines_are_disposed_at_interpreter_exit(server_url: URL, db: dbnb.Database) -> None:
    assert _child(server_url, "leave") == "leaving without closing"
    assert _wait_for_no_child_connections(db) == 0
