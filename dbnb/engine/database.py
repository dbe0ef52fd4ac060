"""Database: one URL in, a psycopg 3 engine and an asyncpg engine out, with session scopes.

``Database`` is the face users hold. The engines and their lifecycle live in
:class:`~dbnb.engine.lifecycle.Engines`, the session scopes in
:class:`~dbnb.engine.sessions.Sessions`; its awaitable face, :class:`~dbnb.AsyncDatabase`, is
``db.asyncio``: same method names, same pools. Get one with :func:`dbnb.connect`. Its table
methods (``profile``, ``create_table_from_frame``...) come from
:class:`~dbnb.engine.table_tools.TableTools`, its snapshots (``health``, ``pool_status``,
``info``, ``sessions``, ``wait_for_replicas``) from :class:`~dbnb.engine.snapshots.Snapshots`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session, sessionmaker

from dbnb.dialects import Capabilities
from dbnb.driver_errors import translate
from dbnb.engine.async_database import AsyncDatabase
from dbnb.engine.engines import in_memory, shared_memory
from dbnb.engine.lifecycle import Engines
from dbnb.engine.replica_settings import ReplicaSettings
from dbnb.engine.replicas import ReplicaSet, Use, check_use
from dbnb.engine.routing import run_routed
from dbnb.engine.schema import create_missing, metadata_of
from dbnb.engine.scripts import ScriptResult, ScriptRows, targets_of
from dbnb.engine.sessions import Sessions
from dbnb.engine.snapshots import Snapshots
from dbnb.engine.table_tools import TableTools
from dbnb.engine.transactions import SandboxScope, TransactionScope
from dbnb.errors import ConfigError
from dbnb.server.embedded import EmbeddedServer
from dbnb.settings import Settings, safe_url

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl
    import pyarrow as pa

    from dbnb.frames.columns import DtypeBackend, JsonAs, UuidAs

__all__ = ["Database"]


def _rows(report: ScriptResult, rows: list[Any]) -> ScriptRows:
    found = ScriptRows(rows)
    found.steps = report.steps
    return found


class Database(TableTools, Snapshots):
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

    def __init__(
        self,
        settings: Settings,
        *,
        embedded: EmbeddedServer | None = None,
        replicas: ReplicaSettings | None = None,
    ) -> None:
        if settings.url is None:
            raise ConfigError("Database needs a URL; use dbnb.connect() for the embedded default")
        settings = shared_memory(settings)
        self.settings = settings
        self.embedded = embedded
        self.replicas = replicas or ReplicaSettings()
        self._engines = Engines(settings)
        self._replicas = ReplicaSet(settings, self.replicas) if self.replicas.urls else None
        if self._replicas is not None:
            self._engines.followers.append(self._replicas.refresh)
        self._sessions = Sessions(self._engines, self._replicas)
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

    def session(
        self, *, read_only: bool = False, use: Use = None, read_your_writes: bool = False
    ) -> AbstractContextManager[Session]:
        """Open a Session; commit when the block ends, roll back (and re-raise) on error.

        Database errors leave as dbnb errors (``UniqueViolation``, ``ConnectionFailed``...).
        A session runs on the primary; with read replicas (``connect(..., replicas=[...])``):

        Args:
            read_only: a session that only reads: it runs on the next usable replica (round
                robin; one that fails or lags is skipped), or the primary when none is.
            use: ``"primary"`` sends even a read-only session to the primary; ``"replica"``
                makes it a read-only session that ignores ``db.use()`` and read-your-writes.
            read_your_writes: while the block runs, once anything committed on the primary
                (this session, a repository bound to the Database, a transaction), this
                Database's reads in the block go to the primary, which has those rows.

        Example::

            with db.session() as s:
                s.add(User(email="ana@example.com", name="Ana"))
            with db.session(read_your_writes=True):
                users.create(email="bo@example.com", name="Bo")
                users.get_by(email="bo@example.com")          # the primary: found
        """
        check_use(use)
        return self._sessions.scope(
            read=read_only or use == "replica", use=use, read_your_writes=read_your_writes
        )

    def use(self, where: Use) -> AbstractContextManager[None]:
        """Send this Database's routed reads to ``where`` while the block runs.

        Reads that would go to a replica (repositories bound to the Database, ``db.frame``,
        ``%%db``) go to ``"primary"`` (or, with ``"replica"``, to a replica even in a
        read-your-writes block that wrote). Without replicas nothing changes.

        Example::

            with db.use("primary"):
                users.list(is_active=True)        # the primary, not a replica
        """
        check_use(where)
        if self._replicas is None:
            return contextlib.nullcontext()
        return self._replicas.use(where)

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

    def execute(self, sql: str, /, *, use: Use = None, **params: Any) -> ScriptRows:
        """Run SQL (one statement or a script) with ``:name`` bound parameters; commit.

        Several statements run in order in one transaction: all or nothing. Returns the last
        statement's rows (a list; empty when it returns none), whose ``steps`` report what each
        statement did. SQL is taken as people write it: comments, trailing ``;``, casts,
        dollar quotes; ``:name`` is a parameter only where a value can stand. A script that
        only reads goes to a replica when the Database has one (``use="primary"`` keeps it on
        the primary; ``use`` is an option, not a parameter).

        Example::

            db.execute("UPDATE products SET stock = stock - 1 WHERE sku = :sku; "
                       "SELECT stock FROM products WHERE sku = :sku", sku="KB-001")
        """
        targets = targets_of(sql, params, what="db.execute()")
        report, rows = run_routed(self.session, targets, use=check_use(use))
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
        use: Use = None,
        **params: Any,
    ) -> pd.DataFrame:
        """Run a query with ``:name`` bound parameters; return its rows as a DataFrame.

        dtypes come from the result's column types (the table in :mod:`dbnb.frames.dtypes`),
        read through ``COPY`` in a short transaction; ``... RETURNING`` and data-modifying CTEs
        work too. A script runs in one transaction and its last statement's rows come back.
        A statement that returns no rows raises ``FrameError`` before it runs (and rolls the
        script back). A query that only reads goes to a replica when the Database has one
        (``use="primary"``: the primary). ``dtype_backend``, ``decimal``, ``uuid_as``,
        ``json_as`` and ``use`` are options, not parameters.

        Example::

            df = db.frame("SELECT kind, count(*) FROM events WHERE created_at >= :since "
                          "GROUP BY kind", since=t0)
        """
        targets = targets_of(sql, params, what="db.frame()")
        report, _ = run_routed(
            self.session, targets, use=check_use(use), last="read",
            dtype_backend=dtype_backend, decimal=decimal, uuid_as=uuid_as, json_as=json_as,
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
        use: Use = None,
        **params: Any,
    ) -> pa.Table:
        """Run a query with ``:name`` bound parameters; return its rows as a ``pyarrow.Table``.

        The same read as :meth:`frame` (COPY, a short transaction, scripts), stopping at the
        Arrow table the frame is built from: no pandas involved. Types follow the table in
        :mod:`dbnb.frames.dtypes` (``numeric(p, s)`` as ``decimal128(p, s)``, time zones kept,
        arrays as lists, JSON as Arrow's ``json`` type). Routed like :meth:`frame`: a query
        that only reads goes to a replica when the Database has one (``use="primary"``: the
        primary).

        Example::

            table = db.arrow("SELECT * FROM events WHERE created_at >= :since", since=t0)
        """
        table: pa.Table = self._read(sql, params, "db.arrow()", use, backend="arrow",
                                     decimal=decimal, uuid_as=uuid_as, json_as=json_as)
        return table

    def polars(
        self, sql: str, /, *, decimal: bool = False, use: Use = None, **params: Any
    ) -> pl.DataFrame:
        """Run a query with ``:name`` bound parameters; return its rows as a polars DataFrame.

        The read of :meth:`arrow`, imported into polars (``pl.from_arrow``): exact decimals,
        time zones kept, arrays as lists, JSON as its text (``.str.json_decode()`` parses it).
        Needs ``pip install 'dbnb[polars]'``. Routed like :meth:`frame`.

        Example::

            df = db.polars("SELECT kind, count(*) AS n FROM events GROUP BY kind")
        """
        frame: pl.DataFrame = self._read(sql, params, "db.polars()", use, backend="polars",
                                         decimal=decimal)
        return frame

    def _read(
        self, sql: str, params: dict[str, Any], what: str, use: Use, **options: Any
    ) -> Any:
        from dbnb.frames.columns import options_of

        options = options_of(**options)  # before anything is sent
        targets = targets_of(sql, params, what=what)
        report, _ = run_routed(
            self.session, targets, use=check_use(use), last="read", **options
        )
        return report.frame

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
