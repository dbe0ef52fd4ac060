"""A streaming replica on this machine: PostgreSQL's own replication, for trying replicas locally.

:meth:`EmbeddedServer.start_replica() <dbnb.server.embedded.EmbeddedServer.start_replica>`
makes one: ``pg_basebackup -R`` (the wheel's PostgreSQL 18 binaries) copies the running primary
into ``<DBNB_HOME>/replicas/<name>`` and writes its ``standby.signal`` and
``primary_conninfo``; the copy then starts as a hot standby on a unix socket of its own and
streams the primary's WAL. Nothing here is a cluster manager: a real replica set is made by
its operators (see the README's "Scaling out"); this one exists so that a notebook or a test
can watch reads move between real servers on one machine.

The replica stops (by pid, a fast shutdown) when :meth:`LocalReplica.stop` is called, when the
process that made it exits, or when its primary's data directory stops (the embedded server's
watcher stops the replicas under it first).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from dbnb.errors import ConnectionFailed

__all__ = ["LocalReplica"]

#: How long a new replica may take to start streaming, in seconds.
READY_TIMEOUT = 60.0
# Unix socket paths are limited to about 107 bytes; a longer data directory gets a short one.
_SOCKET_PATH_MAX = 100


def _pid_of(data: Path) -> int | None:
    """The postmaster pid recorded in ``data/postmaster.pid`` when that process is alive."""
    try:
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return True
        time.sleep(0.05)
    return False


class LocalReplica:
    """A hot standby of a PostgreSQL on this machine, in a directory of its own.

    Get one with :meth:`EmbeddedServer.start_replica()
    <dbnb.server.embedded.EmbeddedServer.start_replica>`; ``url()`` is what
    ``dbnb.connect(..., replicas=[...])`` takes.

    Example::

        replica = dbnb.embedded_server().start_replica()
        db = dbnb.connect(replicas=[replica.url()])
    """

    def __init__(
        self,
        directory: Path,
        *,
        bin_path: Path,
        system_user: str | None,
        primary_socket_dir: Path,
        primary_port: int,
        port: int,
    ) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.name = directory.name
        self.port = port
        self._bin_path = bin_path
        self._user = system_user
        self._primary = (primary_socket_dir, primary_port)
        short = len(str(self.data / f".s.PGSQL.{port}")) <= _SOCKET_PATH_MAX
        self._socket_dir: Path | None = self.data if short else None

    # -- identity -------------------------------------------------------------------------------

    @property
    def socket_dir(self) -> Path:
        """The directory holding the replica's unix socket."""
        if self._socket_dir is None:
            self._socket_dir = Path(tempfile.mkdtemp(prefix="dbnb-replica-"))
            self._own(self._socket_dir, mode=0o777)
        return self._socket_dir

    def url(self, database: str = "postgres") -> URL:
        """The URL of ``database`` on the replica (unix socket, trust auth, no password)."""
        return URL.create(
            "postgresql", username="postgres", database=database,
            query={"host": str(self.socket_dir), "port": str(self.port)},
        )

    @property
    def pid(self) -> int | None:
        """The replica's postmaster pid while it runs, else None."""
        return _pid_of(self.data)

    def is_running(self) -> bool:
        """Tell whether the replica's postmaster is running."""
        return self.pid is not None

    def describe(self) -> str:
        """One line for humans: which replica, where its socket is."""
        return f"local replica {self.name!r} (socket {self.socket_dir}, port {self.port})"

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<LocalReplica {self.name!r} {state}>"

    # -- lifecycle ------------------------------------------------------------------------------

    def _own(self, path: Path, *, mode: int = 0o700) -> None:
        if self._user is not None:
            shutil.chown(path, self._user)
        path.chmod(mode)

    def _run(self, program: str, *args: str) -> None:
        import subprocess

        # Files, not pipes: a server started by pg_ctl inherits them and would keep a pipe open.
        with tempfile.TemporaryFile("w+", encoding="utf-8") as errors:
            done = subprocess.run(
                [str(self._bin_path / program), *args], stdout=subprocess.DEVNULL,
                stderr=errors, user=self._user, timeout=120, check=False,
            )
            errors.seek(0)
            said = " ".join(errors.read().split())[-400:]
        if done.returncode != 0:
            log = self.directory / "log"
            tail = " ".join(log.read_text(errors="replace").split())[-400:] if log.exists() else ""
            raise ConnectionFailed(
                f"{program} failed for the {self.describe()}: {said or 'no message'}"
                + (f"; server log: {tail}" if tail else "")
            )

    def create(self) -> None:
        """Copy the running primary (``pg_basebackup -R``) into a fresh data directory, start it.

        An earlier replica in the same directory is stopped and removed first.

        Raises:
            ConnectionFailed: the copy or the start failed (the message has the server log's
                end), or the replica did not stream within a minute.
        """
        self.remove()
        self.directory.mkdir(parents=True)
        self._own(self.directory)
        socket_dir, port = self._primary
        self._run(
            "pg_basebackup", "-h", str(socket_dir), "-p", str(port), "-U", "postgres",
            "-D", str(self.data), "-R", "-X", "stream", "-c", "fast",
        )
        self.start()
        atexit.register(self.remove)

    def start(self) -> None:
        """Start the replica (again) and wait until it streams from the primary."""
        if not self.is_running():
            options = (
                f"-h '' -k {self.socket_dir} -p {self.port} -c cluster_name={self.name} "
                "-c hot_standby_feedback=on"
            )
            self._run(
                "pg_ctl", "-w", "-D", str(self.data), "-o", options,
                "-l", str(self.directory / "log"), "start",
            )
        self._wait_streaming()

    def _wait_streaming(self) -> None:
        import psycopg

        from dbnb.server.admin import psycopg_conninfo

        conninfo = psycopg_conninfo(self.url(), connect_timeout=5)
        deadline = time.monotonic() + READY_TIMEOUT
        status: Any = None
        while time.monotonic() < deadline:
            with contextlib.suppress(psycopg.OperationalError), psycopg.connect(
                conninfo, autocommit=True
            ) as conn:
                row = conn.execute("SELECT status FROM pg_stat_wal_receiver").fetchone()
                status = row[0] if row else None
                if status == "streaming":
                    return
            time.sleep(0.1)
        raise ConnectionFailed(
            f"the {self.describe()} did not start streaming within {READY_TIMEOUT:.0f} s "
            f"(WAL receiver: {status or 'not running'}); see {self.directory / 'log'}"
        )

    def stop(self) -> None:
        """Stop the replica now: a fast shutdown by pid (SIGINT), SIGKILL if it lingers."""
        pid = self.pid
        if pid is None:
            return
        os.kill(pid, signal.SIGINT)
        if not _wait_gone(pid, 30):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 5)

    def remove(self) -> None:
        """Stop the replica and delete its directory (and its socket directory, if separate)."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
        if self._socket_dir is not None and self._socket_dir != self.data:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None
        with contextlib.suppress(Exception):
            atexit.unregister(self.remove)
