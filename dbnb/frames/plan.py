"""A read plan: what the COPY sends for a result, how pyarrow parses it, what comes out.

IO-free. :class:`ReadPlan` is built from the server's description of a result and the read's
options (the rules in :mod:`dbnb.frames.dtypes`). It gives the query to COPY (the statement
itself, or wrapped when a column travels as other SQL), parses ``COPY ... (FORMAT csv)`` bytes
into Arrow with every type fixed up front, decodes them into one Arrow column per result
column (the internal currency: what partitioned and streamed reads concatenate), and turns
that into the DataFrame.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.csv as pacsv

from dbnb.errors import FrameError
from dbnb.frames.columns import DtypeBackend, JsonAs, ResultColumn, UuidAs
from dbnb.frames.dtypes import Rule, rule_for

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ReadPlan"]


def _types_mapper(backend: DtypeBackend) -> Callable[[pa.DataType], Any]:
    import pandas as pd

    if backend == "pyarrow":
        return pd.ArrowDtype
    nullable: dict[pa.DataType, Any] = {
        pa.int16(): pd.Int16Dtype(),
        pa.int32(): pd.Int32Dtype(),
        pa.int64(): pd.Int64Dtype(),
        pa.bool_(): pd.BooleanDtype(),
        pa.large_string(): pd.StringDtype("pyarrow"),
    }
    return nullable.get


class ReadPlan:
    """How to send, parse and convert one result: wires, Arrow types, final dtypes.

    Build it from the server's description of the result; :meth:`copy_query` is what to COPY,
    :meth:`parse` turns CSV bytes into a *wire* table, :meth:`decode` wire tables into the
    result's Arrow table and :meth:`to_pandas` that into the DataFrame (:meth:`frame` and
    :meth:`combine` do all three; :meth:`empty` is the zero-row frame with the same dtypes).
    """

    def __init__(
        self,
        columns: list[ResultColumn],
        *,
        dtype_backend: DtypeBackend = None,
        decimal: bool = False,
        uuid_as: UuidAs = "string",
        json_as: JsonAs = "object",
    ) -> None:
        from dbnb.frames.columns import options_of

        options_of(dtype_backend, decimal, uuid_as, json_as)  # raises on unknown values
        self.columns = columns
        self.backend = dtype_backend
        self.rules: list[Rule] = [
            rule_for(c, dtype_backend, decimal=decimal, uuid_as=uuid_as, json_as=json_as)
            for c in columns
        ]
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

    def parse(self, data: bytes | bytearray, *, threads: bool = True) -> pa.Table:
        """Parse CSV bytes (whole rows) into the wire table, every column's type fixed.

        ``threads=False`` parses on the calling thread only: slower for one big result, but
        it keeps a streaming read's working memory small.
        """
        if len(data) == 0:
            return self._empty_wires()
        options = self.read_options if threads else self._serial_options
        try:
            return pacsv.read_csv(
                pa.BufferReader(data), read_options=options, convert_options=self.convert_options
            )
        except pa.ArrowInvalid as exc:
            raise FrameError(f"could not parse the result as its column types: {exc}") from exc

    def _empty_wires(self) -> pa.Table:
        arrays = [pa.array([], type=w.parse) for rule in self.rules for w in rule.wires]
        return pa.table(arrays, names=[k for keys in self._wire_keys for k in keys])

    def decode(self, wires: pa.Table) -> pa.Table:
        """Turn a wire table (from :meth:`parse`, or several concatenated) into the result's.

        One Arrow column per result column, named ``c0``, ``c1``... (a result may repeat a
        name); JSON stays text here, to be parsed by :meth:`to_pandas`.
        """
        arrays = []
        for rule, keys in zip(self.rules, self._wire_keys, strict=True):
            parts = [wires.column(k) for k in keys]
            arrays.append(parts[0] if rule.decode is None else rule.decode(parts))
        return pa.table(arrays, names=self._keys)

    def to_pandas(self, table: pa.Table, *, threads: bool = True) -> pd.DataFrame:
        """Convert a decoded table (from :meth:`decode`) into the DataFrame.

        The table is consumed: each column's Arrow memory is released once it is converted
        (pyarrow's ``self_destruct``), so the conversion does not hold two copies.
        ``threads=False`` converts on the calling thread only (see :class:`CsvChunker`).
        """
        import pandas as pd

        finished = {
            self._keys[i]: rule.finish(table.column(i))
            for i, rule in enumerate(self.rules)
            if rule.finish is not None
        }
        if finished:
            table = table.drop_columns(list(finished))
        frame = table.to_pandas(
            types_mapper=_types_mapper(self.backend),
            date_as_object=False,
            split_blocks=True,
            self_destruct=True,
            use_threads=threads,
        )
        del table
        if finished:
            parts = {k: finished[k] if k in finished else frame[k] for k in self._keys}
            frame = pd.DataFrame(parts, copy=False)
        frame.columns = pd.Index(self.names)
        result: pd.DataFrame = frame
        return result

    def frame(self, data: bytes | bytearray) -> pd.DataFrame:
        """Parse CSV bytes and convert them: the whole result as one DataFrame."""
        return self.to_pandas(self.decode(self.parse(data)))

    def combine(self, tables: list[pa.Table]) -> pd.DataFrame:
        """Convert parsed wire blocks (from :meth:`parse`, in order) into one DataFrame."""
        if not tables:
            return self.empty()
        wires = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        del tables
        return self.to_pandas(self.decode(wires))

    def empty(self) -> pd.DataFrame:
        """The zero-row DataFrame with this result's columns and dtypes."""
        return self.to_pandas(self.decode(self._empty_wires()))
