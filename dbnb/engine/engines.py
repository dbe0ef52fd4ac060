"""Engine construction: one URL and its Settings become a psycopg and an asyncpg engine.

Pure construction, no state: :class:`~dbnb.engine.lifecycle.Engines` decides when to call
these and owns what they return. The URL is stored driver-neutral (``postgresql://``); each
driver gets its own spelling of it here, and only the query options it understands: libpq
options asyncpg has no use for (TCP tuning) reach psycopg alone, asyncpg's own options
(``command_timeout``…) reach asyncpg alone, and an option neither knows is refused with a
:class:`~dbnb.ConfigError` naming it.

dbnb's session settings (``statement_timeout``, ``idle_in_transaction_session_timeout``,
``client_connection_check_interval``) are never startup parameters: :mod:`dbnb.engine.events`
sets them once per connection, or, behind a transaction pooler, inside every transaction.

SQLite and MySQL/MariaDB engines are built by :func:`create_generic`: ``sqlite3`` and
``aiosqlite``; PyMySQL and aiomysql (see :mod:`dbnb.dialects`). An in-memory SQLite database is
one shared-cache database per Database, held by one connection per engine (SQLAlchemy's
``StaticPool``), so the sync and async engines and every session see the same tables.
"""

from __future__ import annotations

import uuid
from functools import cache
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from dbnb.dialects import capabilities
from dbnb.errors import ConfigError
from dbnb.settings import Settings

__all__ = [
    "async_url", "check_query", "create_async", "create_generic", "create_sync", "sync_url",
]

# libpq query parameters that asyncpg spells differently or takes as server settings.
_ASYNCPG_RENAMES = {"sslmode": "ssl", "connect_timeout": "timeout"}
_ASYNCPG_SERVER_SETTINGS = {"application_name", "options"}
_ASYNCPG_SAME = {"host", "port", "passfile", "target_session_attrs", "krbsrvname", "gsslib",
                 "service"}
