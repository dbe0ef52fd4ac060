"""Sessions on the server: who is connected, who is stale, who blocks whom, and ending them.

dbnb names its connections ``dbnb:<pid>`` (``application_name``), so a session can be traced
back to the process that opened it and, when the server runs on this machine, whether that
process is still alive. :func:`read_sessions` lists them from ``pg_stat_activity``;
:class:`BlockerWatch` follows, from a connection of its own, who holds the locks a given
backend waits for (what :class:`~dbnb.MigrationBlocked` reports).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import URL

from dbnb.display.tables import Table
from dbnb.display.values import Duration, plural
from dbnb.errors import ConfigError

__all__ = [
    "BLOCKERS_SQL",
    "SESSIONS_SQL",
    "BlockerWatch",
    "ServerSession",
    "SessionList",
    "describe_blockers",
    "is_local",
    "owner_alive",
    "pids_to_end",
    "session_from_row",
    "sessions_from_rows",
    "terminate_sql",
]

_OWNER = re.compile(r"^dbnb[:\-](?P<pid>\d+)$")
_COLUMNS = """
       a.pid, coalesce(a.application_name, '') AS application_name,
       coalesce(a.state, '') AS state,
       extract(epoch FROM now() - coalesce(
           CASE WHEN a.state = 'active' THEN a.query_start ELSE a.state_change END,
           a.backend_start))::float8 AS age_seconds,
       left(coalesce(a.query, ''), 200) AS query,
       coalesce(a.datname, '') AS database
"""
#: Every client session on the server but the asking one (``:everyone`` false: dbnb's only).
SESSIONS_SQL = f"""
SELECT {_COLUMNS}
FROM pg_stat_activity a
WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()
  AND (:everyone OR a.application_name LIKE 'dbnb%')
