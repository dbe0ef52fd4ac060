"""Server-level chores that run outside any pool: create, reset and drop databases.

They connect with psycopg in autocommit mode to the server's maintenance database
(``postgres``), because ``CREATE DATABASE`` cannot run inside a transaction. On MySQL/MariaDB
the same is done through a short-lived engine without a database; a SQLite database is its
file, so resetting one deletes the file.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.engine import URL

from dbnb.dialects import capabilities
from dbnb.driver_errors import translate
from dbnb.errors import ConfigError

__all__ = ["create_database", "drop_database", "psycopg_conninfo"]

_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,62}$")


def psycopg_conninfo(url: URL, **overrides: Any) -> str:
    """Build a libpq conninfo string for psycopg from a SQLAlchemy URL."""
    from psycopg.conninfo import make_conninfo

    params: dict[str, Any] = {
        "host": url.host,
        "port": url.port,
        "user": url.username,
        "password": url.password,
        "dbname": url.database,
    }
    for key, value in url.query.items():
        params[key] = value if isinstance(value, str) else ",".join(value)
    params.update(overrides)
    return make_conninfo(**{k: v for k, v in params.items() if v is not None})


def _check_name(name: str) -> None:
    if not _DATABASE_NAME.match(name):
        raise ConfigError(
            f"database name {name!r} is not usable; use letters, digits, '_' or '-', "
            "starting with a letter or '_', at most 63 characters"
        )


def create_database(url: URL, name: str, *, reset: bool = False, pooled: bool = False) -> bool:
    """Create database ``name`` on the server of ``url``; return True if it was (re)created.

    With ``reset=True`` an existing database is dropped first (``WITH (FORCE)``: sessions still
    connected to it are disconnected). An advisory lock (waited for at most a minute)
    serialises concurrent callers, so two kernels resetting the same database cannot interleave
    DROP and CREATE. Behind a transaction pooler (``pooled``) a session lock would stay on a
    server connection the pooler keeps, so none is taken: a database created meanwhile by
    another caller simply counts as found.
    """
    caps = capabilities(url)
    if caps.in_process:
        return _reset_file(name) if reset else False
    if not caps.server_settings:
        return _create_elsewhere(url, name, reset=reset)
    import psycopg
    from psycopg import errors, sql

    _check_name(name)
    conninfo = psycopg_conninfo(url, dbname="postgres", connect_timeout=5)
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            if not pooled:
                conn.execute("SET lock_timeout = '60s'")
                conn.execute("SELECT pg_advisory_lock(hashtext('dbnb.create_database'))")
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            found = exists.fetchone() is not None
            if found and reset:
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
                found = False
            if not found:
                try:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                except errors.DuplicateDatabase:
                    return False
            return not found
    except psycopg.Error as exc:
        raise translate(_wrap(exc)) from exc


def _reset_file(name: str) -> bool:
    """Delete a SQLite database file (and its journal and WAL files); True if it existed."""
    from pathlib import Path

    if name in ("", ":memory:"):
        return False
    path = Path(name)
    existed = path.exists()
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return existed


def _create_elsewhere(url: URL, name: str, *, reset: bool) -> bool:
    """CREATE (after a DROP with ``reset``) a MySQL/MariaDB database; True if it was created."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    _check_name(name)
    caps = capabilities(url)
    server = url.set(drivername=f"{caps.name}+{caps.sync_driver}")._replace(database=None)
    engine = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=_null_pool(),
                           connect_args={"connect_timeout": 5})
    quoted = engine.dialect.identifier_preparer.quote(name)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :name"),
                {"name": name},
            ).first() is not None
            if found and reset:
                conn.exec_driver_sql(f"DROP DATABASE {quoted}")
                found = False
            if not found:
                conn.exec_driver_sql(
                    f"CREATE DATABASE IF NOT EXISTS {quoted} CHARACTER SET utf8mb4"
                )
            return not found
    except SQLAlchemyError as exc:
        raise translate(exc) from exc
    finally:
        engine.dispose()


def _null_pool() -> Any:
    from sqlalchemy.pool import NullPool

    return NullPool


def drop_database(url: URL, name: str) -> None:
    """Drop database ``name`` if it exists, disconnecting its sessions."""
    import psycopg
    from psycopg import sql

    _check_name(name)
    conninfo = psycopg_conninfo(url, dbname="postgres", connect_timeout=5)
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    except psycopg.Error as exc:
        raise translate(_wrap(exc)) from exc


def _wrap(exc: BaseException) -> BaseException:
    # translate() speaks SQLAlchemy's exception types; wrap the raw driver error the same way
    # SQLAlchemy would, so both paths share one mapping.
    import psycopg
    from sqlalchemy import exc as sa_exc

    operational = isinstance(exc, psycopg.OperationalError)
    wrapped = (sa_exc.OperationalError if operational else sa_exc.DBAPIError)("", None, exc)
    wrapped.__cause__ = exc
    return wrapped