# libpq options that only tune libpq's own transport: asyncpg goes without them.
_LIBPQ_ONLY = {
    "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
    "tcp_user_timeout", "client_encoding", "fallback_application_name", "load_balance_hosts",
    "hostaddr", "sslcompression", "sslsni", "sslkeylogfile",
}
# asyncpg's connect() options (and SQLAlchemy's asyncpg dialect's): psycopg goes without them.
_ASYNCPG_ONLY = {
    "command_timeout", "statement_cache_size", "max_cached_statement_lifetime",
    "max_cacheable_statement_size", "prepared_statement_cache_size", "direct_tls", "ssl",
}
# TCP keepalives for libpq (asyncpg's socket gets the same in dbnb.engine.events): a dead peer
# on a real network is noticed within about a minute even while no query is running.
KEEPALIVES = {"keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}
TCP_USER_TIMEOUT_MS = 30_000


@cache
def _libpq_keys() -> frozenset[str]:
    from psycopg.pq import Conninfo

    return frozenset(o.keyword.decode() for o in Conninfo.get_defaults())


def check_query(url: URL) -> None:
    """Refuse URL query options that neither driver understands, naming them.

    Raises:
        ConfigError: an option is neither a libpq connection parameter nor an asyncpg one.
    """
    if not capabilities(url).server_settings:
        return  # SQLite's and MySQL's drivers read their own options
    unknown = sorted(set(url.query) - _libpq_keys() - _ASYNCPG_ONLY)
    if unknown:
        raise ConfigError(
            f"the URL has option(s) {', '.join(unknown)} that neither psycopg (libpq) nor "
            "asyncpg understands; remove them (libpq's options: "
            "https://www.postgresql.org/docs/current/libpq-connect.html; asyncpg's: "
            f"{', '.join(sorted(_ASYNCPG_ONLY))})"
        )


def sync_url(url: URL) -> URL:
    """The URL for psycopg 3: every libpq query option as it is, asyncpg's own left out."""
    query = {k: v for k, v in url.query.items() if k not in _ASYNCPG_ONLY or k in _libpq_keys()}
    return url.set(drivername="postgresql+psycopg", query=query)


def async_url(url: URL) -> tuple[URL, dict[str, Any]]:
    """The URL for asyncpg, and the query options it takes as server settings instead.

    Raises:
        ConfigError: a libpq option asyncpg cannot honour and must not silently drop (TLS
            certificates and the like).
    """
    query: dict[str, Any] = {}
    server_settings: dict[str, Any] = {}
    refused = []
    for key, value in url.query.items():
        if key in _ASYNCPG_SERVER_SETTINGS:
            server_settings[key] = value
        elif key in _ASYNCPG_RENAMES or key in _ASYNCPG_SAME or key in _ASYNCPG_ONLY:
            query[_ASYNCPG_RENAMES.get(key, key)] = value
        elif key in _LIBPQ_ONLY:
            continue
        else:
            refused.append(key)
    if refused:
        raise ConfigError(
            f"asyncpg cannot honour the URL option(s) {', '.join(sorted(refused))} (psycopg "
            "can); dbnb will not drop them silently for the async engine. Use the sync API "
            "only, or configure TLS through a libpq service file / sslmode alone"
        )
    return url.set(drivername="postgresql+asyncpg", query=query), server_settings


def _memory_url(url: URL) -> URL:
    """A shared-cache in-memory database of its own, so both engines reach the same tables."""
    query = {**url.query, "mode": "memory", "cache": "shared", "uri": "true"}
    return url.set(database=f"file:dbnb-{uuid.uuid4().hex}", query=query)


def in_memory(url: URL) -> bool:
    """True for ``sqlite://`` and ``sqlite:///:memory:`` (and their shared-cache form)."""
    return capabilities(url).in_process and (
        (url.database or "") in ("", ":memory:") or url.query.get("mode") == "memory"
    )


def shared_memory(settings: Settings) -> Settings:
    """Give an in-memory SQLite URL a shared-cache name of its own (other URLs: unchanged)."""
    assert settings.url is not None
    if in_memory(settings.url) and settings.url.query.get("mode") != "memory":
        return settings.with_url(_memory_url(settings.url))
    return settings


def _missing_driver(backend: str, module: str, extra: str) -> ConfigError:
    return ConfigError(
        f"the {backend} driver {module} is not installed: pip install 'dbnb[{extra}]'"
    )


def create_generic(settings: Settings, *, asynchronous: bool) -> Engine | AsyncEngine:
    """Create a SQLite or MySQL/MariaDB engine (sync or async) with dbnb's pool options.

    Raises:
        ConfigError: the backend's async driver is not installed (naming the pip extra).
    """
    from importlib.util import find_spec

    from sqlalchemy.pool import StaticPool

    assert settings.url is not None
    caps = capabilities(settings.url)
    driver = caps.async_driver if asynchronous else caps.sync_driver
    if find_spec(driver) is None and driver != "pysqlite":
        raise _missing_driver(caps.label, driver, caps.extra or "")
    url = settings.url.set(drivername=f"{caps.name}+{driver}")
    options: dict[str, Any] = {"echo": settings.echo, "echo_pool": settings.echo_pool,
                               "hide_parameters": True}
    connect_args: dict[str, Any] = {}
    if caps.in_process:
        # sqlite3's timeout is its busy timeout: how long to wait for another writer's lock.
        connect_args["timeout"] = settings.connect_timeout
        connect_args["check_same_thread"] = False
        if in_memory(url):
            options["poolclass"] = StaticPool
        else:
            options.update(_pool_options(settings))
    else:
        # Timestamps are stored without a zone: the session speaks UTC, so NOW() is UTC too.
        connect_args["init_command"] = "SET time_zone = '+00:00'"
        connect_args["connect_timeout"] = settings.connect_timeout
        options.update(_pool_options(settings))
        options["pool_pre_ping"] = settings.pool_pre_ping
    make = create_async_engine if asynchronous else create_engine
    return make(url, connect_args=connect_args, **options)


def _pool_options(settings: Settings) -> dict[str, Any]:
    return {
        "pool_size": settings.pool_size,
        "max_overflow": settings.max_overflow,
        "pool_timeout": settings.pool_timeout,
        "pool_recycle": settings.pool_recycle,
        # dbnb.engine.events pings on checkout itself, with a deadline (pool_pre_ping has none).
        "pool_pre_ping": False,
        "echo": settings.echo,
        "echo_pool": settings.echo_pool,
        "hide_parameters": True,
    }


def transaction_pooler(settings: Settings) -> bool:
    """Tell whether the settings say a transaction-mode pooler stands in front of the server."""
    return settings.pooler == "transaction"


def create_sync(settings: Settings) -> Engine:
    """Create the sync engine for ``settings.url`` (psycopg for PostgreSQL) with dbnb's options."""
    assert settings.url is not None
    if not capabilities(settings.url).server_settings:
        engine = create_generic(settings, asynchronous=False)
        assert isinstance(engine, Engine)
        return engine
    connect_args: dict[str, Any] = {
        "application_name": settings.application_name,
        "connect_timeout": settings.connect_timeout,
        "keepalives": 1,
        **KEEPALIVES,
        "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
    }
    url = sync_url(settings.url)
    # The URL's own values win over dbnb's transport defaults (not over application_name,
    # which names dbnb's sessions on the server).
    for key in set(url.query) - {"application_name"}:
        connect_args.pop(key, None)
    if transaction_pooler(settings):
        # Server-side prepared statements do not survive a transaction pooler.
        connect_args["prepare_threshold"] = None
    return create_engine(url, connect_args=connect_args, **_pool_options(settings))


def _statement_name() -> str:
    # Unique across every client of a pooler's shared server connections.
    return f"__dbnb_{uuid.uuid4().hex}__"


def create_async(settings: Settings) -> AsyncEngine:
    """Create the async engine for ``settings.url`` (asyncpg for PostgreSQL), same options."""
    assert settings.url is not None
    if not capabilities(settings.url).server_settings:
        engine = create_generic(settings, asynchronous=True)
        assert isinstance(engine, AsyncEngine)
        return engine
    url, server_settings = async_url(settings.url)
    server_settings["application_name"] = settings.application_name
    connect_args: dict[str, Any] = {"server_settings": server_settings}
    if "timeout" not in url.query:
        connect_args["timeout"] = settings.connect_timeout
    if settings.command_timeout is not None and "command_timeout" not in url.query:
        connect_args["command_timeout"] = settings.command_timeout
    if transaction_pooler(settings):
        # As SQLAlchemy documents for PgBouncer: no statement caches, unique statement names.
        connect_args["statement_cache_size"] = 0
        connect_args["prepared_statement_name_func"] = _statement_name
        url = url.update_query_dict({"prepared_statement_cache_size": "0"})
    return create_async_engine(url, connect_args=connect_args, **_pool_options(settings))
