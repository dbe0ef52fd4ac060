"""Dead and frozen kernels: child processes using dbnb, killed (SIGKILL) or frozen (SIGSTOP).

A killed kernel's running query ends within seconds (client_connection_check_interval), a
frozen kernel idle in a transaction is ended by idle_in_transaction_timeout, a migration it
blocks fails fast naming it, and ``sessions`` lists and ends it. Every child is resumed and
killed in teardown.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

import dbnb
from dbnb import migrations
from dbnb.cli import main as cli

INI = Path(__file__).resolve().parents[2] / "alembic.ini"

_CHILD = """
import asyncio, os, sys, time
from sqlalchemy import text
import dbnb
url, mode = sys.argv[1], sys.argv[2]
db = dbnb.connect(url)
if mode == "sync-sleep":
    with db.session() as s:
        s.execute(text("UPDATE kernel_rows SET v = v + 1 WHERE id = 1"))
        print("ready", flush=True)
        s.execute(text("SELECT pg_sleep(60)"))
elif mode == "async-sleep":
    async def main():
        async with db.async_session() as s:
            await s.execute(text("UPDATE kernel_rows SET v = v + 1 WHERE id = 1"))
            print("ready", flush=True)
            await s.execute(text("SELECT pg_sleep(60)"))
    asyncio.run(main())
elif mode == "idle-lock":
    with db.session() as s:
        s.execute(text(sys.argv[3]))
        print("ready", flush=True)
        time.sleep(120)
