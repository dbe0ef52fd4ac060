"""Frames without COPY: SQLite and MySQL/MariaDB rows into typed DataFrames through a cursor.

The generic sibling of the COPY readers (:mod:`dbnb.frames.read`), for backends that have no
COPY. The statement goes through the session as it would for ``session.execute`` (ORM criteria
and soft-delete filters included) and stops before the driver runs it (the same
:func:`~dbnb.frames.query.stop_before_sending`); the SQL and parameters then run on the
session's own DBAPI cursor, whose rows are fetched in blocks and turned into Arrow columns with
the types the columns were *declared* with, never guessed from the values. The async shells
run the same code through ``AsyncSession.run_sync``.

The dtypes are the table of :mod:`dbnb.frames.dtypes`, keyed by the declared SQLAlchemy type
(SQLite's type affinity keeps no more than INTEGER, REAL, TEXT, BLOB and NUMERIC, so the
declaration is the only trustworthy source):

========================  ==========================================================
declared type             dtype (``dtype_backend="pyarrow"``: the ``[pyarrow]`` twin)
========================  ==========================================================
SmallInteger / Integer    ``Int16`` / ``Int32``; BigInteger ``Int64``
Float, Numeric            ``float64``; Numeric with ``decimal=True``: ``Decimal`` objects
Boolean                   ``boolean`` (SQLite and MySQL store 0/1)
String, Text, Enum        ``string``
DateTime(timezone=True)   ``datetime64[us, UTC]`` (stored as UTC, see dbnb.orm.types)
DateTime                  ``datetime64[us]``; Date ``datetime64[s]``
Uuid                      ``string`` (canonical, with dashes); ``uuid_as="uuid"``: UUIDs
JSON                      ``object`` (parsed values)
========================  ==========================================================

SQL text (``db.frame("SELECT …")``, ``%%db``) has no declared types: its columns are typed
from the values (integers ``Int64``, reals ``float64``, text ``string``, anything mixed
``object``), which is what SQLite itself knows of them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import event
from sqlalchemy import types as sqltypes
from sqlalchemy.sql import Executable

from dbnb.display.progress import Progress
from dbnb.errors import FrameError, translate
from dbnb.frames.dtypes import DtypeBackend, UuidAs
from dbnb.frames.query import STOP, Target, stop_before_sending, stopped, target_of

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session

__all__ = [
    "aiter_frames", "aread_frame", "arun_statement", "iter_frames", "read_frame", "run_statement",
]

FETCH = 50_000  # rows fetched from the cursor at a time


@dataclass(frozen=True)
class _Column:
    """One result column: its name and the conversion its declared type asks for."""

    name: str
    kind: str  # int16 int32 int64 float32 float64 numeric bool text ts tstz date uuid json any


def _kind(type_: Any) -> str:
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


def _columns(target: Target, names: list[str]) -> list[_Column]:
    selected = getattr(target.executable, "selected_columns", None)
    if target.statement is None and selected is not None and len(selected) == len(names):
        return [_Column(n, _kind(c.type)) for n, c in zip(names, selected, strict=True)]
    return [_Column(n, "any") for n in names]


def _uuid_text(array: pa.Array) -> pa.Array:
    """32 hex digits (how SQLAlchemy keeps a UUID without a native type) -> canonical text."""
    text = pc.utf8_lower(array.cast(pa.string()))
    if pc.all(pc.equal(pc.utf8_length(text), 36), min_count=0).as_py() is not False:
        return text
    parts = [pc.utf8_slice_codeunits(text, a, b) for a, b in
             ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))]
    return pc.binary_join_element_wise(*parts, "-")


# MySQL's column type codes (PyMySQL's FIELD_TYPE) -> kind, for SQL text without declarations.
_MYSQL_KINDS = {
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


def _arrow(column: _Column, values: Sequence[Any] | pa.Array) -> pa.Array:
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


def _finish(column: _Column, array: pa.ChunkedArray, options: dict[str, Any]) -> Any:
    """Columns that leave Arrow as Python objects: exact decimals, UUIDs, JSON; else None."""
    import pandas as pd

    if column.kind == "uuid" and options["uuid_as"] == "uuid":
        values = [None if v is None else uuid.UUID(v) for v in array.to_pylist()]
    elif column.kind == "json" and any(test(array.type) for test in _STRINGS):
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


def _frame(columns: list[_Column], rows: list[Any], options: dict[str, Any]) -> pd.DataFrame:
    """Rows (tuples) into the typed DataFrame: one Arrow table, converted once."""
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


class _Cursor:
    """A statement stopped before the driver, then run on the session's own DBAPI cursor."""

    def __init__(self, session: Session, target: Target) -> None:
        conn = session.connection()
        listener = stop_before_sending(conn)
        sent: tuple[str, Any] | None = None
        try:
            session.execute(target.executable, execution_options={STOP: True})
        except Exception as exc:
            sent = stopped(exc)
            if sent is None:
                written = target.statement
                span = {"source": written.source, "span": written.span} if written else {}
                raise translate(exc, **span)  # type: ignore[arg-type]  # noqa: B904 (chained)
        finally:
            event.remove(conn, "before_cursor_execute", listener)
        if sent is None:
            raise FrameError("the statement ran no SQL, so it has no rows to read")
        self.target = target
        dbapi: Any = conn.connection.dbapi_connection
        self.cursor = dbapi.cursor()
        # PyMySQL (and aiomysql) turn every value into a Python object in Python code; with
        # its decoders off the values stay text, which Arrow parses far faster (in C).
        driver = getattr(dbapi, "_connection", dbapi)
        decoders = getattr(driver, "decoders", None)
        try:
            if decoders is not None:
                driver.decoders = {}
            self.cursor.execute(*sent)
        except Exception as exc:
            self.cursor.close()
            from sqlalchemy import exc as sa_exc

            wrapped = sa_exc.DBAPIError(sent[0], None, exc, hide_parameters=True)
            wrapped.__cause__ = exc
            raise translate(wrapped)  # noqa: B904 (translate() chains it to the driver error)
        finally:
            if decoders is not None:
                driver.decoders = decoders
        description = self.cursor.description
        self.columns = None if description is None else _columns(
            target, [str(d[0]) for d in description]
        )
        if self.columns is not None and decoders is not None:
            self.columns = [
                _Column(c.name, _MYSQL_KINDS.get(d[1], "text")) if c.kind == "any" else c
                for c, d in zip(self.columns, description, strict=True)
            ]
        self.rowcount = int(getattr(self.cursor, "rowcount", -1))

    def fetch(self, n: int) -> list[Any]:
        """The next ``n`` rows (fewer at the end)."""
        return list(self.cursor.fetchmany(n))

    def close(self) -> None:
        self.cursor.close()


