"""Database: one URL in, a psycopg 3 engine and an asyncpg engine out, with session scopes.

``Database`` is the face users hold. The engines and their lifecycle live in
:class:`~dbnb.engine.lifecycle.Engines`, the session scopes in
:class:`~dbnb.engine.sessions.Sessions`; its awaitable face, :class:`~dbnb.AsyncDatabase`, is
``db.asyncio``: same method names, same pools. Get one with :func:`dbnb.connect`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session, sessionmaker

from dbnb.dialects import Capabilities
from dbnb.driver_errors import translate
from dbnb.engine import health as _health
from dbnb.engine import probes
from dbnb.engine import profile as _profile
from dbnb.engine.async_database import AsyncDatabase
from dbnb.engine.engines import in_memory, shared_memory
from dbnb.engine.lifecycle import Engines
from dbnb.engine.schema import create_missing, metadata_of
from dbnb.engine.scripts import ScriptResult, ScriptRows, run_script, targets_of
from dbnb.engine.sessions import Sessions
from dbnb.engine.transactions import SandboxScope, TransactionScope
from dbnb.errors import ConfigError
from dbnb.server.embedded import EmbeddedServer
from dbnb.server.sessions import (
    SESSIONS_SQL,
    SessionList,
    pids_to_end,
    sessions_from_rows,
    terminate_sql,
)
from dbnb.settings import Settings, safe_url

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl
    import pyarrow as pa

    from dbnb.frames.columns import DtypeBackend, JsonAs, UuidAs
    from dbnb.frames.persist import IfExists, PersistResult

__all__ = ["Database"]


_NO_SESSIONS = (
    "list and end connections with the server's own tools (MySQL: SHOW PROCESSLIST, KILL)"
)


def _rows(report: ScriptResult, rows: list[Any]) -> ScriptRows:
    found = ScriptRows(rows)
    found.steps = report.steps
    return found


class Database:
    """A database reached through a sync and an async engine (psycopg and asyncpg for PostgreSQL).

    Create it with :func:`dbnb.connect`. Engines are created on first use; ``close()`` disposes
    both, after which any use raises :class:`~dbnb.DatabaseClosed`. SQLite (``sqlite3`` and
    ``aiosqlite``) and MySQL/MariaDB (PyMySQL and aiomysql) work too; what differs is in
    :attr:`capabilities`.

    Example::

        db = dbnb.connect()                       # embedded PostgreSQL
        with db.session() as s:                   # commits on success, rolls back on error
            s.execute(text("SELECT 1"))
    """

    def __init__(self, settings: Settings, *, embedded: EmbeddedServer | None = None) -> None:
        if settings.url is None:
            raise ConfigError("Database needs a URL; use dbnb.connect() for the embedded default")
        settings = shared_memory(settings)
        self.settings = settings
        self.embedded = embedded
        self._engines = Engines(settings)
        self._sessions = Sessions(self._engines)
        self.asyncio: AsyncDatabase[Database] = AsyncDatabase(self, self._sessions)

    # -- identity -------------------------------------------------------------------------------

    @property
    def url(self) -> URL:
        """The database URL (a SQLAlchemy ``URL``, whose repr hides the password)."""
        return self._engines.url

    @property
    def database(self) -> str:
        """The database name (for SQLite, the file, or ``:memory:``)."""
        return ":memory:" if in_memory(self.url) else str(self.url.database or "")

    @property
    def capabilities(self) -> Capabilities:
        """What this backend can do (COPY, partial indexes, RETURNING...): see dbnb.dialects."""
        return self._engines.caps

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._engines.closed

    def __repr__(self) -> str:
        where = self.embedded.describe() if self.embedded else safe_url(self.url)
        state = "closed" if self.closed else "open"
        return f"<Database {self.database!r} ({where}) {state}>"

    def _repr_html_(self) -> str:
        """A small card: the database, the server, and each pool's use (no I/O)."""
        from dbnb.display.tables import Record
        from dbnb.display.values import Status

        fields: dict[str, Any] = {
            "server": self.embedded.describe() if self.embedded else safe_url(self.url),
            "state": Status(not self.closed, "closed" if self.closed else "open"),
        }
        if not self.closed:
            for pool in self.pool_status().pools:
                use = (
                    f"{pool.checked_out} of {pool.capacity} connections in use"
                    if pool.started else "not started yet"
                )
                fields[f"{pool.engine} pool ({pool.driver})"] = use
        return Record(f"database {self.database}", fields, names=True).html()

    @property
    def engine(self) -> Engine:
        """The sync SQLAlchemy engine (psycopg 3), created on first use."""
        return self._engines.sync

    @property
    def async_engine(self) -> AsyncEngine:
        """The async SQLAlchemy engine (asyncpg), bound to the event loop that first used it.

        Raises:
            LoopMismatch: used from another, still open event loop.
        """
        return self._engines.asynchronous

    def session_factory(self) -> sessionmaker[Session]:
        """The ``sessionmaker`` behind :meth:`session` (``expire_on_commit=False``)."""
        return self._sessions.factory()

    # -- session scopes -------------------------------------------------------------------------

    def session(self) -> AbstractContextManager[Session]:
        """Open a Session; commit when the block ends, roll back (and re-raise) on error.

        Database errors leave as dbnb errors (``UniqueViolation``, ``ConnectionFailed``...).

        Example::

            with db.session() as s:
                s.add(User(email="ana@example.com", name="Ana"))
        """
        return self._sessions.scope()

    def async_session(self) -> AbstractAsyncContextManager[AsyncSession]:
        """Open an AsyncSession (asyncpg); commit at the end, roll back on error."""
        return self._sessions.async_scope()

    def transaction(self, session: Session | AsyncSession | None = None) -> TransactionScope:
        """Begin a transaction (``with`` or ``async with``); given a session, a SAVEPOINT.

        ``with db.transaction() as s`` commits at the end and rolls back on error;
        ``with db.transaction(s)`` nests a SAVEPOINT in ``s``, whose failure rolls back only
        the inner work. ``async with db.transaction()`` does the same on asyncpg.
        """
        self._engines.check_open()
        return TransactionScope(self._sessions, session)

    def sandbox(self) -> SandboxScope:
        """Open a scope whose every change is rolled back on exit (``with`` or ``async with``).

        Even what repositories bound to this Database "commit" inside it is undone: their
        sessions join the sandbox's connection through savepoints.
        """
        self._engines.check_open()
        return SandboxScope(self._sessions)

    def get_session(self) -> Iterator[Session]:
        """Yield a committed-on-success Session; usable as a web-framework dependency.

        Example (FastAPI)::

            @app.get("/users")
            def list_users(s: Session = Depends(db.get_session)): ...
        """
        with self.session() as session:
            yield session

    async def get_async_session(self) -> AsyncIterator[AsyncSession]:
        """Yield an AsyncSession; usable as an async web-framework dependency."""
        async with self.async_session() as session:
            yield session

    # -- queries on the sync engine -------------------------------------------------------------

    def execute(self, sql: str, /, **params: Any) -> ScriptRows:
        """Run SQL (one statement or a script) with ``:name`` bound parameters; commit.

        Several statements run in order in one transaction: all or nothing. Returns the last
        statement's rows (a list; empty when it returns none), whose ``steps`` report what each
        statement did. SQL is taken as people write it: comments, trailing ``;``, casts,
        dollar quotes; ``:name`` is a parameter only where a value can stand.

        Example::

            db.execute("UPDATE products SET stock = stock - 1 WHERE sku = :sku; "
                       "SELECT stock FROM products WHERE sku = :sku", sku="KB-001")
        """
        targets = targets_of(sql, params, what="db.execute()")
        with self.session() as s:
            report, rows = run_script(s, targets)
        return _rows(report, rows)

    def frame(
        self,
        sql: str,
        /,
        *,
        dtype_backend: DtypeBackend = None,
        decimal: bool = False,
        uuid_as: UuidAs = "string",
        json_as: JsonAs = "object",
        **params: Any,
    ) -> pd.DataFrame:
        """Run a query with ``:name`` bound parameters; return its rows as a DataFrame.

        dtypes come from the result's column types (the table in :mod:`dbnb.frames.dtypes`),
        read through ``COPY`` in a short transaction; ``... RETURNING`` and data-modifying CTEs
        work too. A script runs in one transaction and its last statement's rows come back.
        A statement that returns no rows raises ``FrameError`` before it runs (and rolls the
        script back). ``dtype_backend``, ``decimal``, ``uuid_as`` and ``json_as`` are options,
        not parameters.

        Example::

            df = db.frame("SELECT kind, count(*) FROM events WHERE created_at >= :since "
                          "GROUP BY kind", since=t0)
        """
        targets = targets_of(sql, params, what="db.frame()")
        with self.session() as s:
            report, _ = run_script(
                s, targets, last="read", dtype_backend=dtype_backend, decimal=decimal,
                uuid_as=uuid_as, json_as=json_as,
            )
        assert report.frame is not None
        return report.frame

    def arrow(
        self,
        sql: str,
        /,
        *,
        decimal: bool = False,
        uuid_as: UuidAs = "string",
        json_as: JsonAs = "object",
        **params: Any,
    ) -> pa.Table:
        """Run a query with ``:name`` bound parameters; return its rows as a ``pyarrow.Table``.

        The same read as :meth:`frame` (COPY, a short transaction, scripts), stopping at the
        Arrow table the frame is built from: no pandas involved. Types follow the table in
        :mod:`dbnb.frames.dtypes` (``numeric(p, s)`` as ``decimal128(p, s)``, time zones kept,
        arrays as lists, JSON as Arrow's ``json`` type).

        Example::

            table = db.arrow("SELECT * FROM events WHERE created_at >= :since", since=t0)
        """
        table: pa.Table = self._read(sql, params, "db.arrow()", backend="arrow",
                                     decimal=decimal, uuid_as=uuid_as, json_as=json_as)
        return table

    def polars(self, sql: str, /, *, decimal: bool = False, **params: Any) -> pl.DataFrame:
        """Run a query with ``:name`` bound parameters; return its rows as a polars DataFrame.

        The read of :meth:`arrow`, imported into polars (``pl.from_arrow``): exact decimals,
        time zones kept, arrays as lists, JSON as its text (``.str.json_decode()`` parses it).
        Needs ``pip install 'dbnb[polars]'``.

        Example::

            df = db.polars("SELECT kind, count(*) AS n FROM events GROUP BY kind")
        """
        frame: pl.DataFrame = self._read(sql, params, "db.polars()", backend="polars",
                                         decimal=decimal)
        return frame

    def _read(self, sql: str, params: dict[str, Any], what: str, **options: Any) -> Any:
        from dbnb.frames.columns import options_of

        options = options_of(**options)  # before anything is sent
        targets = targets_of(sql, params, what=what)
        with self.session() as s:
            report, _ = run_script(s, targets, last="read", **options)
        return report.frame

    def create_table_from_frame(
        self,
        name: str,
        frame: pd.DataFrame | pl.DataFrame | pa.Table,
        /,
        *,
        schema: str | None = None,
        primary_key: str | Sequence[str] | None = None,
        if_exists: IfExists = "fail",
        types: Mapping[str, Any] | None = None,
        progress: bool | None = None,
    ) -> PersistResult:
        """CREATE TABLE ``name`` with types from the frame's dtypes, COPY the rows in; commit.

        One transaction: the table and its rows appear together, or not at all. Types follow
        the table in :mod:`dbnb.frames.ddl` (nullable integers stay integers, decimals keep
        precision and scale, tz-aware datetimes are ``timestamptz``, lists become arrays,
        dicts ``jsonb``); a named index is written as columns.

        Args:
            name: the table name, used as given (quoted).
            frame: the pandas or polars DataFrame, or ``pyarrow.Table``, to store (polars and
                Arrow types are read from the schema, never through pandas).
            schema: the schema to create it in (default: the search path's first).
            primary_key: a column name, or several, to make the primary key.
            if_exists: ``"fail"`` (default), ``"replace"`` (drop and create again) or
                ``"append"`` (add the rows to the existing table, whose types rule).
            types: column name -> SQLAlchemy type, overriding what a dtype says.
            progress: show a progress bar (default: when someone is watching a long load).

        Returns:
            A :class:`~dbnb.frames.persist.PersistResult`: the columns and types, the rows.

        Raises:
            FrameError: a bad name or an unsupported dtype (naming the column), a missing
                primary-key value, or the table exists and ``if_exists="fail"``.

        Example::

            db.create_table_from_frame("sales_2026", df, primary_key="id")
        """
        self.capabilities.require(
            "create_table_from_frame (PostgreSQL types, COPY)",
            "declare a model, db.create_all(Model), then Repository(Model, db).from_frame(df)",
        )
        from dbnb.frames.persist import create_table_from_frame

        with self.session() as s:
            done = create_table_from_frame(
                s, name, frame, schema=schema, primary_key=primary_key, if_exists=if_exists,
                types=types, progress=progress,
            )
        if done.action == "replaced":
            self.refresh_pools()  # no cached plan may outlive the old table's columns
        return done

    # -- looking at a table without loading it -------------------------------------------------

    def _catalog(self, conn: Any, table: str) -> tuple[str, list[_profile.ProfiledColumn]]:
        rows = conn.execute(text(_profile.COLUMNS_SQL), {"table": table}).all()
        return _profile.columns_from_rows(rows, table)

    def profile(
        self, table: str, *, columns: str | Sequence[str] | None = None, top: int = 5
    ) -> _profile.TableProfile:
        """Profile a table's columns in SQL: count, nulls, distinct, min, max, mean, std, top.

        On the server: one aggregate scan, then one ``GROUP BY`` per column; only the
        statistics come back, so a table larger than memory profiles fine. Read-only.

        Args:
            table: the table or view, optionally ``schema.table``.
            columns: the columns to profile (a list, or names separated by commas); all
                when omitted.
            top: how many of the commonest values to show per column.

        Example::

            db.profile("events")                     # %db profile events
            db.profile("events", columns=["kind", "amount"]).frame
        """
        self.capabilities.require(
            "profile (PostgreSQL's catalog and aggregates)",
            "read the table with db.frame(...) and use DataFrame.describe()",
        )
        try:
            with self.engine.connect() as conn:
                relation, found = self._catalog(conn, table)
                chosen = _profile.chosen_columns(found, columns, table)
                stats = conn.execute(text(_profile.stats_sql(relation, chosen))).one()
                groups = conn.execute(
                    text(_profile.groups_sql(relation, chosen)), {"top": top}
                ).all() if chosen else []
                conn.rollback()
        except SQLAlchemyError as exc:
            raise translate(exc) from exc
        return _profile.profile_from_rows(relation, chosen, stats, groups)

    def value_counts(self, table: str, column: str, *, top: int = 20) -> pd.DataFrame:
        """Count a column's values in SQL; return the commonest as a frame ready for ``.plot``.

        Example::

            db.value_counts("events", "kind").plot.bar()
        """
        self.capabilities.require(
            "value_counts (PostgreSQL's catalog)",
            "read the column with db.frame(...) and use Series.value_counts()",
        )
        try:
            with self.engine.connect() as conn:
                relation, found = self._catalog(conn, table)
                chosen = _profile.chosen_columns(found, [column], table)[0]
                rows = conn.execute(
                    text(_profile.value_counts_sql(relation, chosen)), {"top": top}
                ).all()
                conn.rollback()
        except SQLAlchemyError as exc:
            raise translate(exc) from exc
        return _profile.value_counts_frame(chosen, rows)

    def histogram(self, table: str, column: str, *, bins: int = 20) -> pd.DataFrame:
        """Count a numeric or time column in ``bins`` equal-width bins, in SQL (``.plot.bar()``).

        Example::

            db.histogram("orders", "total", bins=10).plot.bar()
        """
        self.capabilities.require(
            "histogram (width_bucket)",
            "read the column with db.frame(...) and use Series.plot.hist()",
        )
        try:
            with self.engine.connect() as conn:
                relation, found = self._catalog(conn, table)
                chosen = _profile.chosen_columns(found, [column], table)[0]
                rows = conn.execute(
                    text(_profile.histogram_sql(relation, chosen)), {"bins": bins}
                ).all()
                conn.rollback()
        except SQLAlchemyError as exc:
            raise translate(exc) from exc
        return _profile.histogram_frame(chosen, rows, bins)

    # -- snapshots ------------------------------------------------------------------------------

    def health(self) -> _health.HealthReport:
        """Run ``SELECT 1`` on the sync engine and report latency and version; never raises."""
        caps = self.capabilities
        try:
            engine = self.engine
            start = time.perf_counter()
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
                latency = (time.perf_counter() - start) * 1000
                version = conn.execute(text(probes.version_sql(caps))).scalar_one()
            return _health.HealthReport(
                True, caps.sync_driver, latency, str(version), backend=caps.label
            )
        except Exception as exc:
            return _health.failed_report(caps.sync_driver, exc)

    def pool_status(self) -> _health.PoolReport:
        """Snapshot both engines' pools from their counters (no I/O)."""
        return self._engines.pool_report()

    def info(self) -> _health.ServerInfo:
        """Ask the server for version, size, our connections and idle-in-transaction sessions."""
        asks = probes.info_queries(self.capabilities)

        def rows(sql: str | None) -> list[Any] | None:
            return None if sql is None else list(conn.execute(text(sql)))

        with self.engine.connect() as conn:
            try:
                head = conn.execute(text(asks.head)).one()
                connections, idle, long = rows(asks.connections), rows(asks.idle), rows(asks.long)
            except SQLAlchemyError as exc:
                raise translate(exc) from exc
        return _health.server_info_from_rows(
            head, connections, idle or [], long or [], backend=self.capabilities.label
        )

    def sessions(
        self, *, stale: bool = False, terminate: int | str | None = None, everyone: bool = False
    ) -> SessionList:
        """List dbnb's sessions on the server; optionally end one (or every stale one).

        Each row says the session's pid, application name (``dbnb:<pid of its process>``),
        state, age, query and, when the server runs on this machine, whether the owning
        process is still alive. Stale: the owner is gone, or it sat idle in a transaction for
        over five minutes.

        Args:
            stale: list only stale sessions.
            terminate: end this session (a pid), or every stale one (``"stale"``), with
                ``pg_terminate_backend``.
            everyone: include sessions of other applications (listing and terminating).

        Example::

            db.sessions(stale=True)                 # %db sessions --stale
            db.sessions(terminate=12345)            # %db sessions --terminate 12345
        """
        self.capabilities.require("sessions", _NO_SESSIONS)
        with self.engine.connect() as conn:
            try:
                rows = list(conn.execute(text(SESSIONS_SQL), {"everyone": everyone}))
                found = sessions_from_rows(rows, self.url, stale=stale)
                pids = pids_to_end(found, terminate, stale=stale, everyone=everyone)
                for pid in pids:
                    conn.execute(text(terminate_sql(conn.dialect)), {"pid": pid})
                conn.commit()
            except SQLAlchemyError as exc:
                raise translate(exc) from exc
        return SessionList(found, pids)

    def create_all(self, models: Any) -> list[str]:
        """CREATE the tables of ``models`` that do not exist yet (the apps' ``init_db()``).

        Args:
            models: a declarative Base (``dbnb.Base``), a model class, a ``MetaData``, or a
                list of them. Existing tables are left as they are (no migration).

        Returns:
            The names of the tables created, in creation order.

        Example::

            db.create_all(Base)
        """
        tables = metadata_of(models)
        with self.engine.begin() as conn:
            try:
                created = create_missing(conn, tables)
            except SQLAlchemyError as exc:
                raise translate(exc) from exc
        self.refresh_pools()
        return created

    # -- lifecycle ------------------------------------------------------------------------------

    def refresh_pools(self) -> None:
        """Replace both pools' connections (after DDL, so no stale plan or type cache survives)."""
        self._engines.refresh()

    def close(self) -> None:
        """Dispose both engines; later use raises ``DatabaseClosed``. Safe to call twice."""
        self._sessions.close()

    def __enter__(self) -> Database:
        self._engines.check_open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