"""


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for child in started:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGCONT)
            child.kill()
        child.communicate(timeout=30)


@pytest.fixture
def rows(db: dbnb.Database) -> dbnb.Database:
    db.execute("CREATE TABLE IF NOT EXISTS kernel_rows (id int PRIMARY KEY, v int)")
    db.execute("INSERT INTO kernel_rows VALUES (1, 0) ON CONFLICT DO NOTHING")
    return db


def _start(
    children: list[subprocess.Popen[str]], db: dbnb.Database, mode: str, *extra: str,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    url = db.url.render_as_string(hide_password=False)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, url, mode, *extra], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
    )
    children.append(child)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready", child.stderr.read() if child.stderr else ""
    return child


def _seconds_until_row_is_free(db: dbnb.Database, limit: float = 30) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        try:
            with db.session() as s:
                s.execute(text("SET LOCAL lock_timeout = '200ms'"))
                s.execute(text("UPDATE kernel_rows SET v = v + 1 WHERE id = 1"))
            return time.monotonic() - start
        except dbnb.QueryError:
            time.sleep(0.05)
    pytest.fail(f"the row stayed locked for {limit} s")


def _wait_for_query(db: dbnb.Database, pattern: str, app: str) -> int:
    for _ in range(200):
        found = db.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = :app "
            "AND query LIKE :pattern AND state = 'active'", app=app, pattern=pattern,
        )
        if found:
            return int(found[0].pid)
        time.sleep(0.05)
    pytest.fail(f"no session of {app} ran {pattern}")


@pytest.mark.parametrize("mode", ["sync-sleep", "async-sleep"])
def test_a_killed_kernels_query_ends_and_frees_its_locks_within_seconds(
    rows: dbnb.Database, children: list[subprocess.Popen[str]], mode: str
) -> None:
    child = _start(children, rows, mode)
    _wait_for_query(rows, "%pg_sleep%", f"dbnb:{child.pid}")
    child.kill()  # SIGKILL: no cleanup of any kind in the child
    seconds = _seconds_until_row_is_free(rows)
    assert seconds < 6, seconds  # without client_connection_check_interval: ~60 s


def test_idle_in_transaction_timeout_ends_a_frozen_kernels_session(
    rows: dbnb.Database, children: list[subprocess.Popen[str]]
) -> None:
    child = _start(children, rows, "idle-lock", "UPDATE kernel_rows SET v = v + 1 WHERE id = 1",
                   env={"DB_IDLE_IN_TRANSACTION_TIMEOUT": "1000"})
    os.kill(child.pid, signal.SIGSTOP)
    assert _seconds_until_row_is_free(rows) < 6


def test_a_frozen_kernel_blocking_a_migration_is_named_then_ended(
    db: dbnb.Database, children: list[subprocess.Popen[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    migrations.upgrade(db, config=INI)
    child = _start(children, db, "idle-lock", "SELECT count(*) FROM products")
    os.kill(child.pid, signal.SIGSTOP)  # frozen: alive, its transaction open, its lock held
    app = f"dbnb:{child.pid}"
    hurried = dbnb.connect(db.url, migration_lock_timeout=1000, application_name="dbnb-hurried")
    try:
        start = time.monotonic()
        with pytest.raises(dbnb.MigrationBlocked) as info:
            migrations.downgrade(hurried, "base", config=INI)
        assert time.monotonic() - start < 10
        message = str(info.value)
        assert app in message and "idle in transaction" in message, message
        assert "SELECT count(*) FROM products" in message and "--terminate" in message
        backend = info.value.blockers[0]["pid"]
        assert str(backend) in message
        assert migrations.current(db, config=INI).revisions == ("0002",)  # nothing applied
        listed = {s.pid: s for s in db.sessions(stale=False)}
        assert listed[backend].application_name == app and listed[backend].owner_alive is True
        assert cli(["--url", db.url.render_as_string(hide_password=False), "sessions"]) == 0
        assert app in capsys.readouterr().out
        with pytest.raises(dbnb.ConfigError, match="not one of dbnb's sessions"):
            db.sessions(terminate=os.getpid() + 10_000_000)
        ended = db.sessions(terminate=backend)
        assert ended.terminated == (backend,)
        assert migrations.downgrade(hurried, "base", config=INI).to_revisions == ()
    finally:
        hurried.close()


def test_info_lists_long_running_queries_of_every_dbnb_process(
    rows: dbnb.Database, children: list[subprocess.Popen[str]]
) -> None:
    child = _start(children, rows, "sync-sleep")
    backend = _wait_for_query(rows, "%pg_sleep%", f"dbnb:{child.pid}")
    time.sleep(5.5)
    info = rows.info()
    assert backend in {q.pid for q in info.long_running}
    assert info.as_dict()["long_running"] >= 1
    assert "pg_sleep" in info._repr_html_()


def test_sessions_marks_the_sessions_of_dead_processes_stale(
    rows: dbnb.Database, children: list[subprocess.Popen[str]]
) -> None:
    # A session named after a process that no longer exists (the name is all it takes).
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    orphan = dbnb.connect(rows.url, application_name=f"dbnb:{gone}", pool_size=1)
    try:
        orphan.execute("SELECT 1")
        stale = rows.sessions(stale=True)
        assert f"dbnb:{gone}" in {s.application_name for s in stale.sessions}
        assert all(s.owner_alive is False or s.state.startswith("idle in") for s in stale.sessions)
        mine = rows.settings.application_name
        assert mine not in {s.application_name for s in stale.sessions}
        ended = rows.sessions(stale=True, terminate="stale")
        assert ended.terminated
        assert f"dbnb:{gone}" not in {s.application_name for s in rows.sessions().sessions}
    finally:
        orphan.close()


def test_the_magic_lists_and_refuses_sessions(db: dbnb.Database) -> None:
    from IPython import get_ipython
    from IPython.core.error import UsageError
    from IPython.testing.globalipapp import start_ipython

    from dbnb.server.sessions import SessionList

    shell: Any = start_ipython() or get_ipython()
    shell.run_line_magic("load_ext", "dbnb")
    magics = shell.magics_manager.registry["DbMagics"]
    previous, magics.database = magics.database, db
    other = dbnb.connect(db.url, application_name="dbnb:1", pool_size=1)
    try:
        other.execute("SELECT 1")
        listing = shell.run_line_magic("db", "sessions")
        assert isinstance(listing, SessionList)
        assert "dbnb:1" in {s.application_name for s in listing}
        assert "dbnb:1" in repr(listing)
        with pytest.raises(UsageError, match="not one of dbnb's sessions"):
            shell.run_line_magic("db", "sessions --terminate 1")
    finally:
        magics.database = previous  # the shell is shared with the magic's own tests
        other.close()
