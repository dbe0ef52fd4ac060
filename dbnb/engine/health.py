"""Health, pool and server snapshots: frozen dataclasses built from counters and catalog rows.

The builders here take what was already read (a pool, rows from ``pg_stat_activity``) and do
no I/O of their own; :class:`~dbnb.engine.database.Database` runs the queries on either engine.
Reprs never touch the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.pool import Pool, QueuePool, StaticPool

from dbnb.display.tables import Record, Table
from dbnb.display.values import Count, Duration, Percent, Size, Status
from dbnb.driver_errors import translate
from dbnb.redaction import mask_secrets

__all__ = [
    "HealthReport",
    "IdleTransaction",
    "LongQuery",
    "PoolStatus",
    "ServerInfo",
    "failed_report",
    "pool_status_of",
]

HEALTHY_UTILIZATION = 80.0

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
class PoolStatus:
    """A snapshot of one engine's connection pool, from the pool's own counters."""

    engine: str
    driver: str
    started: bool
    size: int
    checked_in: int
    checked_out: int
    overflow: int
    capacity: int

    @property
    def utilization(self) -> float:
        """Checked-out connections as a percentage of capacity (size + max_overflow)."""
        return 100.0 * self.checked_out / self.capacity if self.capacity else 0.0

    @property
    def healthy(self) -> bool:
        """True while utilization stays below 80 %."""
        return self.utilization < HEALTHY_UTILIZATION

    def as_dict(self) -> dict[str, Any]:
        """The snapshot as plain values, derived ones included."""
        return {
            "engine": self.engine,
            "driver": self.driver,
            "started": self.started,
            "size": self.size,
            "checked_in": self.checked_in,
            "checked_out": self.checked_out,
            "overflow": self.overflow,
            "capacity": self.capacity,
            "utilization_%": round(self.utilization, 1),
            "healthy": self.healthy,
        }

    def __repr__(self) -> str:
        return (
            f"PoolStatus(engine={self.engine!r}, driver={self.driver!r}, started={self.started}, "
            f"size={self.size}, checked_in={self.checked_in}, checked_out={self.checked_out}, "
            f"overflow={self.overflow}, capacity={self.capacity}, "
            f"utilization={self.utilization:.1f}%, healthy={self.healthy})"
        )

    def status(self) -> Status:
        """``healthy`` in green, or ``busy`` in red past 80 % utilization."""
        return Status(self.healthy, "healthy" if self.healthy else "busy")

    def _row(self) -> tuple[Any, ...]:
        return (
            self.engine, self.driver, self.started, self.size, self.checked_in,
            self.checked_out, self.overflow, self.capacity, Percent(self.utilization),
            self.status(),
        )

    def _record(self) -> Record:
        fields = dict(zip(_POOL_COLUMNS[2:], self._row()[2:], strict=True))
        return Record(f"{self.engine} pool ({self.driver})", fields, ok=self.healthy)

    def __str__(self) -> str:
        return self._record().text()

    def _repr_html_(self) -> str:
        return self._record().html()


_POOL_COLUMNS = (
    "engine", "driver", "started", "size", "checked_in", "checked_out", "overflow", "capacity",
    "utilization", "status",
)


@dataclass(frozen=True)
class PoolReport:
    """Both engines' pools of one Database."""

    pools: tuple[PoolStatus, ...]

    @property
    def healthy(self) -> bool:
        """True when every started pool is healthy."""
        return all(p.healthy for p in self.pools)

    def __getitem__(self, engine: str) -> PoolStatus:
        for pool in self.pools:
            if pool.engine == engine:
                return pool
        raise KeyError(f"no pool named {engine!r}; have {[p.engine for p in self.pools]}")

    def __repr__(self) -> str:
        return "\n".join(repr(p) for p in self.pools)

    def _table(self) -> Table:
        return Table(
            _POOL_COLUMNS, [p._row() for p in self.pools], caption="connection pools",
            empty="no connection pools", ok=self.healthy,
        )

    def __str__(self) -> str:
        return self._table().text()

    def _repr_html_(self) -> str:
        return self._table().html()


def pool_status_of(
    pool: Pool | None, *, engine: str, driver: str, size: int, max_overflow: int
) -> PoolStatus:
    """Build a :class:`PoolStatus` from a pool's counters (``None``: engine not created yet).

    A ``StaticPool`` (in-memory SQLite) is one connection that every session shares: it is
    never checked out by one of them, so it counts as one connection, checked in.
    """
    if isinstance(pool, StaticPool):
        return PoolStatus(engine, driver, True, 1, 1, 0, 0, 1)
    if pool is None or not isinstance(pool, QueuePool):
        return PoolStatus(engine, driver, False, size, 0, 0, 0, size + max_overflow)
    return PoolStatus(
        engine=engine,
        driver=driver,
        started=True,
        size=pool.size(),
        checked_in=pool.checkedin(),
        checked_out=pool.checkedout(),
        # QueuePool counts overflow from -size upwards; only connections beyond size matter.
        overflow=max(pool.overflow(), 0),
        capacity=size + max_overflow,
    )


@dataclass(frozen=True)
class HealthReport:
    """Whether the server answers, how fast, and which version it runs.

    ``ok=False`` carries the error class and a message with secrets masked; it is never raised.
    """

    ok: bool
    driver: str
    latency_ms: float | None = None
    server_version: str | None = None
    error: str | None = None
    message: str | None = None
    backend: str = "PostgreSQL"

    def as_dict(self) -> dict[str, Any]:
        """The report as plain values."""
        return {
            "ok": self.ok,
            "driver": self.driver,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 2),
            "server_version": self.server_version,
            "error": self.error,
            "message": self.message,
        }

    def __repr__(self) -> str:
        if self.ok:
            return (
                f"HealthReport(ok=True, driver={self.driver!r}, "
                f"latency_ms={self.latency_ms:.2f}, server_version={self.server_version!r})"
            )
        return (
            f"HealthReport(ok=False, driver={self.driver!r}, error={self.error!r}, "
            f"message={self.message!r})"
        )

    @property
    def summary(self) -> str:
        """One line: ``healthy: psycopg answered in 4.6 ms (PostgreSQL 18.4)``."""
        if self.ok:
            latency = Duration((self.latency_ms or 0.0) / 1000)
            return (
                f"healthy: {self.driver} answered in {latency} "
                f"({self.backend} {self.server_version})"
            )
        return f"unhealthy: {self.driver}: {self.error}: {self.message}"

    def __str__(self) -> str:
        return self.summary

    def _repr_html_(self) -> str:
        latency = None if self.latency_ms is None else Duration(self.latency_ms / 1000)
        fields = {
            "status": Status(self.ok, "healthy" if self.ok else "unhealthy"),
            "driver": self.driver,
            "latency": latency,
            "server_version": self.server_version,
            "error": self.error,
            "message": self.message,
        }
        shown = {k: v for k, v in fields.items() if v is not None}
        return Record("health", shown, ok=self.ok).html()


def failed_report(driver: str, exc: BaseException) -> HealthReport:
    """Describe a failed health check: the dbnb error class and its first line, masked."""
    translated = translate(exc)
    text = str(translated)
    return HealthReport(
        ok=False,
        driver=driver,
        error=type(translated).__name__,
        message=mask_secrets(text.splitlines()[0] if text else ""),
    )


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
