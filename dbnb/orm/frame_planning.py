"""What both repository shells' frame methods share before any I/O (the Dask plan above all).

:class:`FramePlanning` builds ``to_dask``'s statement, key ranges and worker connections
(:mod:`dbnb.orm.frame_methods` and :mod:`dbnb.orm.async_frame_methods` mix it in);
:data:`ONE_STREAM` is the advice a backend without partitioned reads gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from dbnb.errors import FilterError

if TYPE_CHECKING:
    from sqlalchemy import Select, Table
    from sqlalchemy.engine import URL

    from dbnb.engine.remote import WorkerConnection
    from dbnb.frames.partitions import OrderKey
    from dbnb.orm.filters import OrderBy
    from dbnb.orm.statements import Statements

__all__ = ["ONE_STREAM", "FramePlanning"]

M = TypeVar("M")
# Partitioned reads share a PostgreSQL snapshot (pg_export_snapshot) between connections.
ONE_STREAM = "read in one stream (leave partitions unset); it is the generic cursor read there"
_NO_DASK = ("read with to_frame() and hand the frame to dask.dataframe.from_pandas(); to_dask()'s "
            "partitions are PostgreSQL COPY reads")


class FramePlanning(Generic[M]):
    """What both shells' ``to_dask`` share before any I/O: the statement, ranges, workers."""

    model: type[M]
    bind: Any
    _q: Statements[M]

    def _dask_read(
        self, where: tuple[Any, ...], lookups: dict[str, Any], partitions: int,
        partition_on: str | None, columns: Sequence[str] | None, order_by: OrderBy,
        *dtypes: Any,
    ) -> tuple[Select[Any], Table, OrderKey | None, dict[str, Any]]:
        from dbnb.frames.columns import options_of
        from dbnb.frames.partitions import OrderKey, check_partitions

        self._q.caps.require("to_dask()", _NO_DASK)
        check_partitions(partitions, limit=None, offset=None)
        options = options_of(*dtypes)
        stmt = self._q.frame(where, lookups, columns=columns, order_by=order_by,
                            limit=None, offset=None)
        table, key = self._q.partitioning(order_by)
        if partition_on is not None:
            if partition_on not in table.c:
                raise FilterError(
                    f"partition_on={partition_on!r} is not a column of {table.name}; choose "
                    f"from {', '.join(table.c.keys())}"
                )
            key = OrderKey(table.c[partition_on], descending=False)
        return stmt, table, key, options

    def _read_nodes(self) -> int:
        """How many servers reads take turns on (the replicas of a Database, else one)."""
        database = getattr(self.bind, "sync", self.bind)
        urls = getattr(getattr(database, "replicas", None), "urls", None)
        return max(1, len(urls or ()))

    def _workers(self, urls: list[URL]) -> tuple[WorkerConnection, ...]:
        from dbnb.engine.remote import WorkerConnection

        database = getattr(self.bind, "sync", self.bind)
        settings = getattr(database, "settings", None)
        return tuple(WorkerConnection.of(url, settings) for url in urls)
