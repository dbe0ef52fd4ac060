"""What each backend can do: one capability table that every layer asks, never the dialect name.

PostgreSQL is the reference and keeps every fast path (COPY, partial indexes, advisory locks,
server sessions, the pooler profile). SQLite and MySQL/MariaDB get correct generic paths, and a
PostgreSQL-only feature asked of them raises :class:`~dbnb.UnsupportedOnDialect` through
:meth:`Capabilities.require`, naming the feature, the backend and what to do instead::

    caps = capabilities(session.get_bind().dialect)
    if caps.copy: ...                       # the COPY reader
    caps.require("sessions", "list connections with your server's own tools")

=====================  ==========  ==========  ===============
capability             PostgreSQL  SQLite      MySQL / MariaDB
=====================  ==========  ==========  ===============
COPY                   yes         no          no
partial indexes        yes         yes         no (generated column in the unique key)
RETURNING              yes         yes         MariaDB: INSERT and DELETE; MySQL: none
upsert                 ON CONFLICT ON CONFLICT ON DUPLICATE KEY UPDATE
advisory locks         yes         no          GET_LOCK (named, per session)
server sessions        yes         no          no
savepoints             yes         yes         yes
pooler profile         yes         no          no
time zones stored      yes         no (UTC)    no (UTC)
transactional DDL      yes         yes         no
=====================  ==========  ==========  ===============

A leaf: it imports only :mod:`dbnb.errors`, so settings, URLs, frames, engine, orm and
migrations may all ask it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from dbnb.errors import UnsupportedOnDialect

__all__ = ["BACKENDS", "Capabilities", "backend_of", "capabilities"]

Upsert = Literal["on_conflict", "on_duplicate_key"]


@dataclass(frozen=True)
class Capabilities:
    """One backend's abilities and its drivers (see the module's table)."""

    name: str  # SQLAlchemy's dialect name: postgresql, sqlite, mysql (MariaDB: mariadb)
    label: str  # what people call it: PostgreSQL, SQLite, MySQL, MariaDB
    sync_driver: str
    async_driver: str
    copy: bool
    partial_index: bool
    insert_returning: bool
    update_returning: bool
    delete_returning: bool
    upsert: Upsert
    advisory_locks: bool  # pg_advisory_lock; MySQL's GET_LOCK is named below
    server_sessions: bool
    savepoints: bool
    pooler: bool
    server_settings: bool  # statement_timeout, idle_in_transaction_session_timeout, ...
    timezones: bool  # a timestamp column keeps its zone (timestamptz)
    transactional_ddl: bool
    #: Named locks held by a session (MySQL's GET_LOCK), what migrations take turns on there.
    named_locks: bool = False
    #: The database lives in this process (a file, or memory), not behind a server (SQLite).
    in_process: bool = False
    #: PostgreSQL's catalog (pg_class, pg_stat_*, to_regclass) answers what is in the database.
    server_catalog: bool = False
    #: The server normalises and reports partial-index predicates (pg_get_expr).
    index_predicates: bool = False
    #: Alembic must rebuild a table to alter it (batch mode).
    batch_migrations: bool = False
    #: Identity columns draw from a sequence that explicit ids do not move (PostgreSQL).
    sequences: bool = False
    #: A timestamp column keeps fractions of a second only when declared so (DATETIME(6)).
    datetime_fsp: bool = False
    #: The pip extra that installs this backend's drivers (None: they come with dbnb).
    extra: str | None = None

    @property
    def returning(self) -> bool:
        """True when INSERT, UPDATE and DELETE all take ``RETURNING``."""
        return self.insert_returning and self.update_returning and self.delete_returning

    def require(self, feature: str, alternative: str) -> None:
        """Raise :class:`~dbnb.UnsupportedOnDialect` unless this backend is PostgreSQL.

        Args:
            feature: what was asked for, as a person would name it (``"sessions"``).
            alternative: what to do instead on this backend.
        """
        if self.name != "postgresql":
            raise UnsupportedOnDialect(
                f"{feature} needs PostgreSQL; this database is {self.label}: {alternative}",
                feature=feature,
                backend=self.label,
            )

    def with_dialect(self, dialect: Any) -> Capabilities:
        """Refine the table with what a connected dialect reports (MariaDB's RETURNING)."""
        from dataclasses import replace

        label = "MariaDB" if getattr(dialect, "is_mariadb", False) else self.label
        return replace(
            self,
            label=label,
            insert_returning=bool(getattr(dialect, "insert_returning", self.insert_returning)),
            update_returning=bool(getattr(dialect, "update_returning", self.update_returning)),
            delete_returning=bool(getattr(dialect, "delete_returning", self.delete_returning)),
        )


POSTGRESQL = Capabilities(
    name="postgresql", label="PostgreSQL", sync_driver="psycopg", async_driver="asyncpg",
    copy=True, partial_index=True, insert_returning=True, update_returning=True,
    delete_returning=True, upsert="on_conflict", advisory_locks=True, server_sessions=True,
    savepoints=True, pooler=True, server_settings=True, timezones=True, transactional_ddl=True,
    sequences=True, index_predicates=True, server_catalog=True,
)
SQLITE = Capabilities(
    name="sqlite", label="SQLite", sync_driver="pysqlite", async_driver="aiosqlite",
    copy=False, partial_index=True, insert_returning=True, update_returning=True,
    delete_returning=True, upsert="on_conflict", advisory_locks=False, server_sessions=False,
    savepoints=True, pooler=False, server_settings=False, timezones=False,
    transactional_ddl=True, batch_migrations=True, in_process=True, extra="sqlite",
)
MYSQL = Capabilities(
    name="mysql", label="MySQL", sync_driver="pymysql", async_driver="aiomysql",
    copy=False, partial_index=False, insert_returning=False, update_returning=False,
    delete_returning=False, upsert="on_duplicate_key", advisory_locks=False,
    server_sessions=False, savepoints=True, pooler=False, server_settings=False,
    timezones=False, transactional_ddl=False, datetime_fsp=True, named_locks=True,
    extra="mysql",
)
# SQLAlchemy's mariadb:// dialect is its MySQL dialect with is_mariadb set; 10.5+ returns rows
# from INSERT and DELETE (never from UPDATE).
MARIADB = Capabilities(
    **{**MYSQL.__dict__, "name": "mariadb", "label": "MariaDB", "insert_returning": True,
       "delete_returning": True},
)

#: Driver-neutral scheme -> capabilities, for every backend dbnb speaks.
BACKENDS: dict[str, Capabilities] = {
    "postgresql": POSTGRESQL,
    "sqlite": SQLITE,
    "mysql": MYSQL,
    "mariadb": MARIADB,
}


def backend_of(drivername: str) -> str:
    """The driver-neutral backend of a URL scheme: ``postgresql+asyncpg`` -> ``postgresql``."""
    base = drivername.split("+", 1)[0].lower()
    return "postgresql" if base == "postgres" else base


def capabilities(target: Any) -> Capabilities:
    """The capabilities of ``target``: a URL, a scheme, a SQLAlchemy dialect, engine or session.

    A connected dialect refines the table (a ``mysql://`` URL that reaches MariaDB gets
    MariaDB's RETURNING). Anything unknown is PostgreSQL's table.
    """
    dialect = getattr(target, "dialect", None)
    if dialect is None and hasattr(target, "get_bind"):
        dialect = target.get_bind().dialect
    if dialect is None and hasattr(target, "insert_returning") and hasattr(target, "name"):
        dialect = target
    if dialect is not None:
        name = "mariadb" if getattr(dialect, "is_mariadb", False) else str(dialect.name)
        return BACKENDS.get(name, POSTGRESQL).with_dialect(dialect)
    drivername = getattr(target, "drivername", target)
    return BACKENDS.get(backend_of(str(drivername)), POSTGRESQL)
