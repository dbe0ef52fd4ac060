"""Engine construction: one URL and its Settings become a psycopg and an asyncpg engine.

Pure construction, no state: :class:`~dbnb.engine.lifecycle.Engines` decides when to call
these and owns what they return. The URL is stored driver-neutral (``postgresql://``); each
driver gets its own spelling of it here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from dbnb.settings import Settings

__all__ = ["async_url", "create_async", "create_sync", "sync_url"]

# libpq query parameters that asyncpg spells differently or takes as server settings.
_ASYNCPG_RENAMES = {"sslmode": "ssl", "connect_timeout": "timeout"}
_ASYNCPG_SERVER_SETTINGS = {"application_name", "options"}


def sync_url(url: URL) -> URL:
    """The URL for psycopg 3 (libpq spells every query option as it is)."""
    return url.set(drivername="postgresql+psycopg")


def async_url(url: URL) -> tuple[URL, dict[str, Any]]:
    """The URL for asyncpg, and the query options it takes as server settings instead."""
    query: dict[str, Any] = {}
    server_settings: dict[str, Any] = {}
    for key, value in url.query.items():
        if key in _ASYNCPG_SERVER_SETTINGS:
            server_settings[key] = value
        else:
            query[_ASYNCPG_RENAMES.get(key, key)] = value
    return url.set(drivername="postgresql+asyncpg", query=query), server_settings


def _pool_options(settings: Settings) -> dict[str, Any]:
    return {
        "pool_size": settings.pool_size,
        "max_overflow": settings.max_overflow,
        "pool_timeout": settings.pool_timeout,
        "pool_recycle": settings.pool_recycle,
        "pool_pre_ping": True,
        "echo": settings.echo,
        "hide_parameters": True,
    }


def create_sync(settings: Settings) -> Engine:
    """Create the psycopg engine for ``settings.url`` with dbnb's pool and session options."""
    assert settings.url is not None
    connect_args: dict[str, Any] = {
        "application_name": settings.application_name,
        "connect_timeout": settings.connect_timeout,
    }
    if settings.statement_timeout is not None:
        connect_args["options"] = f"-c statement_timeout={settings.statement_timeout}"
    return create_engine(
        sync_url(settings.url), connect_args=connect_args, **_pool_options(settings)
    )


def create_async(settings: Settings) -> AsyncEngine:
    """Create the asyncpg engine for ``settings.url`` with the same pool and session options."""
    assert settings.url is not None
    url, server_settings = async_url(settings.url)
    server_settings["application_name"] = settings.application_name
    if settings.statement_timeout is not None:
        server_settings["statement_timeout"] = str(settings.statement_timeout)
    return create_async_engine(
        url,
        connect_args={"server_settings": server_settings, "timeout": settings.connect_timeout},
        **_pool_options(settings),
    )
