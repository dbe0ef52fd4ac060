"""The dtype rules: each PostgreSQL column type -> how it travels, is parsed, and what it becomes.

IO-free. A rule says which CSV columns (*wires*) the ``COPY`` sends for a result column (the
column itself, or SQL over it: an interval goes as months, days and microseconds), the Arrow
type pyarrow's CSV reader parses each into (nothing is guessed from the values), how the wires
become one Arrow column (:mod:`dbnb.frames.decode`), and how that column becomes a pandas one.

One table for every backend. pandas: the default dtypes, and ``dtype_backend="pyarrow"``
(each an ``ArrowDtype`` of the type shown); Arrow: ``to_arrow()`` / ``db.arrow()`` /
``backend="arrow"`` (the decoded table itself, no pandas involved); polars: ``to_polars()`` /
``db.polars()`` / ``backend="polars"`` (``pl.from_arrow`` of that table).

===================  ==============================  ===================  ==========================
PostgreSQL           pandas (default)                pandas ``pyarrow``   Arrow / polars
===================  ==============================  ===================  ==========================
smallint/int/bigint  ``Int16/32/64``                 ``int16/32/64``      ``int16/32/64`` /
                                                                          ``Int16/32/64``
real / double        ``float32`` / ``float64``       ``double``           ``float``, ``double`` /
                                                                          ``Float32``, ``Float64``
numeric(p,s), p<=38  ``float64``; ``decimal=True``:  ``decimal128(p,s)``  ``decimal128(p, s)`` /
                     ``Decimal`` objects                                  ``Decimal(p, s)``
numeric, other       ``float64``; ``decimal=True``:  ``double``           ``double``;
                     ``Decimal`` objects                                  ``decimal=True``:
                                                                          its exact text
boolean              ``boolean``                     ``bool``             ``bool`` / ``Boolean``
text/varchar/char    ``string`` (Arrow-backed)       ``string``           ``string`` / ``String``
timestamptz          ``datetime64[us, UTC]``         ``timestamp[us,      ``timestamp[us, tz=UTC]``
                                                     tz=UTC]``            / ``Datetime(us, UTC)``
timestamp            ``datetime64[us]``              ``timestamp[us]``    ``timestamp[us]`` /
                                                                          ``Datetime(us)``
date                 ``datetime64[s]``               ``date32``           ``date32`` / ``Date``
time                 ``datetime.time`` objects       ``time64[us]``       ``time64[us]`` / ``Time``
interval             ``pd.DateOffset`` objects       (as the default)     ``month_day_nano_
                                                                          interval`` / ``Struct{
                                                                          months, days,
                                                                          nanoseconds}``
bytea                ``bytes`` objects               ``binary``           ``binary`` / ``Binary``
uuid                 ``string``; ``uuid_as=          ``string``           ``string`` / ``String``;
                     "uuid"``: ``UUID`` objects                           ``uuid_as="uuid"``:
                                                                          Arrow's ``uuid``
json / jsonb         parsed values; ``json_as=       (as the default)     Arrow's ``json`` (its
                     "string"``: ``string``                               text) / ``String``;
                                                                          ``json_as="string"``:
                                                                          ``string``
arrays of bool,      ``list<...>``                   ``list<...>``        ``list<...>`` / ``List``
numbers, text, uuid
other arrays         lists of JSON values            (as the default)     the JSON text, as json
anything else        ``string`` (the server's        ``string``           ``string`` / ``String``
                     text: inet, ...)
===================  ==============================  ===================  ==========================

The default backend uses pandas' own dtypes where one holds the values exactly, Python objects
where they are the natural value and cheap to make, and Arrow dtypes where neither holds:

- dates are ``datetime64[s]`` rather than objects of ``date``: vectorised, ``.dt``-capable, and
  wide enough for any PostgreSQL date; ``time`` is ``datetime.time`` objects (pandas has no
  time-of-day dtype; ``24:00:00`` has no Python or Arrow value and fails the read);
- an ``interval`` is a ``pd.DateOffset`` in both backends, months, days and nanoseconds kept
  apart (a month is never 30 days), ready for timestamp arithmetic. Arrow's exact type is
  ``month_day_nano_interval`` (what the read decodes to), but pandas 3 cannot display or
  ``describe`` a column of it; a DateOffset takes microseconds to build, so one is made per
  distinct interval and shared;
- arrays of booleans, integers, floats, text and uuids are Arrow lists in both backends (each
  value reads as a Python list, ``NaN`` a float; ``.list`` gives vectorised access; arrays of
  several dimensions are lists of lists); other arrays (numeric, timestamps, json...) are
  Python lists of their JSON values (timestamps as ISO text);
- a ``numeric`` without a declared precision has no ``decimal128`` type, so with the pyarrow
  backend it is ``double[pyarrow]`` (``object`` of ``Decimal`` with ``decimal=True``);
- in JSON, SQL ``NULL`` and JSON ``null`` both read as ``None``; ``json_as="string"`` keeps the
  text (and the difference).

Arrow and polars results keep every type exactly where Arrow has one: ``real`` stays 32-bit,
decimals are ``decimal128``, time zones are kept, arrays are lists (of lists). JSON stays its
text, tagged with Arrow's ``json`` type (documents of mixed shapes have no single struct
type; in polars ``pl.col(c).str.json_decode()`` makes structs of those that share a shape).
polars has no calendar interval, so an interval is a struct of its three exact fields (a
``Duration`` would make a month a number of days), and no UUID type, so uuids are text. One
limit: asyncpg does not tell a ``numeric`` column's declared precision for SQL text (the
columns of a repository's or a SQLAlchemy statement carry it), so there such a column reads as
``double``; ``decimal=True`` reads its exact text.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dbnb.frames import columns as oids
from dbnb.frames import decode
from dbnb.frames.columns import (
    ARRAY_ELEMENTS,
    Backend,
    DtypeBackend,
    JsonAs,
    ResultColumn,
    UuidAs,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Rule", "Wire", "rule_for"]

_INTEGERS = {oids.INT2: pa.int16(), oids.INT4: pa.int32(), oids.INT8: pa.int64()}
_LIST_ELEMENTS = {
    oids.BOOL: pa.bool_(), oids.INT2: pa.int16(), oids.INT4: pa.int32(), oids.INT8: pa.int64(),
    oids.FLOAT4: pa.float32(), oids.FLOAT8: pa.float64(), 25: pa.string(), 1043: pa.string(),
    1042: pa.string(), oids.UUID: pa.string(),
}
_MAX_DECIMAL128_PRECISION = 38
# What the COPY sends instead of the column (``{c}``). JSON values end in a comma, SQL NULL
# as JSON null, so one column's text is one JSON array's body: parsed in one call.
_JSON_ITEM = "coalesce({c}::text, 'null') || ','"
_JSON_ARRAY_ITEM = "coalesce(to_json({c})::text, 'null') || ','"
# Arrays with an Arrow element type: {"v": [...]} objects, one after the other, for pyarrow.json
# (floats as text: NaN and Infinity are not JSON numbers).
_LIST_OBJECT = "json_build_object('v', {c})::text"
_FLOAT_LIST_OBJECT = "json_build_object('v', {c}::text[])::text"
# A uuid's 16 bytes (hex-encoded by bytea_output=hex), for Arrow's uuid type.
_UUID_BYTES = "uuid_send({c})"
# An interval's three fields, exactly (extract is exact numeric from PostgreSQL 14 on).
_INTERVAL_PARTS = (
    "(extract(year from {c}) * 12 + extract(month from {c}))::int4",
    "extract(day from {c})::int4",
    "(extract(hour from {c}) * 3600000000 + extract(minute from {c}) * 60000000"
    " + extract(microseconds from {c}))::int8",
)


@dataclass(frozen=True)
class Wire:
    """One CSV column of the COPY: SQL over the result column (``{c}``), and its parse type."""

    sql: str
    parse: pa.DataType


@dataclass(frozen=True)
class Rule:
    """How one result column travels (``wires``) and becomes Arrow, then pandas.

    ``decode`` turns the parsed wires into the column's Arrow array (None: the one wire as it
    is); ``finish`` turns that into the pandas column (None: the table-wide type mapping).
    """

    wires: tuple[Wire, ...]
    decode: Callable[[list[pa.ChunkedArray]], pa.ChunkedArray] | None = None
    finish: Callable[[pa.ChunkedArray], Any] | None = None


def _plain(parse: pa.DataType, finish: Callable[[pa.ChunkedArray], Any] | None = None) -> Rule:
    return Rule((Wire("{c}", parse),), None, finish)


def rule_for(
    col: ResultColumn,
    backend: DtypeBackend,
    *,
    decimal: bool = False,
    uuid_as: UuidAs = "string",
    json_as: JsonAs = "object",
    output: Backend = "pandas",
) -> Rule:
    """The rule for one result column, under the read's options (the tables above)."""
    if output != "pandas":
        return _exact(col, output, decimal=decimal, uuid_as=uuid_as, json_as=json_as)
    arrow = backend == "pyarrow"
    oid = col.oid
    if oid in _INTEGERS:
        return _plain(_INTEGERS[oid])
    if oid == oids.FLOAT4:
        return _plain(pa.float64() if arrow else pa.float32())
    if oid == oids.FLOAT8:
        return _plain(pa.float64())
    if oid == oids.NUMERIC:
        return _numeric(col, arrow, decimal)
    if oid == oids.BOOL:
        return _plain(pa.bool_())
    if oid == oids.TIMESTAMPTZ:
        return _plain(pa.timestamp("us", tz="UTC"))
    if oid == oids.TIMESTAMP:
        return _plain(pa.timestamp("us"))
    if oid == oids.DATE:
        return _plain(pa.date32(), None if arrow else _dates)
    if oid == oids.TIME:
        return _plain(pa.time64("us"))
    if oid == oids.INTERVAL:
        parts = (pa.int32(), pa.int32(), pa.int64())
        wires = tuple(Wire(s, t) for s, t in zip(_INTERVAL_PARTS, parts, strict=True))
        return Rule(wires, decode.intervals)
    if oid == oids.BYTEA:
        return Rule((Wire("{c}", pa.binary()),), decode.hex_bytes)
    if oid == oids.UUID and uuid_as == "uuid":
        return _plain(pa.string(), _uuids)
    if oid in (oids.JSON, oids.JSONB):
        if json_as == "string":
            return _plain(pa.string() if arrow else pa.large_string())
        return Rule((Wire(_JSON_ITEM, pa.binary()),), None, _json_objects)
    if oid in ARRAY_ELEMENTS:
        element = _LIST_ELEMENTS.get(ARRAY_ELEMENTS[oid] or 0)
        if element is None:
            return Rule((Wire(_JSON_ARRAY_ITEM, pa.binary()),), None, _json_objects)
        sql = _FLOAT_LIST_OBJECT if pa.types.is_floating(element) else _LIST_OBJECT
        return Rule((Wire(sql, pa.binary()),), decode.typed_lists(element))
    # pandas keeps its Arrow-backed `string` in large_string: parsing straight into it spares
    # a copy of every text column (the pyarrow backend keeps Arrow's plain `string`).
    return _plain(pa.string() if arrow else pa.large_string())


