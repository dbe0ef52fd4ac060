"""Settings: one frozen dataclass, resolved as argument > environment > default.

Environment variables:

==========================  =================================================  ==========
variable                    meaning                                            default
==========================  =================================================  ==========
``DBNB_URL``                database URL (wins over ``DATABASE_URL``)          embedded
``DATABASE_URL``            database URL                                       embedded
``DB_POOL_SIZE``            connections kept open per engine                   5
``DB_MAX_OVERFLOW``         extra connections allowed under load               10
``DB_POOL_TIMEOUT``         seconds to wait for a free connection              30
``DB_POOL_RECYCLE``         seconds after which a connection is replaced       1800
``DB_ECHO``                 log every statement (true/false)                   false
``DB_STATEMENT_TIMEOUT``    server-side statement timeout in milliseconds      none
==========================  =================================================  ==========
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from dbnb.errors import ConfigError, mask_secrets

__all__ = ["Settings", "parse_url", "safe_url"]

_SCHEMES = {
    "postgresql",
    "postgres",
    "postgresql+psycopg",
    "postgresql+psycopg2",
    "postgresql+asyncpg",
}
_ACCEPTED = "postgresql://, postgres://, postgresql+psycopg:// or postgresql+asyncpg://"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_url(value: str | URL, *, source: str = "url") -> URL:
    """Parse a PostgreSQL URL into a driver-neutral ``postgresql://`` SQLAlchemy URL.

    Args:
        value: any of ``postgresql://``, ``postgres://``, ``+psycopg`` or ``+asyncpg`` URLs;
            unix sockets as ``?host=/run/postgresql``.
        source: what to name in the error message (an argument or an environment variable).

    Raises:
        ConfigError: the scheme is not PostgreSQL or the URL is malformed.
    """
    if isinstance(value, URL):
        url = value
    else:
        text = value.strip()
        if "://" not in text:
            raise ConfigError(
                f"{source} is not a URL ({mask_secrets(text)!r}); expected {_ACCEPTED}, "
                "for example postgresql://user@localhost:5432/dbname"
            )
        try:
            url = make_url(text)
        except (ArgumentError, ValueError) as exc:
            raise ConfigError(
                f"{source} is malformed ({mask_secrets(text)!r}); expected {_ACCEPTED}"
            ) from exc
    if url.drivername not in _SCHEMES:
        raise ConfigError(
            f"{source} uses the scheme {url.drivername!r}; dbnb speaks PostgreSQL only: "
            f"use {_ACCEPTED}"
        )
    try:
        port = url.port
    except ValueError as exc:  # make_url defers port parsing in some versions
        raise ConfigError(f"{source} has a port that is not a number") from exc
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"{source} has port {port}; use a port between 1 and 65535")
    if "password" in url.query:
        # Keep the password where URL's repr hides it, not in the query string where it shows.
        password = url.query["password"]
        url = url.difference_update_query(["password"]).set(
            password=password if isinstance(password, str) else password[0]
        )
    return url.set(drivername="postgresql")


def safe_url(url: URL) -> str:
    """Render a URL for humans: password hidden, socket directories and options kept."""
    query = {k: ("***" if k.lower() == "password" else v) for k, v in url.query.items()}
    return mask_secrets(url.set(query=query).render_as_string(hide_password=True))


def _env_int(environ: Mapping[str, str], name: str, *, minimum: int) -> int | None:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(
            f"{name}={raw!r} is not a whole number; set it to an integer >= {minimum}"
        ) from None
    if value < minimum:
        raise ConfigError(f"{name}={value} is too small; set it to an integer >= {minimum}")
    return value


def _env_float(environ: Mapping[str, str], name: str) -> float | None:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number; use seconds, e.g. 30 or 0.5") from None
    if value <= 0:
        raise ConfigError(f"{name}={value} must be a positive number of seconds")
    return value


def _env_bool(environ: Mapping[str, str], name: str) -> bool | None:
    raw = environ.get(name)
    if raw is None:
        return None
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean; use true/false, 1/0, yes/no or on/off")


def _default_application_name() -> str:
    return f"dbnb:{os.getpid()}"


@dataclass(frozen=True)
class Settings:
    """How to reach the database and size its pools.

    Build it with :meth:`Settings.resolve` to apply the precedence argument > environment >
    default; ``url=None`` means "the embedded PostgreSQL".
    """

    url: URL | None = None
    pool_size: int = 5
    max_overflow: int = 10
    pool_timeout: float = 30.0
    pool_recycle: int = 1800
    echo: bool = False
    statement_timeout: int | None = None
    connect_timeout: int = 5
    application_name: str = field(default_factory=_default_application_name)

    def __post_init__(self) -> None:
        checks: list[tuple[str, Any, bool, str]] = [
            ("pool_size", self.pool_size, _is_int(self.pool_size, 1), "an integer >= 1"),
            ("max_overflow", self.max_overflow, _is_int(self.max_overflow, 0), "an integer >= 0"),
            ("pool_recycle", self.pool_recycle, _is_int(self.pool_recycle, -1), "an integer"),
            (
                "pool_timeout",
                self.pool_timeout,
                isinstance(self.pool_timeout, int | float)
                and not isinstance(self.pool_timeout, bool)
                and self.pool_timeout > 0,
                "a positive number of seconds",
            ),
            (
                "statement_timeout",
                self.statement_timeout,
                self.statement_timeout is None or _is_int(self.statement_timeout, 0),
                "milliseconds as an integer >= 0, or None",
            ),
            (
                "connect_timeout",
                self.connect_timeout,
                _is_int(self.connect_timeout, 1),
                "whole seconds >= 1",
            ),
        ]
        for name, value, ok, accepted in checks:
            if not ok:
                raise ConfigError(f"{name}={value!r} is invalid; use {accepted}")
        if not isinstance(self.echo, bool):
            raise ConfigError(f"echo={self.echo!r} is invalid; use True or False")

    @classmethod
    def resolve(
        cls,
        url: str | URL | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        **options: Any,
    ) -> Settings:
        """Resolve settings: explicit arguments win, then the environment, then defaults.

        Args:
            url: the database URL; when ``None``, ``DBNB_URL`` then ``DATABASE_URL`` are read,
                and with neither set the embedded server is used.
            environ: the environment to read (``os.environ`` by default).
            **options: any other field of :class:`Settings` (``pool_size=10``, ...).

        Raises:
            ConfigError: an unknown option, or a value that cannot be used.
        """
        env = os.environ if environ is None else environ
        known = {f.name for f in fields(cls)} - {"url"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(
                f"unknown option(s) {', '.join(unknown)}; accepted: {', '.join(sorted(known))}"
            )
        values: dict[str, Any] = {}
        if url is not None:
            values["url"] = parse_url(url, source="url")
        else:
            for name in ("DBNB_URL", "DATABASE_URL"):
                if env.get(name, "").strip():
                    values["url"] = parse_url(env[name], source=name)
                    break
        from_env: dict[str, Any] = {
            "pool_size": _env_int(env, "DB_POOL_SIZE", minimum=1),
            "max_overflow": _env_int(env, "DB_MAX_OVERFLOW", minimum=0),
            "pool_timeout": _env_float(env, "DB_POOL_TIMEOUT"),
            "pool_recycle": _env_int(env, "DB_POOL_RECYCLE", minimum=-1),
            "echo": _env_bool(env, "DB_ECHO"),
            "statement_timeout": _env_int(env, "DB_STATEMENT_TIMEOUT", minimum=0),
        }
        values.update({k: v for k, v in from_env.items() if v is not None})
        values.update({k: v for k, v in options.items() if v is not None})
        return cls(**values)

    def with_url(self, url: URL) -> Settings:
        """Return a copy pointing at ``url`` (used when the embedded server supplies one)."""
        return replace(self, url=url)

    def __repr__(self) -> str:
        shown = "embedded" if self.url is None else safe_url(self.url)
        return (
            f"Settings(url={shown}, pool_size={self.pool_size}, max_overflow={self.max_overflow},"
            f" pool_timeout={self.pool_timeout}, pool_recycle={self.pool_recycle},"
            f" echo={self.echo}, statement_timeout={self.statement_timeout},"
            f" application_name={self.application_name!r})"
        )


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum
