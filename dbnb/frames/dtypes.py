"""Result columns -> pandas DataFrame, with dtypes taken from PostgreSQL's column types.

IO-free: :mod:`dbnb.frames.read` runs ``COPY (query) TO STDOUT (FORMAT csv)`` and hands the bytes
here; pyarrow parses them with every column's type fixed up front (nothing is guessed from the
values), and the Arrow table becomes a DataFrame through the rule table below.

========================  ==================================  ===============================
PostgreSQL                default dtype                       ``dtype_backend="pyarrow"``
========================  ==================================  ===============================
smallint/integer/bigint   ``Int16`` / ``Int32`` / ``Int64``   ``int16/32/64[pyarrow]``
real / double precision   ``float32`` / ``float64``           ``double[pyarrow]``
numeric(p,s)              ``float64``; ``decimal=True``:      ``decimal128(p, s)[pyarrow]``
                          ``object`` of ``Decimal``
boolean                   ``boolean``                         ``bool[pyarrow]``
text / varchar / char     ``string`` (Arrow-backed)           ``string[pyarrow]``
timestamptz               ``datetime64[us, UTC]``             ``timestamp[us, tz=UTC][pyarrow]``
timestamp                 ``datetime64[us]``                  ``timestamp[us][pyarrow]``
date                      ``datetime64[s]``                   ``date32[day][pyarrow]``
uuid                      ``string``; ``uuid_as="uuid"``:     ``string[pyarrow]``
                          ``object`` of ``UUID``
json / jsonb              ``object`` (parsed values)          ``object``
arrays                    ``object`` (lists)                  ``list<...>[pyarrow]``
anything else             ``string`` (PostgreSQL's text)      ``string[pyarrow]``
========================  ==================================  ===============================

Dates are ``datetime64[s]`` rather than objects of ``date``: vectorised, ``.dt``-capable, and
wide enough for any PostgreSQL date. A ``numeric`` without a declared precision has no
``decimal128`` type, so with the pyarrow backend it is ``double[pyarrow]`` (``object`` of
``Decimal`` with ``decimal=True``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.csv as pacsv

from dbnb.errors import FrameError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ARRAY_OIDS",
    "DtypeBackend",
    "ReadPlan",
    "ResultColumn",
    "UuidAs",
]

DtypeBackend = Literal["pyarrow"] | None
UuidAs = Literal["string", "uuid"]

# PostgreSQL type OIDs (pg_type.oid; fixed for built-in types).
# Types not named here (text, varchar, char, interval, enums...) arrive as PostgreSQL's text.
_BOOL, _INT8, _INT2, _INT4, _JSON, _FLOAT4, _FLOAT8 = 16, 20, 21, 23, 114, 700, 701
_DATE, _TIMESTAMP, _TIMESTAMPTZ, _NUMERIC, _UUID, _JSONB = 1082, 1114, 1184, 1700, 2950, 3802

_INTEGERS = {_INT2: pa.int16(), _INT4: pa.int32(), _INT8: pa.int64()}
# Array type OID -> element type when the list can be typed in Arrow, else None (stays object).
ARRAY_OIDS: dict[int, pa.DataType | None] = {
    1000: pa.bool_(), 1005: pa.int16(), 1007: pa.int32(), 1016: pa.int64(),
    1021: pa.float32(), 1022: pa.float64(), 1009: pa.string(), 1015: pa.string(),
    1014: pa.string(), 2951: pa.string(), 1231: None, 1115: None, 1185: None, 1182: None,
    199: None, 3807: None,
}
_MAX_DECIMAL128_PRECISION = 38


@dataclass(frozen=True)
class ResultColumn:
    """One column of a result, as the server describes it (name, type OID, numeric typmod)."""

    name: str
    oid: int
    precision: int | None = None
    scale: int | None = None


@dataclass(frozen=True)
class _Rule:
    parse: pa.DataType  # the Arrow type pyarrow's CSV reader produces for this column
    finish: Callable[[pa.ChunkedArray], Any] | None = None  # None: the table-wide mapping


def _rule(col: ResultColumn, backend: DtypeBackend, decimal: bool, uuid_as: UuidAs) -> _Rule:
    arrow = backend == "pyarrow"
    oid = col.oid
    if oid in _INTEGERS:
        return _Rule(_INTEGERS[oid])
    if oid == _FLOAT4:
        return _Rule(pa.float64() if arrow else pa.float32())
    if oid == _FLOAT8:
        return _Rule(pa.float64())
    if oid == _NUMERIC:
        exact = (
            col.precision is not None
            and col.scale is not None
            and 0 < col.precision <= _MAX_DECIMAL128_PRECISION
        )
        if exact and (arrow or decimal):
            return _Rule(pa.decimal128(int(col.precision or 0), int(col.scale or 0)))
        if decimal:
            return _Rule(pa.string(), _decimals)
        return _Rule(pa.float64())
    if oid == _BOOL:
        return _Rule(pa.bool_())
    if oid == _TIMESTAMPTZ:
        return _Rule(pa.timestamp("us", tz="UTC"))
    if oid == _TIMESTAMP:
        return _Rule(pa.timestamp("us"))
    if oid == _DATE:
        return _Rule(pa.date32(), None if arrow else _dates)
    if oid == _UUID and uuid_as == "uuid":
        return _Rule(pa.string(), _uuids)
    if oid in (_JSON, _JSONB):
        return _Rule(pa.string(), _json_values)
    if oid in ARRAY_OIDS:
        element = ARRAY_OIDS[oid]
        if arrow and element is not None:
            return _Rule(pa.string(), _typed_lists(element))
        return _Rule(pa.string(), _json_values)
    # pandas keeps its Arrow-backed `string` in large_string: parsing straight into it spares
    # a copy of every text column (the pyarrow backend keeps Arrow's plain `string`).
    return _Rule(pa.string() if arrow else pa.large_string())


def _objects(values: Iterable[Any]) -> pd.Series[Any]:
    import pandas as pd

    series: pd.Series[Any] = pd.Series(list(values), dtype=object)
    return series


def _decimals(array: pa.ChunkedArray) -> pd.Series[Any]:
    return _objects(None if v is None else Decimal(v) for v in array.to_pylist())


def _uuids(array: pa.ChunkedArray) -> pd.Series[Any]:
    return _objects(None if v is None else uuid.UUID(v) for v in array.to_pylist())


def _json_values(array: pa.ChunkedArray) -> pd.Series[Any]:
    return _objects(None if v is None else json.loads(v) for v in array.to_pylist())


def _dates(array: pa.ChunkedArray) -> pd.Series[Any]:
    series: pd.Series[Any] = array.to_pandas(date_as_object=False).astype("datetime64[s]")
    return series


def _typed_lists(element: pa.DataType) -> Callable[[pa.ChunkedArray], Any]:
    def finish(array: pa.ChunkedArray) -> Any:
        import pandas as pd

        values = [None if v is None else json.loads(v) for v in array.to_pylist()]
        lists = pa.array(values, type=pa.list_(element))
        return pd.Series(pd.arrays.ArrowExtensionArray(lists))

    return finish


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
    """How to parse and convert one result: column names, Arrow parse types, final dtypes.

    Build it from the server's description of the result; then :meth:`frame` turns the
    ``COPY ... (FORMAT csv)`` bytes into a DataFrame and :meth:`empty` gives the zero-row frame
    with the same dtypes.
    """

    def __init__(
        self,
        columns: list[ResultColumn],
        *,
        dtype_backend: DtypeBackend = None,
        decimal: bool = False,
        uuid_as: UuidAs = "string",
    ) -> None:
        if dtype_backend not in (None, "pyarrow"):
            raise FrameError(
                f"dtype_backend={dtype_backend!r} is not supported; use None (dbnb's nullable "
                "dtypes) or 'pyarrow'"
            )
        if uuid_as not in ("string", "uuid"):
            raise FrameError(f"uuid_as={uuid_as!r} is not supported; use 'string' or 'uuid'")
        self.columns = columns
        self.backend = dtype_backend
        self.rules = [_rule(c, dtype_backend, decimal, uuid_as) for c in columns]
        # Positional names: a result may repeat a column name, Arrow tables should not.
        self._keys = [f"c{i}" for i in range(len(columns))]
        self.read_options = pacsv.ReadOptions(column_names=self._keys, block_size=1 << 24)
        self._serial_options = pacsv.ReadOptions(
            column_names=self._keys, block_size=1 << 20, use_threads=False
        )
        self.convert_options = pacsv.ConvertOptions(
            column_types={k: r.parse for k, r in zip(self._keys, self.rules, strict=True)},
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

    def parse(self, data: bytes | bytearray, *, threads: bool = True) -> pa.Table:
        """Parse CSV bytes (whole rows) into an Arrow table with the planned types.

        ``threads=False`` parses on the calling thread only: slower for one big result, but
        it keeps a streaming read's working memory small.
        """
        if len(data) == 0:
            return self._empty_table()
        options = self.read_options if threads else self._serial_options
        try:
            return pacsv.read_csv(
                pa.BufferReader(data), read_options=options, convert_options=self.convert_options
            )
        except pa.ArrowInvalid as exc:
            raise FrameError(f"could not parse the result as its column types: {exc}") from exc

    def _empty_table(self) -> pa.Table:
        return pa.table(
            [pa.array([], type=r.parse) for r in self.rules],
            names=self._keys,
        )

    def to_pandas(self, table: pa.Table, *, threads: bool = True) -> pd.DataFrame:
        """Convert a parsed Arrow table (from :meth:`parse`) into the DataFrame.

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
        frame = table.to_pandas(
            types_mapper=_types_mapper(self.backend),
            date_as_object=False,
            split_blocks=True,
            self_destruct=True,
            use_threads=threads,
        )
        del table
        for key, series in finished.items():
            frame[key] = series
        frame.columns = pd.Index(self.names)
        result: pd.DataFrame = frame
        return result

    def frame(self, data: bytes | bytearray) -> pd.DataFrame:
        """Parse CSV bytes and convert them: the whole result as one DataFrame."""
        return self.to_pandas(self.parse(data))

    def combine(self, tables: list[pa.Table]) -> pd.DataFrame:
        """Convert parsed blocks (from :meth:`parse`, in order) into one DataFrame."""
        if not tables:
            return self.empty()
        return self.to_pandas(tables[0] if len(tables) == 1 else pa.concat_tables(tables))

    def empty(self) -> pd.DataFrame:
        """The zero-row DataFrame with this result's columns and dtypes."""
        return self.to_pandas(self._empty_table())
