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
``DB_POOL_PRE_PING``        check a pooled connection before lending it         true
``DB_ECHO``                 log every statement (true/false)                   false
``DB_ECHO_POOL``            log the pools' checkouts and returns (true/false)  false
``DB_SLOW_QUERY_MS``        log statements slower than this (ms) as warnings   none
``DB_STATEMENT_TIMEOUT``    server-side statement timeout in milliseconds      none
``DB_POOLER``               ``transaction`` behind PgBouncer-style poolers      none
``DB_CONNECT_TIMEOUT``      seconds to wait for a new connection               5
``DB_PING_TIMEOUT``         seconds a pooled connection has to answer a ping   5
``DB_COMMAND_TIMEOUT``      client-side bound on every call, in seconds        none
``DB_IDLE_IN_TRANSACTION_TIMEOUT``  ms a session may sit idle in a transaction  600000
``DB_MIGRATION_LOCK_TIMEOUT``  ms a migration waits for a table lock            10000
``DB_REDACT_VALUES``        hide quoted values in server messages (true/false)  false
==========================  =================================================  ==========

``DATABASE_POOL_SIZE``, ``DATABASE_MAX_OVERFLOW``, ``DATABASE_POOL_TIMEOUT``,
``DATABASE_POOL_RECYCLE``, ``DATABASE_POOL_PRE_PING``, ``DATABASE_ECHO`` and
``DATABASE_ECHO_POOL`` are aliases of the ``DB_*`` names (two that disagree are a
``ConfigError``); a ``.env`` file in the working directory or the project root is read under the
real environment (:mod:`dbnb.environ`).

On SQLite and MySQL/MariaDB, PostgreSQL's own settings follow one rule: those you must ask for
(``pooler``, ``statement_timeout``, ``command_timeout``) raise
:class:`~dbnb.UnsupportedOnDialect` when set; those that have defaults
(``idle_in_transaction_timeout``, ``migration_lock_timeout``, ``ping_timeout``) are not
applied there. On SQLite, ``connect_timeout`` is how long a statement waits for another
connection's write lock (SQLite's busy timeout), and the pool options apply to file databases
only (``:memory:`` is one connection shared by every session).

Every timeout must be finite and within PostgreSQL's range (at most 2,147,483,647 ms).
``idle_in_transaction_timeout`` defaults to ten minutes: long enough for a person stepping
through a transaction by hand, short enough that a frozen kernel does not hold its locks for
the rest of the day; ``%db sandbox``, which spans cells on purpose, switches it off for itself.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from sqlalchemy.engine import URL

from dbnb import environ as _environ
from dbnb.dialects import backend_of, capabilities
from dbnb.errors import ConfigError

# URL parsing lives in dbnb.urls; its names stay importable from here.
from dbnb.urls import Concealed, conceal, parse_url, safe_url

