"""DataFrame methods of the repositories: to_frame, to_dask, iter_frames, from_frame.

Mixed into :class:`~dbnb.Repository` (:class:`FrameMethods`) and
:class:`~dbnb.AsyncRepository` (:class:`AsyncFrameMethods`). Each method builds the
repository's own SELECT (:meth:`~dbnb.orm.statements.Statements.frame`: its filters, ordering and
soft-delete visibility) and hands it to the COPY fast path in :mod:`dbnb.frames.read` /
:mod:`dbnb.frames.aread` (``to_dask``: to :mod:`dbnb.orm.dask_frames`), or the frame to
:mod:`dbnb.frames.write`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from dbnb.errors import FilterError

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd
    import polars as pl
    import pyarrow as pa
    from sqlalchemy import Select, Table
    from sqlalchemy.engine import URL
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session

    from dbnb.engine.remote import WorkerConnection
    from dbnb.engine.replicas import Use
    from dbnb.frames.columns import Backend, DtypeBackend, JsonAs, UuidAs
    from dbnb.frames.partitions import OrderKey
    from dbnb.frames.write import OnConflict
    from dbnb.orm.filters import OrderBy
    from dbnb.orm.statements import Statements

__all__ = ["AsyncFrameMethods", "FrameMethods"]

M = TypeVar("M")
# Partitioned reads share a PostgreSQL snapshot (pg_export_snapshot) between connections.
_ONE_STREAM = "read in one stream (leave partitions unset); it is the generic cursor read there"
_NO_DASK = ("read with to_frame() and hand the frame to dask.dataframe.from_pandas(); to_dask()'s "
            "partitions are PostgreSQL COPY reads")


class _DaskPlanning(Generic[M]):
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


class FrameMethods(_DaskPlanning[M]):
    """DataFrames in and out of one model's table, on psycopg (part of ``Repository``)."""

    model: type[M]
    _q: Statements[M]

    def _session(self, *, read: bool = False, use: Use = None) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def to_frame(
        self,
        *where: Any,
        columns: Sequence[str] | None = None,
        order_by: OrderBy = None,
        limit: int | None = None,
        offset: int | None = None,
        dtype_backend: DtypeBackend = None,
        decimal: bool = False,
        uuid_as: UuidAs = "string",
        json_as: JsonAs = "object",
        partitions: int | None = None,
        use: Use = None,
        **lookups: Any,
    ) -> pd.DataFrame:
        """SELECT the matching rows into a DataFrame through COPY, dtypes from the column types.

        Same filters and soft-delete visibility as :meth:`list`; ``columns`` picks columns by
        name. Without ``order_by`` (or ``limit``/``offset``) rows come in the server's order.
        dtypes follow the table in :mod:`dbnb.frames.dtypes` (``dtype_backend="pyarrow"``,
        ``decimal=True``, ``uuid_as="uuid"`` and ``json_as="string"`` change them); an empty
        result keeps them.

        ``partitions=N`` reads in N streams on N more connections that share one snapshot (the
        rows are still those of one query at one moment): ranges of pages, or of the first
        ``order_by`` column (which must then be a column of the table); not with ``limit`` or
        ``offset``. See :mod:`dbnb.frames.parallel` for when it reads one stream anyway.

        Bound to a Database with read replicas, the read goes to one of them (its partitions
        too); ``use="primary"`` reads the primary.

        Example::

            df = users.to_frame(is_active=True, age__gte=30,
                                columns=["email", "age", "created_at"], order_by="email")
        """
        frame: pd.DataFrame = self._read(
            where, lookups, columns, order_by, limit, offset, partitions, use,
            {"dtype_backend": dtype_backend, "decimal": decimal, "uuid_as": uuid_as,
             "json_as": json_as},
        )
        return frame

    def to_arrow(
        self,
        *where: Any,
        columns: Sequence[str] | None = None,
        order_by: OrderBy = None,
        limit: int | None = None,
        offset: int | None = None,
        decimal: bool = False,
        uuid_as: UuidAs = "string",
        json_as: JsonAs = "object",
        partitions: int | None = None,
        use: Use = None,
        **lookups: Any,
    ) -> pa.Table:
        """SELECT the matching rows into a ``pyarrow.Table`` through COPY, no pandas involved.

        Same filters, ordering and partitions as :meth:`to_frame`; the Arrow types follow the
        table in :mod:`dbnb.frames.dtypes` (``numeric(p, s)`` is ``decimal128(p, s)``,
        ``timestamptz`` ``timestamp[us, tz=UTC]``, JSON Arrow's ``json`` type or, with
        ``json_as="string"``, text; ``uuid_as="uuid"`` gives Arrow's ``uuid`` type).

        Example::

            table = users.to_arrow(age__gte=30)
        """
        table: pa.Table = self._read(
            where, lookups, columns, order_by, limit, offset, partitions, use,
            {"decimal": decimal, "uuid_as": uuid_as, "json_as": json_as, "backend": "arrow"},
        )
        return table

    def to_polars(
        self,
        *where: Any,
        columns: Sequence[str] | None = None,
        order_by: OrderBy = None,
        limit: int | None = None,
        offset: int | None = None,
        decimal: bool = False,
        partitions: int | None = None,
        use: Use = None,
        **lookups: Any,
    ) -> pl.DataFrame:
        """SELECT the matching rows into a polars DataFrame (from Arrow, no pandas involved).

        Same filters, ordering and partitions as :meth:`to_frame`; the types are those of
        :meth:`to_arrow` as polars holds them (see :mod:`dbnb.frames.dtypes`: JSON is its text,
        ``pl.col(c).str.json_decode()`` parses it; an interval is a struct of months, days and
        nanoseconds). Needs ``pip install 'dbnb[polars]'``.

        Example::

            df = users.to_polars(order_by="email")
        """
        frame: pl.DataFrame = self._read(
            where, lookups, columns, order_by, limit, offset, partitions, use,
            {"decimal": decimal, "backend": "polars"},
        )
        return frame

    def _read(
        self,
        where: tuple[Any, ...],
        lookups: dict[str, Any],
        columns: Sequence[str] | None,
        order_by: OrderBy,
        limit: int | None,
        offset: int | None,
        partitions: int | None,
        use: Use,
        options: dict[str, Any],
    ) -> Any:
        from dbnb.frames.columns import options_of
        from dbnb.frames.partitions import check_partitions

        options = options_of(**options)  # before anything is sent
        streams = check_partitions(partitions, limit=limit, offset=offset)
        stmt = self._q.frame(where, lookups, columns=columns, order_by=order_by,
                            limit=limit, offset=offset)
        if streams > 1:
            self._q.caps.require("to_frame(partitions=N)", _ONE_STREAM)
        with self._session(read=True, use=use) as s:
            if streams > 1:
                from dbnb.frames import parallel

                table, key = self._q.partitioning(order_by)
                return parallel.read_partitioned(s, stmt, table, streams, key=key, **options)
            from dbnb.frames import read

            return read.read_frame(s, stmt, **options)

    def to_dask(
        self,
        *where: Any,
        partitions: int = 16,
        partition_on: str | None = None,
        columns: Sequence[str] | None = None,
        order_by: OrderBy = None,
        dtype_backend: DtypeBackend = None,
        decimal: bool = False,
        uuid_as: UuidAs = "string",
        json_as: JsonAs = "object",
        use: Use = None,
        **lookups: Any,
    ) -> dd.DataFrame:
        """A dask DataFrame of the matching rows: ``partitions`` COPY reads that run on workers.

        Planned here, read when computed: the server describes the query once and ``meta``
        comes from dbnb's dtype rules (the same dtypes as :meth:`to_frame`; no partition is
        read to guess them). Filters, ``columns`` and soft-delete visibility as in
        :meth:`to_frame`. The rows are cut into ranges of ``partition_on`` (or of the first
        ``order_by`` column) at the table's statistics, else into ranges of pages (``ctid``).
        Each task connects from its worker with the worker's own credentials (no password is
        in the graph; see :mod:`dbnb.dask`) and reads when it runs, so partitions are not one
        snapshot. With read replicas the partitions take turns on them.

        Example::

            ddf = events.to_dask(partitions=16, kind__in=["click", "view"])
            ddf.groupby("kind").amount.sum().compute()
        """
        from dbnb.orm import dask_frames

        dask_frames.require_dask()
        stmt, table, key, options = self._dask_read(
            where, lookups, partitions, partition_on, columns, order_by,
            dtype_backend, decimal, uuid_as, json_as,
        )
        from dbnb.frames import parallel

        with self._session(read=True, use=use) as s:
            parts = parallel.cut(s, stmt, table, partitions, key)
            read = parallel.plan_reads(s, parts, **options)
            first = s.connection().engine.url
        nodes = [first]
        for _ in range(1, min(len(parts), self._read_nodes())):
            with self._session(read=True, use=use) as s:
                nodes.append(s.connection().engine.url)
        return dask_frames.collection(read, self._workers(nodes))

    def iter_frames(
        self,
        *where: Any,
        chunksize: int = 100_000,
        columns: Sequence[str] | None = None,
        order_by: OrderBy = None,
        dtype_backend: DtypeBackend = None,
        decimal: bool = False,
        uuid_as: UuidAs = "string",
        json_as: JsonAs = "object",
        backend: Backend = "pandas",
        progress: bool | None = None,
        use: Use = None,
        **lookups: Any,
    ) -> Iterator[Any]:
        """Yield the matching rows as frames of ``chunksize`` rows, in bounded memory.

        A streamed COPY inside a SAVEPOINT; breaking out early cancels it. Filters and dtypes
        as in :meth:`to_frame`; a progress bar shows in interactive use past 100,000 rows.
        ``backend="polars"`` yields polars DataFrames, ``"arrow"`` ``pyarrow.Table`` s, with the
        types of :meth:`to_polars` / :meth:`to_arrow`.

        Example::

            for chunk in events.iter_frames(chunksize=100_000):
                totals.append(chunk.groupby("kind").size())
            for batch in events.iter_frames(chunksize=100_000, backend="polars"): ...
        """
        stmt = self._q.frame(where, lookups, columns=columns, order_by=order_by,
                            limit=None, offset=None)
        from dbnb.frames import read

        with self._session(read=True, use=use) as s:
            yield from read.iter_frames(
                s, stmt, chunksize=chunksize, dtype_backend=dtype_backend, decimal=decimal,
                uuid_as=uuid_as, json_as=json_as, backend=backend, progress=progress,
            )

    def from_frame(
        self,
        frame: pd.DataFrame | pl.DataFrame | pa.Table,
        *,
        on_conflict: OnConflict = None,
        on: Sequence[str] | None = None,
        naive_as: str | None = None,
        progress: bool | None = None,
    ) -> int:
        """Load a pandas or polars DataFrame (or ``pyarrow.Table``) through COPY; return rows.

        One SAVEPOINT: all rows or none. polars and Arrow input is checked and converted as
        Arrow, never through pandas.

        Columns are checked before anything is sent (unknown ones and missing NOT NULL ones
        are :class:`~dbnb.FrameError`); NaN/NaT/None/pd.NA become NULL; absent columns get
        their defaults (ids, timestamps). ``on_conflict="update"`` or ``"ignore"`` upserts on
        ``on`` (default: the primary key). Naive datetimes into timestamptz need ``naive_as``.

        Example::

            n = products.from_frame(df, on_conflict="update", on=["sku"])
        """
        from dbnb.frames import write

        with self._session() as s:
            return write.write_frame(
                s, self.model, frame, on_conflict=on_conflict,
                on=list(on) if on is not None else None, naive_as=naive_as, progress=progress,
            )


