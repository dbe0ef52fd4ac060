"""The embedded server's lifecycle with real processes: it stops when the last attached process
is gone, even when some were SIGKILLed; ``stop`` refuses while others use it, unless forced.

Each test uses a data directory of its own (never the session's server). Children are resumed
and killed in teardown.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dbnb
from dbnb.cli import main as cli
from dbnb.server import attachments

_CHILD = """
import sys, time
import dbnb
server = dbnb.embedded_server(sys.argv[1], announce=False)
db = dbnb.connect(server.url("postgres"))
db.execute("SELECT 1")
print("ready", flush=True)
if sys.argv[2] == "wait":
    time.sleep(120)
"""


@pytest.fixture
def home() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dbnb-lifecycle-"))
    yield path
    if attachments.server_running(path):
        attachments.stop_server(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for child in started:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGCONT)
            child.kill()
        child.communicate(timeout=30)


def _attach(children: list[subprocess.Popen[str]], home: Path, mode: str = "wait"
            ) -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(home), mode],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    children.append(child)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready", child.stderr.read() if child.stderr else ""
    return child


def _stops_within(home: Path, seconds: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if not attachments.server_running(home):
            return time.monotonic() - start
        time.sleep(0.1)
    pytest.fail(f"the server in {home} still runs after {seconds} s")


def test_it_stops_when_every_attached_process_was_sigkilled(
    home: Path, children: list[subprocess.Popen[str]]
) -> None:
    first = _attach(children, home)
    second = _attach(children, home)
    first.kill()  # never detaches
    first.wait()
    time.sleep(2.5)  # a watcher's full turn
    assert attachments.server_running(home)  # the second one still uses it
    second.kill()
    second.wait()
    assert _stops_within(home, 10) < 5  # the detached watcher noticed: no process was left


def test_a_process_leaving_normally_stops_it_when_the_others_were_killed(
    home: Path, children: list[subprocess.Popen[str]]
) -> None:
    killed = _attach(children, home)
    killed.kill()
    killed.wait()
    quick = _attach(children, home, mode="exit")  # attaches, then exits normally (atexit)
    quick.wait(timeout=30)
    assert quick.returncode == 0
    # The normal exit stopped it at once (the watcher's next look would take up to 2 s more).
    assert _stops_within(home, 10) < 10


def test_a_frozen_process_keeps_it_alive_and_stop_refuses_unless_forced(
    home: Path, children: list[subprocess.Popen[str]]
) -> None:
    frozen = _attach(children, home)
    os.kill(frozen.pid, signal.SIGSTOP)
    server = dbnb.EmbeddedServer(home)
    time.sleep(2.5)  # a watcher's full turn: a stopped process is alive
    assert attachments.server_running(home)
    assert server.users() == [frozen.pid]
    with pytest.raises(dbnb.ServerInUse, match=str(frozen.pid)):
        server.stop()
    assert attachments.server_running(home)
    server.stop(force=True)
    assert not attachments.server_running(home)


def test_the_cli_and_the_magic_stop_it(
    home: Path, children: list[subprocess.Popen[str]], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DBNB_HOME", str(home))
    user = _attach(children, home)
    assert cli(["stop"]) == 1
    assert "ServerInUse" in capsys.readouterr().err
    assert cli(["stop", "--force"]) == 0
    assert "stopped" in capsys.readouterr().out
    assert not attachments.server_running(home)
    assert cli(["stop"]) == 0
    assert "not running" in capsys.readouterr().out
    user.kill()


def test_embedded_server_takes_a_str_or_a_path(home: Path) -> None:
    as_str = dbnb.embedded_server(str(home), announce=False)
    as_path = dbnb.embedded_server(home, announce=False)
    assert as_str is as_path and as_str.home == home.resolve()
    db = dbnb.connect(as_str.url("postgres"))
    assert db.execute("SELECT 1 AS one")[0].one == 1
    with pytest.raises(dbnb.ConfigError, match="not int"):
        dbnb.embedded_server(42)  # type: ignore[arg-type]
    db.close()
    as_str.stop()
    # Asked for again after a stop, it starts again (what %db connect after %db stop needs).
    again = dbnb.embedded_server(home, announce=False)
    assert again is as_str and attachments.server_running(home)
    db = dbnb.connect(again.url("postgres"))
    assert db.execute("SELECT 2 AS two")[0].two == 2
    db.close()
    again.stop()


def test_the_magic_closes_its_database_with_the_server_and_reconnects(
    home: Path, monkeypatch: pytest.MonkeyPatch, ipython: Any
) -> None:
    from dbnb.notebook.magic import DbMagics

    monkeypatch.setenv("DBNB_HOME", str(home))
    magics = ipython.find_magic("db").__self__
    assert isinstance(magics, DbMagics)
    before = magics.database
    try:
        stopped_db = ipython.run_line_magic("db", "connect --database lifecycle")
        ipython.run_line_magic("db", "stop")
        assert stopped_db.closed and magics.database is None
        assert not attachments.server_running(home)
        # The next use reconnects, starting the server again: no dead pool is reused.
        frame = ipython.run_line_magic("db", "SELECT 7 AS seven")
        assert int(frame["seven"][0]) == 7 and attachments.server_running(home)
    finally:
        if magics.database is not None:
            magics.database.close()
        magics.database = before
