"""Frames without COPY: SQLite and MySQL/MariaDB rows into typed DataFrames through a cursor.

The generic sibling of the COPY readers (:mod:`dbnb.frames.read`), for backends that have no
COPY. The statement goes through the session as it would for ``session.execute`` (ORM criteria
and soft-delete filters included) and stops before the driver runs it (the same
:func:`~dbnb.frames.query.sent`); the SQL and parameters then run on the
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

from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

from sqlalchemy.sql import Executable

from dbnb.display.progress import Progress
from dbnb.driver_errors import translate
from dbnb.errors import FrameError
from dbnb.frames.columns import Backend, DtypeBackend, JsonAs, UuidAs, options_of
from dbnb.frames.query import Target, sent, target_of
from dbnb.frames.typed_rows import MYSQL_KINDS, Column, frame_of, kind_of

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session

__all__ = [
    "aiter_frames", "aread_frame", "arun_statement", "iter_frames", "read_frame", "run_statement",
]


def _columns(target: Target, names: list[str]) -> list[Column]:
    selected = getattr(target.executable, "selected_columns", None)
    if target.statement is None and selected is not None and len(selected) == len(names):
        return [Column(n, kind_of(c.type)) for n, c in zip(names, selected, strict=True)]
    return [Column(n, "any") for n in names]


class _Cursor:
    """A statement stopped before the driver, then run on the session's own DBAPI cursor."""

    def __init__(self, session: Session, target: Target) -> None:
        statement = sent(session, target)
        conn = session.connection()
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
            self.cursor.execute(*statement)
        except Exception as exc:
            self.cursor.close()
            from sqlalchemy import exc as sa_exc

            wrapped = sa_exc.DBAPIError(statement[0], None, exc, hide_parameters=True)
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
                Column(c.name, MYSQL_KINDS.get(d[1], "text")) if c.kind == "any" else c
                for c, d in zip(self.columns, description, strict=True)
            ]
        self.rowcount = int(getattr(self.cursor, "rowcount", -1))

    def fetch(self, n: int) -> list[Any]:
        """The next ``n`` rows (fewer at the end)."""
        return list(self.cursor.fetchmany(n))

    def close(self) -> None:
        self.cursor.close()


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
    chosen = options_of(**options)
    cursor = _Cursor(session, target)
    try:
        if cursor.columns is None:
            return None, cursor.rowcount
        rows = list(cursor.cursor.fetchall())
    finally:
        cursor.close()
    return frame_of(cursor.columns, rows, chosen), len(rows)


def read_frame(
    session: Session,
    stmt: Executable | str | Target,
    params: dict[str, Any] | None = None,
    *,
    dtype_backend: DtypeBackend = None,
    decimal: bool = False,
    uuid_as: UuidAs = "string",
    json_as: JsonAs = "object",
    backend: Backend = "pandas",
) -> Any:
    """Run ``stmt`` in ``session`` (SQLite, MySQL); return its rows typed by the declared types.

    The generic twin of :func:`dbnb.frames.read.read_frame`: same arguments, same dtypes
    where the types exist (see the module's table); commits nothing.
    """
    target = stmt if isinstance(stmt, Target) else target_of(stmt, params, what="read_frame()")
    frame, _ = run_statement(
        session, target, dtype_backend=dtype_backend, decimal=decimal, uuid_as=uuid_as,
        json_as=json_as, backend=backend,
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
    json_as: JsonAs = "object",
    backend: Backend = "pandas",
    progress: bool | None = None,
) -> Iterator[Any]:
    """Yield the rows of ``stmt`` as DataFrames of ``chunksize`` rows, fetched as they go.

    The generic twin of :func:`dbnb.frames.read.iter_frames`. An empty result yields one
    empty frame with the right dtypes. The progress bar has no total here (these backends
    give no row estimate).
    """
    target = stmt if isinstance(stmt, Target) else target_of(stmt, params, what="iter_frames()")
    if not isinstance(chunksize, int) or chunksize < 1:
        raise FrameError(f"chunksize must be a positive number of rows, not {chunksize!r}")
    chosen = options_of(dtype_backend, decimal, uuid_as, json_as, backend)
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
                yield frame_of(columns, rows, chosen)
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
