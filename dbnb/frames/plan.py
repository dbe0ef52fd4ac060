"""A read plan: what the COPY sends for a result, how pyarrow parses it, what comes out.

IO-free. :class:`ReadPlan` is built from the server's description of a result and the read's
options (the rules in :mod:`dbnb.frames.dtypes`). It gives the query to COPY (the statement
itself, or wrapped when a column travels as other SQL), parses ``COPY ... (FORMAT csv)`` bytes
into Arrow with every type fixed up front, decodes them into one Arrow column per result
column (the internal currency: what partitioned and streamed reads concatenate), and turns
that into the DataFrame.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.csv as pacsv

from dbnb.errors import FrameError
from dbnb.frames.columns import Backend, DtypeBackend, JsonAs, ResultColumn, UuidAs
from dbnb.frames.dtypes import Rule, rule_for

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Frame", "ReadPlan", "cached_plan"]

#: What a read returns, by its backend: a pandas DataFrame, a ``pyarrow.Table`` or a polars
#: DataFrame (typed loosely here: pandas and polars are imported only by the reads that use them).
Frame = Any


class ReadPlan:
    """How to send, parse and convert one result: wires, Arrow types, final dtypes.

    Build it from the server's description of the result; :meth:`copy_query` is what to COPY,
    :meth:`parse` turns CSV bytes into a *wire* table, :meth:`decode` wire tables into the
    result's Arrow table and :meth:`finish` that into the frame of the read's backend (pandas,
    Arrow or polars; :meth:`frame` and :meth:`combine` do all three; :meth:`empty` is the
    zero-row frame with the same types).
    """

    def __init__(
        self,
        columns: list[ResultColumn],
        *,
        dtype_backend: DtypeBackend = None,
        decimal: bool = False,
        uuid_as: UuidAs = "string",
        json_as: JsonAs = "object",
        backend: Backend = "pandas",
    ) -> None:
        from dbnb.frames.columns import options_of

        options_of(dtype_backend, decimal, uuid_as, json_as, backend)  # raises on bad values
        self.columns = columns
        self.dtype_backend = dtype_backend
        self.output: Backend = backend
        self.rules: list[Rule] = [
            rule_for(c, dtype_backend, decimal=decimal, uuid_as=uuid_as, json_as=json_as,
                     output=backend)
            for c in columns
        ]
        self._labels: pd.Index[Any] | None = None
        # Positional names: a result may repeat a column name, Arrow tables should not.
        self._keys = [f"c{i}" for i in range(len(columns))]
        self._wire_keys: list[list[str]] = []
        types: dict[str, pa.DataType] = {}
        for i, rule in enumerate(self.rules):
            keys = [f"w{i}_{j}" for j in range(len(rule.wires))]
            self._wire_keys.append(keys)
            types.update({k: w.parse for k, w in zip(keys, rule.wires, strict=True)})
        names = list(types)
        self.read_options = pacsv.ReadOptions(column_names=names, block_size=1 << 24)
        self._serial_options = pacsv.ReadOptions(
            column_names=names, block_size=1 << 20, use_threads=False
        )
        self.convert_options = pacsv.ConvertOptions(
            column_types=types,
            true_values=["t"],
            false_values=["f"],
            # PostgreSQL's CSV writes NULL as an unquoted empty field and '' as "".
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        )

    @property
    def names(self) -> list[str]:
        """The result's column names, in order."""
        return [c.name for c in self.columns]

    def copy_query(self, sql: str, *, wraps_cleanly: bool = True) -> str:
        """The query to COPY: ``sql`` itself, or wrapped when a column travels as other SQL.

        The statement becomes a subquery, or a CTE when it may not sit in one
        (``wraps_cleanly=False``: INSERT ... RETURNING, a data-modifying WITH).
        """
        exprs = [
            w.sql.format(c=f"q.{key}")
            for key, rule in zip(self._keys, self.rules, strict=True)
            for w in rule.wires
        ]
        if all(w.sql == "{c}" for rule in self.rules for w in rule.wires):
            return sql
        names = ", ".join(self._keys)
        if wraps_cleanly:
            return f"SELECT {', '.join(exprs)} FROM ({sql}\n) AS q({names})"
        return f"WITH q({names}) AS ({sql}\n) SELECT {', '.join(exprs)} FROM q"

    def parse(self, data: bytes | bytearray | pa.Buffer, *, threads: bool = True) -> pa.Table:
        """Parse CSV bytes (whole rows) into the wire table, every column's type fixed.

        ``threads=False`` parses on the calling thread only: slower for one big result, but
        it keeps a streaming read's working memory small.
        """
        if len(data) == 0:
            return self._empty_wires()
        source = pa.BufferReader(data)
        try:
            if threads and len(data) >= self._serial_options.block_size:
                return pacsv.read_csv(
                    source, read_options=self.read_options, convert_options=self.convert_options
                )
            # The streaming reader: a quarter of read_csv's fixed cost on a small result.
            return pacsv.open_csv(
                source, read_options=self._serial_options, convert_options=self.convert_options
            ).read_all()
        except pa.ArrowInvalid as exc:
            raise FrameError(f"could not parse the result as its column types: {exc}") from exc

    def parse_streamed(self, data: bytes | bytearray | pa.Buffer) -> pa.Table:
        """Parse a block of a stream on this thread alone, then hand freed memory back.

        Arrow's allocator keeps each thread's freed pages; a stream's parse thread lives as
        long as the stream, so it gives them back after every block.
        """
        table = self.parse(data, threads=False)
        pa.default_memory_pool().release_unused()
        return table

    def _empty_wires(self) -> pa.Table:
        arrays = [pa.array([], type=w.parse) for rule in self.rules for w in rule.wires]
        return pa.table(arrays, names=[k for keys in self._wire_keys for k in keys])

    def decode(self, wires: pa.Table) -> pa.Table:
        """Turn a wire table (from :meth:`parse`, or several concatenated) into the result's.

        One Arrow column per result column, named ``c0``, ``c1``... (a result may repeat a
        name); JSON stays text here, to be parsed by :meth:`finish`.
        """
        arrays = []
        for rule, keys in zip(self.rules, self._wire_keys, strict=True):
            parts = [wires.column(k) for k in keys]
            arrays.append(parts[0] if rule.decode is None else rule.decode(parts))
        return pa.table(arrays, names=self._keys)

    def finish(self, table: pa.Table, *, threads: bool = True) -> Frame:
        """Convert a decoded table (from :meth:`decode`) into the result's frame.

        A pandas DataFrame (or, for the ``arrow`` / ``polars`` backends, the table itself or
        a polars DataFrame: :mod:`dbnb.frames.outputs`). pandas columns are converted one at a
        time (:mod:`dbnb.frames.topandas`); the Arrow memory of each is released as soon as it
        is converted when nothing else holds the table. ``threads`` is kept for the callers'
        symmetry: conversion runs on the calling thread.
        """
        columns: list[pa.ChunkedArray | None] = list(table.columns)
        del table
        return self._convert(columns)

    def _convert(self, columns: list[pa.ChunkedArray | None]) -> Frame:
        if self.output != "pandas":
            from dbnb.frames.outputs import arrow_table, polars_frame

            table = arrow_table(columns, self.names)
            return table if self.output == "arrow" else polars_frame(table)
        from dbnb.frames.topandas import to_frame

        finished: dict[int, Any] = {}
        for i, rule in enumerate(self.rules):
            column = columns[i]
            if rule.finish is not None and column is not None:
                columns[i] = None
                finished[i] = rule.finish(column)
        rows = next((len(c) for c in columns if c is not None), None)
        if rows is None:
            rows = len(next(iter(finished.values()))) if finished else 0
        return to_frame(columns, self._index(), rows, self.dtype_backend, finished)

    def _index(self) -> pd.Index[Any]:
        """The frame's column labels (built once: every frame of this plan shares them)."""
        import pandas as pd

        if self._labels is None:
            self._labels = pd.Index(self.names)
        return self._labels

    def frame(self, data: bytes | bytearray) -> Frame:
        """Parse CSV bytes and convert them: the whole result as one frame."""
        return self.combine([self.parse(data)])

    def combine(self, tables: list[pa.Table]) -> Frame:
        """Convert parsed wire blocks (from :meth:`parse`, in order) into one frame.

        The list is emptied: the frame is built while the blocks' memory is released.
        """
        if not tables:
            return self.empty()
        wires = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        tables.clear()
        columns: list[pa.ChunkedArray | None] = list(self.decode(wires).columns)
        del wires
        return self._convert(columns)

    def empty(self) -> Frame:
        """The zero-row frame with this result's columns and types."""
        return self.finish(self.decode(self._empty_wires()))


@functools.lru_cache(maxsize=256)
def cached_plan(
    columns: tuple[ResultColumn, ...], options: tuple[tuple[str, Any], ...]
) -> ReadPlan:
    """The plan for a described result, shared by the reads of the same columns and options.

    A plan is immutable once built, and building one (rules, Arrow options) costs about as
    much as parsing a small result: a notebook re-running its queries pays it once.
    """
    return ReadPlan(list(columns), **dict(options))