def _exact(
    col: ResultColumn, output: Backend, *, decimal: bool, uuid_as: UuidAs, json_as: JsonAs
) -> Rule:
    """The rule of an Arrow or polars result: Arrow's exact types, no pandas finish."""
    oid = col.oid
    if oid == oids.FLOAT4:
        return _plain(pa.float32())
    if oid == oids.NUMERIC:
        if _fits_decimal128(col):
            return _plain(pa.decimal128(int(col.precision or 0), int(col.scale or 0)))
        return _plain(pa.string() if decimal else pa.float64())
    if oid == oids.UUID and uuid_as == "uuid":
        return Rule((Wire(_UUID_BYTES, pa.binary()),), decode.uuids)
    if oid in (oids.JSON, oids.JSONB) or (oid in ARRAY_ELEMENTS and not _typed_list(oid)):
        sql = "{c}::text" if oid in (oids.JSON, oids.JSONB) else "to_json({c})::text"
        tagged = json_as == "object" and output == "arrow"
        return Rule((Wire(sql, pa.string()),), decode.json_texts if tagged else None)
    return rule_for(col, "pyarrow", decimal=decimal, uuid_as=uuid_as, json_as=json_as)


def _typed_list(oid: int) -> bool:
    return _LIST_ELEMENTS.get(ARRAY_ELEMENTS[oid] or 0) is not None


