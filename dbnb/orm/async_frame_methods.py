"""DataFrame methods of ``AsyncRepository``: the awaitable twins of
:mod:`dbnb.orm.frame_methods`, read and written through asyncpg's COPY (:mod:`dbnb.frames.aread`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd
    import polars as pl
    import pyarrow as pa
    from sqlalchemy.ext.asyncio import AsyncSession

    from dbnb.engine.replicas import Use
    from dbnb.frames.columns import Backend, DtypeBackend, JsonAs, UuidAs
    from dbnb.frames.write import OnConflict
    from dbnb.orm.filters import OrderBy
    from dbnb.orm.statements import Statements

from dbnb.orm.frame_planning import ONE_STREAM, FramePlanning

__all__ = ["AsyncFrameMethods"]

M = TypeVar("M")


class AsyncFrameMethods(FramePlanning[M]):
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
            self._q.caps.require("to_frame(partitions=N)", ONE_STREAM)
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