__all__ = ["POOLERS", "Concealed", "Settings", "conceal", "parse_url", "safe_url"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
#: The largest timeout PostgreSQL accepts, in milliseconds (INT_MAX).
MAX_TIMEOUT_MS = 2_147_483_647
#: Pooler modes: ``transaction`` changes how dbnb talks to the server; ``session`` is direct.
POOLERS = ("session", "transaction")
def _env_int(
    environ: Mapping[str, str], name: str, *, minimum: int, maximum: int | None = None
) -> int | None:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    top = f" and <= {maximum:,}" if maximum is not None else ""
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(
            f"{name}={raw!r} is not a whole number; set it to an integer >= {minimum}{top}"
        ) from None
    if value < minimum or (maximum is not None and value > maximum):
        raise ConfigError(f"{name}={value} is out of range; set it to an integer >= {minimum}{top}")
    return value


def _env_float(environ: Mapping[str, str], name: str) -> float | None:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number; use seconds, e.g. 30 or 0.5") from None
    if not _is_seconds(value):
        raise ConfigError(
            f"{name}={raw.strip()} is out of range; use a finite number of seconds > 0 and "
            f"<= {_MAX_SECONDS:,}"
        )
    return value


def _env_pooler(environ: Mapping[str, str]) -> str | None:
    raw = environ.get("DB_POOLER", "").strip().lower()
    if raw in ("", "none", "direct"):
        return None
    if raw not in POOLERS:
        raise ConfigError(
            f"DB_POOLER={raw!r} is not a pooler mode; use transaction (PgBouncer's "
            "pool_mode=transaction, most hosted poolers), session, or leave it unset"
        )
    return raw


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
    pooler: str | None = None
    ping_timeout: float = 5.0
    command_timeout: float | None = None
    idle_in_transaction_timeout: int | None = 600_000
    migration_lock_timeout: int = 10_000
    redact_values: bool = False
    pool_pre_ping: bool = True
    echo_pool: bool = False
    slow_query_ms: int | None = None

    def __post_init__(self) -> None:
        checks: list[tuple[str, Any, bool, str]] = [
            ("pool_size", self.pool_size, _is_int(self.pool_size, 1), "an integer >= 1"),
            ("max_overflow", self.max_overflow, _is_int(self.max_overflow, 0), "an integer >= 0"),
            ("pool_recycle", self.pool_recycle, _is_int(self.pool_recycle, -1), "an integer"),
            ("pool_timeout", self.pool_timeout, _is_seconds(self.pool_timeout), _SECONDS),
            ("ping_timeout", self.ping_timeout, _is_seconds(self.ping_timeout), _SECONDS),
            (
                "command_timeout",
                self.command_timeout,
                self.command_timeout is None or _is_seconds(self.command_timeout),
                f"{_SECONDS}, or None",
            ),
            (
                "statement_timeout",
                self.statement_timeout,
                self.statement_timeout is None or _is_ms(self.statement_timeout),
                _MS,
            ),
            (
                "idle_in_transaction_timeout",
                self.idle_in_transaction_timeout,
                self.idle_in_transaction_timeout is None
                or _is_ms(self.idle_in_transaction_timeout),
                _MS,
            ),
            (
                "migration_lock_timeout",
                self.migration_lock_timeout,
                _is_ms(self.migration_lock_timeout) and self.migration_lock_timeout > 0,
                "milliseconds as an integer from 1 to 2,147,483,647",
            ),
            (
                "connect_timeout",
                self.connect_timeout,
                _is_int(self.connect_timeout, 1) and self.connect_timeout <= _MAX_SECONDS,
                "whole seconds from 1 to 2,147,483",
            ),
            (
                "pooler",
                self.pooler,
                self.pooler is None or self.pooler in POOLERS,
                "'transaction', 'session' or None",
            ),
            ("echo", self.echo, isinstance(self.echo, bool), "True or False"),
            ("redact_values", self.redact_values, isinstance(self.redact_values, bool),
             "True or False"),
            ("pool_pre_ping", self.pool_pre_ping, isinstance(self.pool_pre_ping, bool),
             "True or False"),
            ("echo_pool", self.echo_pool, isinstance(self.echo_pool, bool), "True or False"),
            (
                "slow_query_ms",
                self.slow_query_ms,
                self.slow_query_ms is None or _is_ms(self.slow_query_ms),
                _MS,
            ),
        ]
        for name, value, ok, accepted in checks:
            if not ok:
                raise ConfigError(f"{name}={value!r} is invalid; use {accepted}")
        if self.url is not None:
            self._check_backend()

    def _check_backend(self) -> None:
        """Refuse PostgreSQL-only settings that were asked for on another backend."""
        assert self.url is not None
        caps = capabilities(self.url)
        if self.pooler is not None:
            caps.require(
                f"pooler={self.pooler!r}", "a pooler profile is for PgBouncer in front of "
                "PostgreSQL; leave pooler (DB_POOLER) unset",
            )
        if self.statement_timeout is not None:
            caps.require(
                "statement_timeout", "leave statement_timeout (DB_STATEMENT_TIMEOUT) unset; "
                "bound a query in its SQL instead (MySQL: /*+ MAX_EXECUTION_TIME(ms) */)",
            )
        if self.command_timeout is not None:
            caps.require(
                "command_timeout", "leave command_timeout (DB_COMMAND_TIMEOUT) unset",
            )

    @property
    def backend(self) -> str:
        """The backend of the URL: ``postgresql`` (also for the embedded server), ``sqlite``,
        ``mysql`` or ``mariadb``."""
        return "postgresql" if self.url is None else backend_of(self.url.drivername)

    @classmethod
    def resolve(
        cls,
        url: str | URL | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        dotenv: bool | str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> Settings:
        """Resolve settings: explicit arguments win, then the environment, then defaults.

        Args:
            url: the database URL; when ``None``, ``DBNB_URL`` then ``DATABASE_URL`` are read,
                and with neither set the embedded server is used.
            environ: the environment to read (``os.environ`` by default).
            dotenv: ``False`` reads no ``.env`` file; a directory to find one from; default:
                the working directory's or the project root's, under the real environment
                (see :mod:`dbnb.environ`).
            **options: any other field of :class:`Settings` (``pool_size=10``, ...).

        Raises:
            ConfigError: an unknown option, a value that cannot be used, or an alias and
                dbnb's name set to different values.
            UnsupportedOnDialect: a PostgreSQL-only setting asked of SQLite or MySQL.
        """
        # A view, not os.environ itself: a traceback printed with its frames' variables
        # (IPython's %xmode Verbose) must not show the whole environment.
        read = _environ.read(environ, dotenv=dotenv)
        env = _Environment(
            {**read, **{n: v for n in _environ.KNOWN if (v := _aliased(read, n)) is not None}}
        )
        url = conceal(url)
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
                    values["url"] = parse_url(conceal(env[name]), source=name)
                    break
        from_env: dict[str, Any] = {
            "pool_size": _env_int(env, "DB_POOL_SIZE", minimum=1),
            "max_overflow": _env_int(env, "DB_MAX_OVERFLOW", minimum=0),
            "pool_timeout": _env_float(env, "DB_POOL_TIMEOUT"),
            "pool_recycle": _env_int(env, "DB_POOL_RECYCLE", minimum=-1),
            "echo": _env_bool(env, "DB_ECHO"),
            "statement_timeout": _env_int(
                env, "DB_STATEMENT_TIMEOUT", minimum=0, maximum=MAX_TIMEOUT_MS
            ),
            "pooler": _env_pooler(env),
            "connect_timeout": _env_int(
                env, "DB_CONNECT_TIMEOUT", minimum=1, maximum=int(_MAX_SECONDS)
            ),
            "ping_timeout": _env_float(env, "DB_PING_TIMEOUT"),
            "command_timeout": _env_float(env, "DB_COMMAND_TIMEOUT"),
            "idle_in_transaction_timeout": _env_int(
                env, "DB_IDLE_IN_TRANSACTION_TIMEOUT", minimum=0, maximum=MAX_TIMEOUT_MS
            ),
            "migration_lock_timeout": _env_int(
                env, "DB_MIGRATION_LOCK_TIMEOUT", minimum=1, maximum=MAX_TIMEOUT_MS
            ),
            "redact_values": _env_bool(env, "DB_REDACT_VALUES"),
            "pool_pre_ping": _env_bool(env, "DB_POOL_PRE_PING"),
            "echo_pool": _env_bool(env, "DB_ECHO_POOL"),
            "slow_query_ms": _env_int(env, "DB_SLOW_QUERY_MS", minimum=0, maximum=MAX_TIMEOUT_MS),
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
            f" application_name={self.application_name!r}, pooler={self.pooler!r},"
            f" connect_timeout={self.connect_timeout}, ping_timeout={self.ping_timeout},"
            f" command_timeout={self.command_timeout},"
            f" idle_in_transaction_timeout={self.idle_in_transaction_timeout},"
            f" migration_lock_timeout={self.migration_lock_timeout},"
            f" redact_values={self.redact_values}, pool_pre_ping={self.pool_pre_ping},"
            f" echo_pool={self.echo_pool}, slow_query_ms={self.slow_query_ms})"
        )


_Environment = _environ.Environment


def _aliased(env: Mapping[str, str], name: str) -> str | None:
    found = _environ.setting(env, name)
    return None if found is None else found[0]


_MAX_SECONDS = MAX_TIMEOUT_MS / 1000
_SECONDS = "a finite number of seconds > 0 and <= 2,147,483"
_MS = "milliseconds as an integer from 0 to 2,147,483,647, or None"


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_ms(value: Any) -> bool:
    return _is_int(value, 0) and value <= MAX_TIMEOUT_MS


def _is_seconds(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 < value <= _MAX_SECONDS
    )