def _options(dtype_backend: DtypeBackend, decimal: bool, uuid_as: UuidAs) -> dict[str, Any]:
    if dtype_backend not in (None, "pyarrow"):
        raise FrameError(
            f"dtype_backend={dtype_backend!r} is not supported; use None (dbnb's nullable "
            "dtypes) or 'pyarrow'"
        )
    if uuid_as not in ("string", "uuid"):
        raise FrameError(f"uuid_as={uuid_as!r} is not supported; use 'string' or 'uuid'")
    return {"dtype_backend": dtype_backend, "decimal": decimal, "uuid_as": uuid_as}


def _no_rows(target: Target) -> FrameError:
    what = f"this {target.statement.keyword or 'statement'}" if target.statement else "it"
    return FrameError(
        f"a frame is read from a statement that returns rows, and {what} returns none: run it "
        "with db.execute() (or add RETURNING)"
    )


def run_statement(
    session: Session, target: Target, **options: Any
) -> tuple[pd.DataFrame | None, int]:
    """Run ``target``: its rows as a typed DataFrame (and their count), or None and rowcount."""
    chosen = _options(options.get("dtype_backend"), options.get("decimal", False),
                      options.get("uuid_as", "string"))
    cursor = _Cursor(session, target)
    try:
        if cursor.columns is None:
            return None, cursor.rowcount
        rows = list(cursor.cursor.fetchall())
    finally:
        cursor.close()
    return _frame(cursor.columns, rows, chosen), len(rows)


