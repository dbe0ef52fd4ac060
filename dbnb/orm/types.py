"""Column types and SQL defaults that mean the same on every backend.

- :class:`UtcDateTime`: ``timestamptz`` on PostgreSQL. SQLite and MySQL/MariaDB store no zone,
  so values are written as UTC and come back as UTC-aware datetimes, as they do from
  PostgreSQL; on MySQL the column keeps microseconds (``DATETIME(6)``).
- :func:`utc_now`: the current time in the database: ``now()``; SQLite's
  ``strftime('%Y-%m-%d %H:%M:%f', 'now')`` (milliseconds, where ``CURRENT_TIMESTAMP`` has
  whole seconds); MySQL's ``CURRENT_TIMESTAMP(6)`` (dbnb's sessions there speak UTC).
- :func:`random_uuid`: a random UUID made by the database, for rows inserted by plain SQL:
  ``gen_random_uuid()``; SQLite ``lower(hex(randomblob(16)))``; MySQL
  ``replace(uuid(), '-', '')`` (SQLAlchemy keeps UUIDs there as 32 hex digits).

The per-backend spellings are SQLAlchemy's own ``@compiles`` hooks, keyed by dialect.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

from dbnb.dialects import capabilities

__all__ = ["UtcDateTime", "random_uuid", "utc_now"]


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp everywhere: ``timestamptz``, or UTC where zones are not kept.

    Aware datetimes are converted to UTC before they are stored on SQLite and MySQL; naive ones
    are taken as UTC. Values read back are always aware (UTC).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if capabilities(dialect).datetime_fsp:
            from sqlalchemy.dialects.mysql import DATETIME

            return dialect.type_descriptor(DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None or not isinstance(value, datetime) or capabilities(dialect).timezones:
            return value
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None or not isinstance(value, datetime) or capabilities(dialect).timezones:
            return value
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def __repr__(self) -> str:
        return "DateTime(timezone=True)"


class utc_now(FunctionElement[datetime]):
    """The current time, in the database (see the module's table)."""

    type = UtcDateTime()
    inherit_cache = True


class random_uuid(FunctionElement[Any]):
    """A random UUID made by the database (see the module's table)."""

    inherit_cache = True


@compiles(utc_now)
def _now(element: Any, compiler: Any, **kw: Any) -> str:
    return "now()"


@compiles(utc_now, "sqlite")
def _now_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    return "strftime('%Y-%m-%d %H:%M:%f', 'now')"


@compiles(utc_now, "mysql")
@compiles(utc_now, "mariadb")
def _now_mysql(element: Any, compiler: Any, **kw: Any) -> str:
    return "CURRENT_TIMESTAMP(6)"


@compiles(random_uuid)
def _uuid(element: Any, compiler: Any, **kw: Any) -> str:
    return "gen_random_uuid()"


@compiles(random_uuid, "sqlite")
def _uuid_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    return "lower(hex(randomblob(16)))"


@compiles(random_uuid, "mysql")
@compiles(random_uuid, "mariadb")
def _uuid_mysql(element: Any, compiler: Any, **kw: Any) -> str:
    return "replace(uuid(), '-', '')"