def _fits_decimal128(col: ResultColumn) -> bool:
    return (
        col.precision is not None
        and col.scale is not None
        and 0 < col.precision <= _MAX_DECIMAL128_PRECISION
    )


def _numeric(col: ResultColumn, arrow: bool, decimal: bool) -> Rule:
    if _fits_decimal128(col) and (arrow or decimal):
        return _plain(pa.decimal128(int(col.precision or 0), int(col.scale or 0)))
    if decimal:
        return _plain(pa.string(), _decimals)
    return _plain(pa.float64())


def _objects(values: Iterable[Any]) -> pd.Series[Any]:
    import pandas as pd

    series: pd.Series[Any] = pd.Series(list(values), dtype=object)
    return series


def _decimals(array: pa.ChunkedArray) -> pd.Series[Any]:
    return _objects(None if v is None else Decimal(v) for v in array.to_pylist())


def _uuids(array: pa.ChunkedArray) -> pd.Series[Any]:
    return _objects(None if v is None else uuid.UUID(v) for v in array.to_pylist())


def _json_objects(array: pa.ChunkedArray) -> pd.Series[Any]:
    return _objects(decode.json_values(array))


def _dates(array: pa.ChunkedArray) -> pd.Series[Any]:
    series: pd.Series[Any] = array.to_pandas(date_as_object=False).astype("datetime64[s]")
    return series
