"""The registry behind idempotent :func:`connect`, and orderly shutdown at exit.

``connect()`` with the same URL and options returns the same open Database, so a notebook cell
re-run twenty times leaves one pool. ``close_all()`` closes them all; it also runs at exit.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import URL

from dbnb import environ
from dbnb.engine import connections
from dbnb.engine.bridge import close_runners
from dbnb.engine.database import Database
from dbnb.engine.replica_settings import ReplicaSettings
from dbnb.errors import ConfigError
from dbnb.server.admin import create_database
from dbnb.server.embedded import EmbeddedServer, embedded_server
from dbnb.settings import Settings, conceal, parse_url

__all__ = ["close_all", "connect", "open_databases"]

_DEFAULT_EMBEDDED_DATABASE = "dbnb"
_URL_VARIABLES = ("DBNB_URL", "DATABASE_URL")
_registry: dict[tuple[Any, ...], Database] = {}
_registry_lock = threading.Lock()


def _registry_key(settings: Settings, replicas: ReplicaSettings) -> tuple[Any, ...]:
    assert settings.url is not None
    return (settings.url.render_as_string(hide_password=False), repr(settings), replicas.key())


def open_databases() -> list[Database]:
    """Return the Databases opened through :func:`connect` that are still open."""
    with _registry_lock:
        return [db for db in _registry.values() if not db.closed]


def connect(
    url: str | URL | None = None,
    *,
    database: str | None = None,
    reset: bool = False,
    ask_password: bool = False,
    replicas: Sequence[str | URL] | str | None = None,
    max_replica_lag: float | None = None,
    replica_recheck: float | None = None,
    **options: Any,
) -> Database:
    """Connect to a database: a URL, a named connection, or else the embedded PostgreSQL.

    The URL comes from the argument (a URL, or the name of a connection in the connections
    file), else ``DBNB_URL``, else ``DATABASE_URL`` (a ``.env`` file counts), else the
    connection named ``default``; with none of them, an embedded PostgreSQL is started (or
    reused) in ``DBNB_HOME``. Calling ``connect`` again with the same URL and options returns
    the same open Database, so re-running a cell leaks nothing. See
    :mod:`dbnb.engine.connections` for the files.

    Args:
        url: ``postgresql://`` (``postgres://``, ``+psycopg``, ``+asyncpg``),
            ``sqlite:///file.db`` or ``sqlite:///:memory:``, ``mysql://`` or ``mariadb://``
            URL, or the name of a connection (``warehouse``).
        database: use this database on the same server instead of the URL's; it is created
            if missing (which needs the CREATEDB privilege on servers other than the embedded).
            For SQLite, the database file to use.
        reset: drop and recreate ``database`` first, for a fresh, deterministic start (SQLite:
            delete the file).
        ask_password: ask for the password at a prompt (getpass); it is kept in memory only.
        replicas: URLs of PostgreSQL streaming replicas of this server (a list, or text
            separated by commas; else ``DBNB_REPLICA_URLS``): reads go to them in turn,
            writes to the primary. Their database, and a user and password they leave out,
            are the primary's.
        max_replica_lag: seconds a replica may be behind and still serve reads (else
            ``DB_MAX_REPLICA_LAG``, default 10).
        replica_recheck: seconds between looks at a replica's lag, and before a skipped one
            is tried again (else ``DB_REPLICA_RECHECK``, default 5).
        **options: pool_size, max_overflow, pool_timeout, pool_recycle, pool_pre_ping, echo,
            echo_pool, statement_timeout, connect_timeout, application_name, slow_query_ms,
            dotenv (``False``: read no ``.env``); see :class:`~dbnb.Settings`.

    Example::

        db = dbnb.connect(database="tutorial_01", reset=True)
        db = dbnb.connect("sqlite:///shop.db")
        wh = dbnb.connect("warehouse")            # [warehouse] in the connections file
        db = dbnb.connect(primary_url, replicas=[replica_url])
    """
    url = conceal(url)  # a traceback printed with its variables must not show a password
    name = str(url) if isinstance(url, str) and connections.is_name(url) else None
    # A URL in the environment (or the .env file) wins over the connections file's default.
    seen = environ.read(dotenv=options.get("dotenv"))
    if url is None and not any(seen.get(v, "").strip() for v in _URL_VARIABLES):
        name = connections.DEFAULT if connections.find(connections.DEFAULT) else None
    if name is not None:
        found, entry_options = connections.resolve(name, ask_password=ask_password)
        url, options = found, {**entry_options, **options}
    elif ask_password:
        if url is None:
            raise ConfigError("ask_password=True needs a URL or a connection name to ask for")
        url = connections.with_asked_password(parse_url(url))
    settings = Settings.resolve(url, **options)
    server: EmbeddedServer | None = None
    if settings.url is None:
        server = embedded_server()
        settings = settings.with_url(server.url(database or _DEFAULT_EMBEDDED_DATABASE))
    elif database is not None:
        assert settings.url is not None
        settings = settings.with_url(settings.url.set(database=database))
    elif reset:
        raise ConfigError("reset=True needs database=...: name the database to recreate")
    assert settings.url is not None
    replica_settings = ReplicaSettings.resolve(
        replicas, settings.url, max_replica_lag=max_replica_lag, replica_recheck=replica_recheck,
        environ=seen,
    )
    key = _registry_key(settings, replica_settings)
    with _registry_lock:
        for stale in [k for k, v in _registry.items() if v.closed]:
            del _registry[stale]
        db = _registry.get(key)
        if db is not None and reset and not db.capabilities.server_settings:
            # SQLite's file or MySQL's database goes away under the pooled connections.
            db.close()
            db = None
        if db is not None and reset:
            db.refresh_pools()
        if database is not None or server is not None:
            create_database(
                settings.url, str(settings.url.database), reset=reset,
                pooled=settings.pooler == "transaction",
            )
        if db is None:
            db = Database(settings, embedded=server, replicas=replica_settings)
            _registry[key] = db
    _register_shutdown()
    return db


def close_all() -> None:
    """Close every Database opened through :func:`connect` in this process."""
    for db in open_databases():
        db.close()


async def _close_async_engines_of_this_loop() -> None:
    loop = asyncio.get_running_loop()
    for db in open_databases():
        if db._engines.owns_loop(loop):
            await db.asyncio.close()


def _shutdown() -> None:
    # The loops dbnb.run() kept close first, each after its own asyncpg connections have
    # closed gracefully; then every Database, which terminates whatever async sockets remain.
    close_runners(_close_async_engines_of_this_loop)
    close_all()


def _register_shutdown() -> None:
    # atexit runs handlers last-registered-first. Re-registering on every connect() keeps ours
    # ahead of the embedded server's own stop handler, so connections close before the server.
    atexit.unregister(_shutdown)
    atexit.register(_shutdown)
