"""DataFrame methods of ``Repository``: to_frame, to_arrow, to_polars, to_dask, iter_frames,
from_frame (the async twins are in :mod:`dbnb.orm.async_frame_methods`).

Each method builds the repository's own SELECT (:meth:`~dbnb.orm.queries.Queries.frame`: its
filters, ordering and soft-delete visibility) and hands it to the COPY fast path in
:mod:`dbnb.frames.read` (``to_dask``: to :mod:`dbnb.orm.dask_frames`), or the frame to
:mod:`dbnb.frames.write`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd
    import polars as pl
    import pyarrow as pa
    from sqlalchemy.orm import Session

    from dbnb.engine.replicas import Use
    from dbnb.frames.columns import Backend, DtypeBackend, JsonAs, UuidAs
    from dbnb.frames.write import OnConflict
    from dbnb.orm.filters import OrderBy
    from dbnb.orm.statements import Statements

from dbnb.orm.frame_planning import ONE_STREAM, FramePlanning

__all__ = ["FrameMethods"]

M = TypeVar("M")


class FrameMethods(FramePlanning[M]):
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
            self._q.caps.require("to_frame(partitions=N)", ONE_STREAM)
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