def read_frame(
    session: Session,
    stmt: Executable | str | Target,
    params: dict[str, Any] | None = None,
    *,
    dtype_backend: DtypeBackend = None,
    decimal: bool = False,
    uuid_as: UuidAs = "string",
) -> pd.DataFrame:
    """Run ``stmt`` in ``session`` (SQLite, MySQL); return its rows typed by the declared types.

    The generic twin of :func:`dbnb.frames.read.read_frame`: same arguments, same dtypes
    where the types exist (see the module's table); commits nothing.
    """
    target = stmt if isinstance(stmt, Target) else target_of(stmt, params, what="read_frame()")
    frame, _ = run_statement(
        session, target, dtype_backend=dtype_backend, decimal=decimal, uuid_as=uuid_as
    )
    if frame is None:
        raise _no_rows(target)
    return frame


def iter_frames(
    session: Session,
    stmt: Executable | str | Target,
    params: dict[str, Any] | None = None,
    *,
    chunksize: int = 100_000,
    dtype_backend: DtypeBackend = None,
    decimal: bool = False,
    uuid_as: UuidAs = "string",
    progress: bool | None = None,
) -> Iterator[pd.DataFrame]:
    """Yield the rows of ``stmt`` as DataFrames of ``chunksize`` rows, fetched as they go.

    The generic twin of :func:`dbnb.frames.read.iter_frames`. An empty result yields one
    empty frame with the right dtypes. The progress bar has no total here (these backends
    give no row estimate).
    """
    target = stmt if isinstance(stmt, Target) else target_of(stmt, params, what="iter_frames()")
    if not isinstance(chunksize, int) or chunksize < 1:
        raise FrameError(f"chunksize must be a positive number of rows, not {chunksize!r}")
    chosen = _options(dtype_backend, decimal, uuid_as)
    cursor = _Cursor(session, target)
    try:
        columns = cursor.columns
        if columns is None:
            raise _no_rows(target)
        with Progress(progress, desc="reading") as bar:
            first = True
            while True:
                rows = cursor.fetch(chunksize)
                if not rows and not first:
                    break
                first = False
                bar.update(len(rows))
                yield _frame(columns, rows, chosen)
                if len(rows) < chunksize:
                    break
    finally:
        cursor.close()


async def aread_frame(
    session: AsyncSession,
    stmt: Executable | str | Target,
    params: dict[str, Any] | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Await :func:`read_frame` on an AsyncSession (aiosqlite, aiomysql)."""
    target = stmt if isinstance(stmt, Target) else target_of(stmt, params, what="aread_frame()")
    frame: pd.DataFrame = await session.run_sync(
        lambda s: read_frame(s, target, **options)
    )
    return frame


async def arun_statement(
    session: AsyncSession, target: Target, **options: Any
) -> tuple[pd.DataFrame | None, int]:
    """Await :func:`run_statement` on an AsyncSession."""
    found: tuple[pd.DataFrame | None, int] = await session.run_sync(
        lambda s: run_statement(s, target, **options)
    )
    return found


async def aiter_frames(
    session: AsyncSession,
    stmt: Executable | str | Target,
    params: dict[str, Any] | None = None,
    **options: Any,
) -> AsyncIterator[pd.DataFrame]:
    """Iterate :func:`iter_frames` with ``async for``: each chunk is fetched through run_sync."""
    target = stmt if isinstance(stmt, Target) else target_of(stmt, params, what="aiter_frames()")
    chunks = iter_frames  # the sync generator, advanced one chunk per run_sync call
    holder: dict[str, Iterator[pd.DataFrame]] = {}

    def step(s: Session) -> pd.DataFrame | None:
        if "it" not in holder:
            holder["it"] = chunks(s, target, **options)
        return next(holder["it"], None)

    try:
        while (frame := await session.run_sync(step)) is not None:
            yield frame
    finally:
        if "it" in holder:
            await session.run_sync(lambda _s: _close(holder["it"]))


def _close(iterator: Iterator[Any]) -> None:
    close: Callable[[], None] | None = getattr(iterator, "close", None)
    if close is not None:
        close()
