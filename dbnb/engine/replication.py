"""Health and pool reports of a Database with read replicas: one row per node.

``db.health()`` asks the primary for ``SELECT 1`` and for the standbys it streams to
(``pg_stat_replication``), looks at every replica (:meth:`ReplicaSet.check_all
<dbnb.engine.replicas.ReplicaSet.check_all>`), and adds the nodes to its report;
``db.pool_status()`` adds them as last seen, without I/O. Both shells use these.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from dbnb.engine import health as _health
from dbnb.engine.nodes import CURRENT_LSN_SQL, PRIMARY_REPLICATION_SQL, NodeStatus
from dbnb.engine.replica_nodes import where_of
from dbnb.engine.replicas import ReplicaSet

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["CURRENT_LSN_SQL", "astreamed", "pools_with_nodes", "streamed", "with_nodes"]


def _behind(rows: list[Any]) -> dict[str, int]:
    return {
        str(r.application_name): int(r.behind_bytes)
        for r in rows
        if r.application_name and r.behind_bytes is not None
    }


def streamed(conn: Connection) -> dict[str, int]:
    """On the primary: the bytes each standby it streams to has not replayed yet, by name."""
    return _behind(list(conn.execute(text(PRIMARY_REPLICATION_SQL))))


async def astreamed(conn: AsyncConnection) -> dict[str, int]:
    """:func:`streamed` over asyncpg."""
    return _behind(list(await conn.execute(text(PRIMARY_REPLICATION_SQL))))


def _primary(ok: bool, replicas: ReplicaSet, url: URL, behind: dict[str, int] | None,
             latency_ms: float | None) -> NodeStatus:
    if not ok:
        state = "unreachable"
    elif behind is None:
        state = "writes; reads when no replica can"
    else:
        state = f"writes; streams to {len(behind)} standby(s)"
    return NodeStatus(
        "primary", "primary", where_of(url), ok, state, latency_ms=latency_ms,
        reads=replicas.primary_reads,
    )


def with_nodes(
    report: _health.HealthReport, replicas: ReplicaSet, behind: dict[str, int], url: URL
) -> _health.HealthReport:
    """``report`` (the primary's) with a row per node, after the replicas were looked at."""
    primary = _primary(report.ok, replicas, url, behind, report.latency_ms)
    return dataclasses.replace(report, nodes=(primary, *replicas.statuses(behind=behind)))


def pools_with_nodes(
    report: _health.PoolReport, replicas: ReplicaSet, url: URL
) -> _health.PoolReport:
    """``report`` (the primary's pools) with each node as last seen (no I/O)."""
    pools = ", ".join(
        f"{p.engine} {p.checked_out}/{p.capacity}" for p in report.pools if p.started
    )
    primary = dataclasses.replace(
        _primary(True, replicas, url, None, None), pools=pools or "not started"
    )
    return dataclasses.replace(report, nodes=(primary, *replicas.statuses(pools=True)))
