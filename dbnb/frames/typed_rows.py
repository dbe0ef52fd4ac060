"""Rows from a DBAPI cursor into a typed DataFrame: the conversion of the generic readers.

IO-free. Each column has a *kind* from the type it was declared with (:func:`kind_of`; see the
table in :mod:`dbnb.frames.generic`), or, for SQL text, from MySQL's column type codes or the
values themselves. The rows become Arrow columns in one pass in C (a struct array, when every
column holds one Python type: a Python ``zip(*rows)`` would cost as much as the fetch),
numbers and times given as text are parsed by Arrow, and the Arrow table is converted once.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import types as sqltypes

from dbnb.errors import FrameError
from dbnb.frames.columns import DtypeBackend

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MYSQL_KINDS", "Column", "frame_of", "kind_of"]


@dataclass(frozen=True)
class Column:
    """One result column: its name and the conversion its declared type asks for."""

    name: str
    kind: str  # int16 int32 int64 float32 float64 numeric bool text ts tstz date uuid json any


def kind_of(type_: Any) -> str:
    t = type_.impl_instance if isinstance(type_, sqltypes.TypeDecorator) else type_
    checks: list[tuple[type[Any], str]] = [
        (sqltypes.Boolean, "bool"),
        (sqltypes.SmallInteger, "int16"),
        (sqltypes.BigInteger, "int64"),
        (sqltypes.Integer, "int32"),
        (sqltypes.REAL, "float32"),
        (sqltypes.Float, "float64"),
        (sqltypes.Numeric, "numeric"),
        (sqltypes.DateTime, "ts"),
        (sqltypes.Date, "date"),
        (sqltypes.Uuid, "uuid"),
        (sqltypes.JSON, "json"),
        (sqltypes.String, "text"),
    ]
    for cls, kind in checks:
        if isinstance(t, cls):
            if kind == "ts" and getattr(t, "timezone", False):
                return "tstz"
            return kind
    return "any"


def _uuid_text(array: pa.Array) -> pa.Array:
    """32 hex digits (how SQLAlchemy keeps a UUID without a native type) -> canonical text."""
    text = pc.utf8_lower(array.cast(pa.string()))
    if pc.all(pc.equal(pc.utf8_length(text), 36), min_count=0).as_py() is not False:
        return text
    parts = [pc.utf8_slice_codeunits(text, a, b) for a, b in
             ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))]
    return pc.binary_join_element_wise(*parts, "-")


# MySQL's column type codes (PyMySQL's FIELD_TYPE) -> kind, for SQL text without declarations.
MYSQL_KINDS = {
    1: "int16", 2: "int16", 3: "int32", 8: "int64", 9: "int32", 13: "int16", 4: "float32",
    5: "float64", 0: "numeric", 246: "numeric", 7: "ts", 12: "ts", 10: "date", 14: "date",
    245: "json", 15: "text", 253: "text", 254: "text", 247: "text", 248: "text",
}
_ARROW: dict[str, pa.DataType] = {
    "int16": pa.int16(), "int32": pa.int32(), "int64": pa.int64(), "float32": pa.float32(),
    "float64": pa.float64(), "numeric": pa.float64(), "bool": pa.bool_(),
    "text": pa.large_string(), "ts": pa.timestamp("us"), "tstz": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(), "uuid": pa.large_string(), "json": pa.large_string(),
}
_STRINGS = (pa.types.is_string, pa.types.is_large_string)


def _arrow(column: Column, values: Sequence[Any] | pa.Array) -> pa.Array:
    """One column's values as Arrow, cast to its kind (numbers and times parsed from text)."""
    kind = column.kind
    try:
        found = values if isinstance(values, pa.Array) else pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        if kind != "any":
            raise FrameError(
                f"column {column.name!r}: its values do not fit its declared type ({kind})"
            ) from None
        return pa.array([None if v is None else str(v) for v in values], pa.large_string())
    if kind == "any":
        return found
    if kind == "uuid":
        return _uuid_text(found if not pa.types.is_null(found.type) else found.cast(pa.string()))
    target = _ARROW[kind]
    try:
        if kind in ("ts", "tstz") and pa.types.is_timestamp(found.type):
            found = found.cast(pa.timestamp("us"))
        elif kind in ("ts", "tstz") and not pa.types.is_null(found.type):
            found = found.cast(pa.string()).cast(pa.timestamp("us"))
        if kind == "tstz":
            return found.cast(pa.timestamp("us")).cast(target)
        if kind == "bool" and any(test(found.type) for test in _STRINGS):
            found = found.cast(pa.int8())
        if kind == "json" and not any(test(found.type) for test in _STRINGS):
            return found  # the driver parsed it already
        return found.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise FrameError(
            f"column {column.name!r}: its values do not fit its declared type ({kind}): {exc}"
        ) from None