class AsyncFrameMethods(_DaskPlanning[M]):
    """DataFrames in and out of one model's table, on asyncpg (part of ``AsyncRepository``)."""

    model: type[M]
    _q: Statements[M]

    def _session(
        self, *, read: bool = False, use: Use = None
    ) -> AbstractAsyncContextManager[AsyncSession]:
        raise NotImplementedError

    async def to_frame(
        self,
        *where: Any,
        columns: Sequence[str] | None = None,
        order_by: OrderBy = None,
        limit: int | None = None,
        offset: int | None = None,
        dtype_backend: DtypeBackend = None,
        decimal: bool = False,
        uuid_as: UuidAs = "string",
        json_as: JsonAs = "object",
        partitions: int | None = None,
        use: Use = None,
        **lookups: Any,
    ) -> pd.DataFrame:
        """Await :meth:`Repository.to_frame` (asyncpg COPY; partitions on several connections)."""
        frame: pd.DataFrame = await self._read(
            where, lookups, columns, order_by, limit, offset, partitions, use,
            {"dtype_backend": dtype_backend, "decimal": decimal, "uuid_as": uuid_as,
             "json_as": json_as},
        )
        return frame

    async def to_arrow(
        self,
        *where: Any,
        columns: Sequence[str] | None = None,
        order_by: OrderBy = None,
        limit: int | None = None,
        offset: int | None = None,
        decimal: bool = False,
        uuid_as: UuidAs = "string",
        json_as: JsonAs = "object",
        partitions: int | None = None,
        use: Use = None,
        **lookups: Any,
    ) -> pa.Table:
        """Await :meth:`Repository.to_arrow` (asyncpg COPY into a ``pyarrow.Table``)."""
        table: pa.Table = await self._read(
            where, lookups, columns, order_by, limit, offset, partitions, use,
            {"decimal": decimal, "uuid_as": uuid_as, "json_as": json_as, "backend": "arrow"},
        )
        return table

    async def to_polars(
        self,
        *where: Any,
        columns: Sequence[str] | None = None,
        order_by: OrderBy = None,
        limit: int | None = None,
        offset: int | None = None,
        decimal: bool = False,
        partitions: int | None = None,
        use: Use = None,
        **lookups: Any,
    ) -> pl.DataFrame:
        """Await :meth:`Repository.to_polars` (asyncpg COPY, then polars from Arrow)."""
        frame: pl.DataFrame = await self._read(
            where, lookups, columns, order_by, limit, offset, partitions, use,
            {"decimal": decimal, "backend": "polars"},
        )
        return frame

    async def _read(
        self,
        where: tuple[Any, ...],
        lookups: dict[str, Any],
        columns: Sequence[str] | None,
        order_by: OrderBy,
        limit: int | None,
        offset: int | None,
        partitions: int | None,
        use: Use,
        options: dict[str, Any],
    ) -> Any:
        from dbnb.frames.columns import options_of
        from dbnb.frames.partitions import check_partitions

        options = options_of(**options)  # before anything is sent
        streams = check_partitions(partitions, limit=limit, offset=offset)
        stmt = self._q.frame(where, lookups, columns=columns, order_by=order_by,
                            limit=limit, offset=offset)
        if streams > 1:
            self._q.caps.require("to_frame(partitions=N)", _ONE_STREAM)
        async with self._session(read=True, use=use) as s:
            if streams > 1:
                from dbnb.frames import aparallel

                table, key = self._q.partitioning(order_by)
                return await aparallel.aread_partitioned(
                    s, stmt, table, streams, key=key, **options
                )
            from dbnb.frames import aread

            return await aread.aread_frame(s, stmt, **options)

    async def to_dask(
        self,
        *where: Any,
        partitions: int = 16,
        partition_on: str | None = None,
        columns: Sequence[str] | None = None,
        order_by: OrderBy = None,
        dtype_backend: DtypeBackend = None,
        decimal: bool = False,
        uuid_as: UuidAs = "string",
        json_as: JsonAs = "object",
        use: Use = None,
        **lookups: Any,
    ) -> dd.DataFrame:
        """Await :meth:`Repository.to_dask` (planned on asyncpg; the workers read on psycopg)."""
        from dbnb.orm import dask_frames

        dask_frames.require_dask()
        stmt, table, key, options = self._dask_read(
            where, lookups, partitions, partition_on, columns, order_by,
            dtype_backend, decimal, uuid_as, json_as,
        )
        from dbnb.frames import aparallel

        async with self._session(read=True, use=use) as s:
            parts = await aparallel.acut(s, stmt, table, partitions, key)
            read = await aparallel.aplan_reads(s, parts, **options)
            first = (await s.connection()).engine.url
        nodes = [first]
        for _ in range(1, min(len(parts), self._read_nodes())):
            async with self._session(read=True, use=use) as s:
                nodes.append((await s.connection()).engine.url)
        return dask_frames.collection(read, self._workers(nodes))

    async def iter_frames(
        self,
        *where: Any,
        chunksize: int = 100_000,
        columns: Sequence[str] | None = None,
        order_by: OrderBy = None,
        dtype_backend: DtypeBackend = None,
        decimal: bool = False,
        uuid_as: UuidAs = "string",
        json_as: JsonAs = "object",
        backend: Backend = "pandas",
        progress: bool | None = None,
        use: Use = None,
        **lookups: Any,
    ) -> AsyncIterator[Any]:
        """Iterate :meth:`Repository.iter_frames` with ``async for``."""
        stmt = self._q.frame(where, lookups, columns=columns, order_by=order_by,
                            limit=None, offset=None)
        from dbnb.frames import aread

        async with self._session(read=True, use=use) as s:
            async for frame in aread.aiter_frames(
                s, stmt, chunksize=chunksize, dtype_backend=dtype_backend, decimal=decimal,
                uuid_as=uuid_as, json_as=json_as, backend=backend, progress=progress,
            ):
                yield frame

    async def from_frame(
        self,
        frame: pd.DataFrame | pl.DataFrame | pa.Table,
        *,
        on_conflict: OnConflict = None,
        on: Sequence[str] | None = None,
        naive_as: str | None = None,
        progress: bool | None = None,
    ) -> int:
        """Await :meth:`Repository.from_frame` (asyncpg COPY)."""
        from dbnb.frames import write

        async with self._session() as s:
            return await write.awrite_frame(
                s, self.model, frame, on_conflict=on_conflict,
                on=list(on) if on is not None else None, naive_as=naive_as, progress=progress,
            )
