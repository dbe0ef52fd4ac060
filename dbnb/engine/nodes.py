"""The nodes of a replica set as reports: what each server said about itself, and its state.

IO-free: the SQL is run by :mod:`dbnb.engine.replicas` (and ``Database.health()``); what came
back becomes a :class:`NodeStatus` per node, rendered as one table (:class:`NodeTable`) under
``db.health()`` and ``db.pool_status()`` (``%db health``, ``%db pool``).

A replica's lag is measured on the replica: zero while it has replayed all the WAL it
received, else the age of the last transaction it replayed (``now() -
pg_last_xact_replay_timestamp()``), so an idle primary does not make a caught-up replica look
late. The primary's ``pg_stat_replication`` adds its own view: how many bytes each standby it
streams to is behind, matched by the standby's application name (``cluster_name``, or
``application_name`` in its ``primary_conninfo``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dbnb.display.tables import Table
from dbnb.display.values import Duration, Size, Status

__all__ = [
    "CURRENT_LSN_SQL",
    "PRIMARY_REPLICATION_SQL",
    "PROBE_SQL",
    "REPLAYED_SQL",
    "NodeStatus",
    "NodeTable",
    "Probe",
    "probe_from_row",
]

#: One round trip on a replica: is it a standby, how far behind, is replay paused, its name.
PROBE_SQL = """
SELECT pg_is_in_recovery() AS standby,
       CASE WHEN NOT pg_is_in_recovery() THEN NULL
            WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0.0
            ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8
       END AS lag,
       CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END AS paused,
       (SELECT conninfo FROM pg_stat_wal_receiver) AS conninfo,
       current_setting('cluster_name') AS cluster_name
"""
#: On the primary: the standbys it streams to, and how far behind each one has replayed.
PRIMARY_REPLICATION_SQL = """
SELECT application_name, state,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS behind_bytes
FROM pg_stat_replication
"""
#: On a replica: has it replayed the primary's WAL up to ``:lsn``? (and its lag meanwhile)
REPLAYED_SQL = "SELECT pg_last_wal_replay_lsn() >= CAST(:lsn AS pg_lsn)"
#: On the primary: where its WAL ends now (what a replica must replay to have every commit).
CURRENT_LSN_SQL = "SELECT pg_current_wal_lsn()::text"
_APPLICATION_NAME = re.compile(r"(?:^|\s)application_name=(\S+)")


@dataclass(frozen=True)
class Probe:
    """What a replica said about itself in one :data:`PROBE_SQL` round trip."""

    standby: bool
    lag: float | None
    paused: bool
    name: str  # the application name it streams under (pg_stat_replication's)
    latency_ms: float


def probe_from_row(row: Any, latency_ms: float) -> Probe:
    """Read a :data:`PROBE_SQL` row."""
    found = _APPLICATION_NAME.search(str(row.conninfo or ""))
    name = found.group(1).strip("'") if found else (row.cluster_name or "walreceiver")
    lag = None if row.lag is None else max(float(row.lag), 0.0)
    return Probe(bool(row.standby), lag, bool(row.paused), str(name), latency_ms)


@dataclass(frozen=True)
class NodeStatus:
    """One server of a replica set as last seen: its role, state, latency and lag.

    ``state`` says in words whether reads go there (``in rotation``), or why not. ``reads``
    counts the reads routed to it since the Database was made; ``behind_bytes`` is the
    primary's view of a replica (from ``pg_stat_replication``, when matched).
    """

    name: str
    role: str
    where: str
    ok: bool
    state: str
    latency_ms: float | None = None
    lag_seconds: float | None = None
    behind_bytes: int | None = None
    reads: int = 0
    pools: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The status as plain values."""
        return {
            "name": self.name,
            "role": self.role,
            "where": self.where,
            "ok": self.ok,
            "state": self.state,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 2),
            "lag_seconds": None if self.lag_seconds is None else round(self.lag_seconds, 3),
            "behind_bytes": self.behind_bytes,
            "reads": self.reads,
        }

    def row(self, *, pools: bool) -> tuple[Any, ...]:
        """The table row: ``pools`` adds the pools' use (``%db pool``), else latency (health)."""
        latency = None if self.latency_ms is None else Duration(self.latency_ms / 1000)
        lag: Any = None if self.lag_seconds is None else Duration(self.lag_seconds)
        if self.lag_seconds == 0:
            lag = "caught up"
        behind = None if self.behind_bytes is None else Size(self.behind_bytes)
        status = Status(self.ok, "ok" if self.ok else "skipped")
        if pools:
            return (self.name, self.role, self.where, status, self.state, lag, self.reads,
                    self.pools)
        return (self.name, self.role, self.where, status, self.state, latency, lag, behind)


_HEALTH = ("node", "role", "where", "ok", "state", "latency", "lag", "behind")
_POOLS = ("node", "role", "where", "ok", "state", "lag", "reads", "pools")


@dataclass(frozen=True)
class NodeTable:
    """The nodes of a replica set, one row each (``pools``: the ``%db pool`` columns)."""

    nodes: tuple[NodeStatus, ...]
    pools: bool = False

    def table(self) -> Table:
        """The nodes as a :class:`~dbnb.display.tables.Table`."""
        usable = sum(1 for n in self.nodes if n.role == "replica" and n.ok)
        replicas = sum(1 for n in self.nodes if n.role == "replica")
        return Table(
            _POOLS if self.pools else _HEALTH,
            [n.row(pools=self.pools) for n in self.nodes],
            caption=f"replica set: {usable} of {replicas} replicas serve reads",
            note="" if usable else "no replica is usable: reads go to the primary",
            ok=usable > 0,
        )

    def __repr__(self) -> str:
        return self.table().text()

    def _repr_html_(self) -> str:
        return self.table().html()