def _finish(column: Column, array: pa.ChunkedArray, options: dict[str, Any]) -> Any:
    """Columns that leave Arrow as Python objects: exact decimals, UUIDs, JSON; else None."""
    import pandas as pd

    if column.kind == "uuid" and options["uuid_as"] == "uuid":
        values = [None if v is None else uuid.UUID(v) for v in array.to_pylist()]
    elif (column.kind == "json" and options.get("json_as", "object") == "object"
          and any(test(array.type) for test in _STRINGS)):
        values = [None if v is None else json.loads(v) for v in array.to_pylist()]
    elif column.kind == "date" and options["dtype_backend"] is None:
        return pd.Series(array.to_pandas(date_as_object=False)).astype("datetime64[s]")
    else:
        return None
    return pd.Series(values, dtype=object)


def _mapper(backend: DtypeBackend) -> Callable[[pa.DataType], Any]:
    import pandas as pd

    if backend == "pyarrow":
        return pd.ArrowDtype
    nullable: dict[pa.DataType, Any] = {
        pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype(),
        pa.bool_(): pd.BooleanDtype(), pa.large_string(): pd.StringDtype("pyarrow"),
        pa.string(): pd.StringDtype("pyarrow"),
    }
    return nullable.get


_SAMPLE_TYPES: tuple[tuple[type, pa.DataType], ...] = (
    (bool, pa.bool_()), (int, pa.int64()), (float, pa.float64()), (str, pa.string()),
    (bytes, pa.binary()),
)


def _transposed(rows: list[Any], width: int) -> list[Any]:
    """The rows' columns: Arrow arrays in one C pass when every column holds one Python type.

    ``pa.array`` reads the row tuples as a struct array of the types the first values have (the
    transposition ``zip(*rows)`` costs as much as fetching); a column whose values differ in
    type (SQLite allows it) falls back to tuples of Python values.
    """
    fields = []
    for i in range(width):
        sample = next((row[i] for row in rows if row[i] is not None), None)
        arrow = next((t for cls, t in _SAMPLE_TYPES if type(sample) is cls), None)
        if sample is not None and arrow is None:
            break
        fields.append(pa.field(f"c{i}", arrow or pa.null()))
    else:
        try:
            return list(pa.array(rows, type=pa.struct(fields)).flatten())
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
            pass
    return list(zip(*rows, strict=True))


def _arrow_result(columns: list[Column], arrays: list[pa.Array], backend: str) -> Any:
    """The Arrow columns as they are: a ``pyarrow.Table``, or a polars DataFrame from it."""
    table = pa.table(arrays, names=[c.name for c in columns])
    if backend == "arrow":
        return table
    from dbnb.frames.outputs import polars_frame

    return polars_frame(table)


def frame_of(columns: list[Column], rows: list[Any], options: dict[str, Any]) -> Any:
    """Rows (tuples) into the typed frame: one Arrow table, converted once (pandas), or as it
    is (``backend="arrow"``, or polars from it)."""
    import pandas as pd

    values = _transposed(rows, len(columns)) if rows else [() for _ in columns]
    arrays = []
    exact: dict[str, Any] = {}
    for i, (column, found) in enumerate(zip(columns, values, strict=True)):
        if column.kind == "numeric" and options["decimal"]:
            # From the driver's own values (MySQL's text is exact; SQLite keeps REALs).
            raw = found.to_pylist() if isinstance(found, pa.Array) else found
            exact[f"c{i}"] = pd.Series(
                [None if v is None else Decimal(str(v)) for v in raw], dtype=object
            )
        array = _arrow(column, found)
        if pa.types.is_null(array.type) and column.kind in _ARROW:
            array = array.cast(_ARROW[column.kind])
        if options["dtype_backend"] == "pyarrow" and pa.types.is_large_string(array.type):
            array = array.cast(pa.string())
        arrays.append(array)
    if options.get("backend", "pandas") != "pandas":
        return _arrow_result(columns, arrays, options["backend"])
    keys = [f"c{i}" for i in range(len(columns))]
    table = pa.table(arrays, names=keys) if arrays else pa.table({})
    finished = {k: _finish(c, table.column(k), options) for k, c in zip(keys, columns,
                                                                          strict=True)}
    finished.update(exact)
    frame = table.to_pandas(types_mapper=_mapper(options["dtype_backend"]),
                            date_as_object=False, split_blocks=True, self_destruct=True)
    for key, series in finished.items():
        if series is not None:
            frame[key] = series.to_numpy() if len(series) else series
    frame.columns = pd.Index([c.name for c in columns])
    result: pd.DataFrame = frame
    return result
