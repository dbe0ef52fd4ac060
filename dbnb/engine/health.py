"""Health and pool snapshots: frozen dataclasses built from counters and a health check.

The builders here take what was already read (a pool, a ``SELECT 1``'s latency) and do no I/O
of their own; :mod:`dbnb.engine.snapshots` runs the checks on either engine. What the server
says about itself (``info()``) is :mod:`dbnb.engine.server_info`. Reprs never touch the
database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.pool import Pool, QueuePool, StaticPool

from dbnb.display.tables import Record, Table
from dbnb.display.values import Duration, Percent, Status
from dbnb.driver_errors import translate
from dbnb.engine.nodes import NodeStatus, NodeTable
from dbnb.redaction import mask_secrets

__all__ = [
    "HealthReport",
    "PoolStatus",
    "failed_report",
    "pool_status_of",
]

HEALTHY_UTILIZATION = 80.0

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
    """Both engines' pools of one Database (and, with read replicas, each node's state)."""

    pools: tuple[PoolStatus, ...]
    nodes: tuple[NodeStatus, ...] = ()

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
        return "\n".join([*(repr(p) for p in self.pools), *self._nodes_text()])

    def _table(self) -> Table:
        return Table(
            _POOL_COLUMNS, [p._row() for p in self.pools], caption="connection pools",
            empty="no connection pools", ok=self.healthy,
        )

    def _nodes_text(self) -> list[str]:
        return [repr(NodeTable(self.nodes, pools=True))] if self.nodes else []

    def __str__(self) -> str:
        return "\n".join([self._table().text(), *self._nodes_text()])

    def _repr_html_(self) -> str:
        nodes = NodeTable(self.nodes, pools=True)._repr_html_() if self.nodes else ""
        return self._table().html() + nodes


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
    With read replicas, ``nodes`` has one row per server (role, latency, lag, ok).
    """

    ok: bool
    driver: str
    latency_ms: float | None = None
    server_version: str | None = None
    error: str | None = None
    message: str | None = None
    backend: str = "PostgreSQL"
    nodes: tuple[NodeStatus, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The report as plain values."""
        return {
            "ok": self.ok,
            "driver": self.driver,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 2),
            "server_version": self.server_version,
            "error": self.error,
            "message": self.message,
            **({"nodes": [n.as_dict() for n in self.nodes]} if self.nodes else {}),
        }

    def __repr__(self) -> str:
        nodes = "\n" + repr(NodeTable(self.nodes)) if self.nodes else ""
        if self.ok:
            return (
                f"HealthReport(ok=True, driver={self.driver!r}, "
                f"latency_ms={self.latency_ms:.2f}, server_version={self.server_version!r})"
                + nodes
            )
        return (
            f"HealthReport(ok=False, driver={self.driver!r}, error={self.error!r}, "
            f"message={self.message!r})" + nodes
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
        return self.summary + ("\n" + repr(NodeTable(self.nodes)) if self.nodes else "")

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
        nodes = NodeTable(self.nodes)._repr_html_() if self.nodes else ""
        return Record("health", shown, ok=self.ok).html() + nodes


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