ORDER BY a.backend_start
"""
#: The sessions holding locks that backend ``:pid`` waits for.
BLOCKERS_SQL = f"""
SELECT {_COLUMNS}
FROM pg_stat_activity a
WHERE a.pid = ANY(pg_blocking_pids(%(pid)s))
"""
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", ""}
#: A session idle inside a transaction for this long counts as stale.
STALE_IDLE_SECONDS = 300.0


def is_local(url: URL) -> bool:
    """Tell whether the server of ``url`` runs on this machine (unix socket or loopback)."""
    host = url.host or url.query.get("host") or ""
    host = host if isinstance(host, str) else ",".join(host)
    return host.startswith("/") or host in _LOCAL_HOSTS


def owner_alive(application_name: str, *, local: bool) -> bool | None:
    """Whether the process named by ``dbnb:<pid>`` lives; None when that cannot be known."""
    match = _OWNER.match(application_name)
    if match is None or not local:
        return None
    try:
        os.kill(int(match.group("pid")), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


@dataclass(frozen=True)
class ServerSession:
    """One session on the server (a row of ``pg_stat_activity``)."""

    pid: int
    application_name: str
    state: str
    age_seconds: float
    query: str
    database: str
    owner_alive: bool | None

    def stale(self, idle_seconds: float) -> bool:
        """Its owning process is gone, or it sat idle in a transaction for ``idle_seconds``."""
        idle = self.state.startswith("idle in transaction") and self.age_seconds >= idle_seconds
        return self.owner_alive is False or idle

    def row(self) -> tuple[Any, ...]:
        """The session as a table row."""
        alive = {True: "yes", False: "no", None: "?"}[self.owner_alive]
        return (self.pid, self.application_name, self.state, round(self.age_seconds, 1),
                alive, self.database, self.query)


@dataclass(frozen=True)
class SessionList:
    """Sessions on the server, and which of them were just terminated."""

    sessions: tuple[ServerSession, ...]
    terminated: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.sessions)

    def _table(self) -> Table:
        ended = f"terminated: {', '.join(map(str, self.terminated))}" if self.terminated else ""
        rows = [(*s.row()[:3], Duration(s.age_seconds), *s.row()[4:]) for s in self.sessions]
        return Table(
            ("pid", "application_name", "state", "age", "owner_alive", "database", "query"),
            rows, caption=plural(len(rows), "session"), note=ended,
            empty="no sessions" + (f"; {ended}" if ended else ""),
        )

    def __iter__(self) -> Iterator[ServerSession]:
        return iter(self.sessions)

    def __repr__(self) -> str:
        return self._table().text()

    def _repr_html_(self) -> str:
        return self._table().html()


def session_from_row(row: Any, *, local: bool) -> ServerSession:
    """Build a :class:`ServerSession` from a row of :data:`SESSIONS_SQL`."""
    name = str(row.application_name)
    return ServerSession(
        pid=int(row.pid),
        application_name=name,
        state=str(row.state),
        age_seconds=float(row.age_seconds or 0.0),
        query=str(row.query),
        database=str(row.database),
        owner_alive=owner_alive(name, local=local),
    )


def sessions_from_rows(rows: list[Any], url: URL, *, stale: bool) -> tuple[ServerSession, ...]:
    """Build the sessions of :data:`SESSIONS_SQL` rows (only the stale ones if asked)."""
    local = is_local(url)
    found = tuple(session_from_row(r, local=local) for r in rows)
    return tuple(s for s in found if s.stale(STALE_IDLE_SECONDS)) if stale else found


def pids_to_end(
    found: tuple[ServerSession, ...], terminate: int | str | None, *, stale: bool,
    everyone: bool,
) -> tuple[int, ...]:
    """Which pids ``terminate`` names among ``found``: one pid, or ``"stale"`` for all stale.

    Raises:
        ConfigError: the pid is not a listed session (not dbnb's, unless ``everyone``).
    """
    if terminate is None:
        return ()
    if isinstance(terminate, str) and terminate.strip().lower() == "stale":
        return tuple(s.pid for s in found if s.stale(STALE_IDLE_SECONDS))
    try:
        pid = int(terminate)
    except (TypeError, ValueError):
        raise ConfigError(
            f"terminate={terminate!r}: give a session's pid (from the listing) or 'stale'"
        ) from None
    if pid not in {s.pid for s in found}:
        whose = "a session on this server" if everyone else "one of dbnb's sessions"
        hint = "" if everyone else " (everyone=True / --everyone to end another application's)"
        narrowed = " among the stale ones" if stale else ""
        raise ConfigError(f"pid {pid} is not {whose}{narrowed}{hint}; nothing was ended")
    return (pid,)


def terminate_sql(dialect: Any) -> str:
    """``pg_terminate_backend``, waiting (up to 5 s) for the session to end where it can."""
    version = getattr(dialect, "server_version_info", None) or (0,)
    if int(version[0]) >= 14:
        return "SELECT pg_terminate_backend(:pid, 5000)"
    return "SELECT pg_terminate_backend(:pid)"


def describe_blockers(blockers: tuple[dict[str, Any], ...]) -> str:
    """One line per blocker: pid, application name, state and age, query."""
    parts = []
    for b in blockers:
        query = " ".join(str(b["query"]).split())[:80]
        parts.append(
            f"pid {b['pid']} ({b['application_name'] or 'no application name'}, "
            f"{b['state'] or 'unknown state'} for {b['age_seconds']:.0f} s: {query!r})"
        )
    return "; ".join(parts)


class BlockerWatch:
    """Follow, on a connection of its own, who blocks backend ``pid`` (polled in a thread).

    Use as a context manager around the work that may wait; :attr:`blockers` keeps the last
    non-empty answer (as dicts with pid, application_name, state, age_seconds, query).
    """

    def __init__(self, conninfo: str, pid: int, *, every: float = 0.25) -> None:
        self._conninfo = conninfo
        self._pid = pid
        self._every = every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.blockers: tuple[dict[str, Any], ...] = ()

    def __enter__(self) -> BlockerWatch:
        self._thread = threading.Thread(target=self._run, name="dbnb-blockers", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        import psycopg
        from psycopg.rows import dict_row

        # The watch is best effort: if it cannot connect, the migration's own error remains.
        with contextlib.suppress(psycopg.Error), psycopg.connect(
            self._conninfo, autocommit=True, row_factory=dict_row
        ) as conn:
            while not self._stop.wait(self._every):
                rows = conn.execute(BLOCKERS_SQL, {"pid": self._pid}).fetchall()
                if rows:
                    self.blockers = tuple(dict(r) for r in rows)
