"""What the server says about itself (``db.info()``): version, size, connections, stuck sessions.

:class:`ServerInfo` is built from the rows of the catalog queries here (PostgreSQL's; other
backends' are in :mod:`dbnb.engine.probes`) without I/O of its own; reprs never touch the
database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dbnb.display.tables import Record, Table
from dbnb.display.values import Count, Duration, Size

__all__ = ["IdleTransaction", "LongQuery", "ServerInfo", "server_info_from_rows"]

# One round trip: version, database, size, this application's connections by state and the
# sessions sitting idle in a transaction (they hold locks and a pooled connection).
SERVER_INFO_SQL = """
SELECT current_setting('server_version') AS version,
       current_database() AS database,
       pg_database_size(current_database()) AS size_bytes,
       pg_size_pretty(pg_database_size(current_database())) AS size_pretty,
       current_setting('application_name') AS application_name
"""
CONNECTIONS_SQL = """
SELECT coalesce(state, 'unknown') AS state, count(*) AS n
FROM pg_stat_activity
WHERE application_name = current_setting('application_name') AND datname = current_database()
GROUP BY 1 ORDER BY 1
"""
IDLE_IN_TRANSACTION_SQL = """
SELECT pid, application_name,
       extract(epoch FROM now() - state_change)::float8 AS idle_seconds,
       left(query, 200) AS last_query
FROM pg_stat_activity
WHERE state IN ('idle in transaction', 'idle in transaction (aborted)')
  AND datname = current_database() AND pid <> pg_backend_pid()
ORDER BY state_change
"""
#: Queries of any dbnb process (``dbnb:<pid>``) running for longer than LONG_RUNNING_SECONDS.
LONG_RUNNING_SECONDS = 5
LONG_RUNNING_SQL = f"""
SELECT pid, application_name,
       extract(epoch FROM now() - query_start)::float8 AS idle_seconds,
       left(query, 200) AS last_query
FROM pg_stat_activity
WHERE state = 'active' AND application_name LIKE 'dbnb%'
  AND now() - query_start > interval '{LONG_RUNNING_SECONDS} seconds'
  AND datname = current_database() AND pid <> pg_backend_pid()
ORDER BY query_start
"""



@dataclass(frozen=True)
class IdleTransaction:
    """A session that opened a transaction and went quiet (it holds locks and a connection)."""

    pid: int
    application_name: str
    idle_seconds: float
    last_query: str


@dataclass(frozen=True)
class LongQuery:
    """A query of a dbnb process that has been running for a while (its kernel may be gone)."""

    pid: int
    application_name: str
    seconds: float
    query: str


@dataclass(frozen=True)
class ServerInfo:
    """What the server says about itself and about this application's connections.

    Fields a backend does not have are None and not shown: SQLite has no application name,
    connections or sessions; MySQL/MariaDB no application name.
    """

    version: str
    database: str
    size_bytes: int
    size_pretty: str
    application_name: str | None
    connections: dict[str, int] | None = field(default_factory=dict)
    idle_in_transaction: tuple[IdleTransaction, ...] = ()
    long_running: tuple[LongQuery, ...] = ()
    backend: str = "PostgreSQL"

    @property
    def idle_in_transaction_count(self) -> int:
        """How many sessions in this database are idle inside an open transaction."""
        return len(self.idle_in_transaction)

    def as_dict(self) -> dict[str, Any]:
        """The snapshot as plain values (connections flattened to ``state=count`` text).

        ``long_running`` (queries of dbnb processes running for over LONG_RUNNING_SECONDS)
        appears only when there are some.
        """
        values: dict[str, Any] = {
            "version": self.version,
            "database": self.database,
            "size": self.size_pretty,
            "application_name": self.application_name,
            "connections": None if self.connections is None else (
                ", ".join(f"{k}={v}" for k, v in self.connections.items()) or "none"
            ),
            "idle_in_transaction": self.idle_in_transaction_count,
        }
        values = {k: v for k, v in values.items() if v is not None}
        if self.connections is None:
            del values["idle_in_transaction"]  # no sessions to be idle
        if self.long_running:
            values["long_running"] = len(self.long_running)
        return values

    def _record(self) -> Record:
        fields: dict[str, Any] = {
            "version": f"{self.backend} {self.version}" if self.backend != "PostgreSQL"
            else self.version,
            "database": self.database,
            "size": Size(self.size_bytes),
        }
        if self.application_name is not None:
            fields["application_name"] = self.application_name
        if self.connections is not None:
            fields["connections"] = (
                ", ".join(f"{v} {k}" for k, v in self.connections.items()) or "none"
            )
            fields["idle_in_transaction"] = Count(self.idle_in_transaction_count)
        if self.long_running:
            fields["long_running"] = Count(len(self.long_running))
        return Record("server", fields)

    def _idle(self) -> Table:
        return Table(
            ["pid", "application_name", "idle_for", "last_query"],
            [
                (t.pid, t.application_name, Duration(t.idle_seconds), t.last_query)
                for t in self.idle_in_transaction
            ],
            caption="sessions idle in a transaction",
            empty="no session is idle in a transaction",
        )

    def _long(self) -> Table:
        return Table(
            ["pid", "application_name", "running_for", "query"],
            [(q.pid, q.application_name, Duration(q.seconds), q.query) for q in self.long_running],
            caption=f"queries of dbnb processes running for over {LONG_RUNNING_SECONDS} s",
            empty="no long-running query",
        )

    def __repr__(self) -> str:
        out = self._record().text()
        if self.idle_in_transaction:
            out += "\n" + self._idle().text()
        if self.long_running:
            out += "\n" + self._long().text()
        return out

    def _repr_html_(self) -> str:
        out = self._record().html()
        if self.idle_in_transaction:
            out += self._idle().html()
        if self.long_running:
            out += self._long().html()
        return out


def server_info_from_rows(
    head: Any,
    connections: list[Any] | None,
    idle: list[Any],
    long: Sequence[Any] = (),
    *,
    backend: str = "PostgreSQL",
) -> ServerInfo:
    """Assemble a :class:`ServerInfo` from the rows of the catalog queries (None: no such thing)."""
    size = int(head.size_bytes or 0)
    return ServerInfo(
        version=str(head.version),
        database=str(head.database),
        size_bytes=size,
        size_pretty=str(head.size_pretty) if head.size_pretty is not None else str(Size(size)),
        application_name=None if head.application_name is None else str(head.application_name),
        connections=None if connections is None else {
            str(r.state): int(r.n) for r in connections
        },
        backend=backend,
        idle_in_transaction=tuple(
            IdleTransaction(
                int(r.pid), str(r.application_name or ""), float(r.idle_seconds or 0.0),
                str(r.last_query or ""),
            )
            for r in idle
        ),
        long_running=tuple(
            LongQuery(int(r.pid), str(r.application_name or ""), float(r.idle_seconds or 0.0),
                      str(r.last_query or ""))
            for r in long
        ),
    )
