"""UUIDv7 keys (RFC 9562): time-ordered ids, made by the client and by the server alike.

A version 7 UUID starts with the Unix time in milliseconds, so new keys land at the end of the
primary-key index (no random page splits as with v4) and sort by creation time. Two sources,
never a silent fallback to v4:

- the client: :func:`uuid7`, the standard library's ``uuid.uuid7()`` on Python >= 3.14, else
  ``uuid_utils.compat.uuid7()`` (a dependency on older Pythons: the Rust ``uuid`` crate, v7
  monotonic within a millisecond, returning ``uuid.UUID``); the ORM uses it for every INSERT;
- the server: the column's default ``uuidv7()``, for rows that arrive another way (``COPY``
  from :meth:`~dbnb.Repository.from_frame`, raw SQL). PostgreSQL 18 has ``uuidv7()`` built in;
  on an older server dbnb creates a SQL function ``uuidv7()`` (:data:`CREATE_UUIDV7`, same
  layout: 48 bits of milliseconds, 12 bits of sub-millisecond time, version 7, variant 10, 62
  random bits) just before it creates a table that uses it (a ``before_create`` event), and
  :func:`ensure_uuidv7` does the same in a migration. The default's text is ``uuidv7()`` on
  both, so Alembic's ``compare_server_default`` finds nothing to change. SQLite and
  MySQL/MariaDB get the same layout as an expression default in their own SQL.
"""

from __future__ import annotations

import functools
import sys
import uuid
from typing import Any

from sqlalchemy import DDL, Column, Table, event
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.functions import FunctionElement

__all__ = ["CREATE_UUIDV7", "UUIDv7PrimaryKey", "ensure_uuidv7", "uuid7", "uuidv7"]

#: Creates ``uuidv7()`` in the current schema when the server has none (PostgreSQL < 18);
#: does nothing on PostgreSQL 18, whose built-in one is used, or when one is already there.
CREATE_UUIDV7 = """\
DO $dbnb_uuidv7$
BEGIN
  IF current_setting('server_version_num')::int < 180000
     AND to_regprocedure('uuidv7()') IS NULL THEN
    CREATE FUNCTION uuidv7() RETURNS uuid LANGUAGE sql VOLATILE PARALLEL SAFE AS $fn$
      SELECT encode(
        set_bit(set_bit(set_bit(
          overlay(uuid_send(gen_random_uuid())
                  PLACING substring(int8send(floor(t.ms)::bigint) FROM 3)
                          || int2send(floor((t.ms - floor(t.ms)) * 4096)::int2)
                  FROM 1 FOR 8),
          52, 1), 53, 1), 54, 1),
        'hex')::uuid
      FROM (SELECT extract(epoch FROM clock_timestamp()) * 1000 AS ms) AS t
    $fn$;
    COMMENT ON FUNCTION uuidv7() IS
      'RFC 9562 UUID version 7 (made by dbnb for PostgreSQL < 18, which has no uuidv7())';
  END IF;
END
$dbnb_uuidv7$"""

_ENSURE = DDL(CREATE_UUIDV7).execute_if(dialect="postgresql")  # type: ignore[no-untyped-call]


def uuid7() -> uuid.UUID:
    """Make a new RFC 9562 version 7 UUID on the client (time-ordered, monotonic per process).

    Example::

        uuid7()   # UUID('0192...-...-7...')
    """
    made: uuid.UUID = _maker()()
    return made


@functools.cache
def _maker() -> Any:
    made = getattr(uuid, "uuid7", None)  # Python >= 3.14
    if made is not None:
        return made
    try:
        from uuid_utils import compat
    except ImportError as exc:  # a dependency below 3.14: only a broken install lacks it
        from dbnb.errors import MissingExtra

        raise MissingExtra(
            f"UUIDv7 keys on Python {sys.version_info[0]}.{sys.version_info[1]} need "
            "uuid-utils: pip install uuid-utils (dbnb depends on it; reinstall dbnb)"
        ) from exc
    return compat.uuid7


class uuidv7(FunctionElement[uuid.UUID]):
    """``uuidv7()``: a version 7 UUID made by the server (see the module's notes)."""

    inherit_cache = True


@compiles(uuidv7)
def _compile(element: Any, compiler: Any, **kw: Any) -> str:
    return "uuidv7()"


# SQLite and MySQL/MariaDB keep a UUID as 32 hex digits (SQLAlchemy's Uuid there): the same
# layout spelled in their SQL, milliseconds from the clock, the rest random.
@compiles(uuidv7, "sqlite")
def _compile_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    return (
        "lower(printf('%012x', CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))"
        " || '7' || substr(hex(randomblob(2)), 2, 3)"
        " || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(8)), 2, 15))"
    )


@compiles(uuidv7, "mysql")
@compiles(uuidv7, "mariadb")
def _compile_mysql(element: Any, compiler: Any, **kw: Any) -> str:
    return (
        "lower(concat(lpad(hex(floor(unix_timestamp(now(3)) * 1000)), 12, '0'), '7',"
        " substr(md5(concat(rand(), uuid())), 1, 3), substr('89ab', 1 + floor(rand() * 4), 1),"
        " substr(md5(concat(rand(), uuid())), 1, 15)))"
    )


def ensure_uuidv7(bind: Any) -> None:
    """Create ``uuidv7()`` where the server lacks it (PostgreSQL < 18), on a connection.

    Tables dbnb creates do this by themselves; call it in a migration that adds a
    ``UUIDv7PrimaryKey`` table, before ``op.create_table``::

        from alembic import op
        import dbnb

        def upgrade() -> None:
            dbnb.ensure_uuidv7(op.get_bind())
            op.create_table(...)
    """
    if bind.dialect.name == "postgresql":
        bind.exec_driver_sql(CREATE_UUIDV7)


@event.listens_for(Column, "after_parent_attach")
def _needs_function(column: Column[Any], parent: Any) -> None:
    """A table with a ``uuidv7()`` default makes sure the function exists before CREATE."""
    default = getattr(column.server_default, "arg", None)
    if (
        isinstance(default, uuidv7)
        and isinstance(parent, Table)
        and not event.contains(parent, "before_create", _ENSURE)
    ):
        event.listen(parent, "before_create", _ENSURE)


class UUIDv7PrimaryKey:
    """``id`` UUID primary key, version 7: made by the client, ``uuidv7()`` as server default.

    Ids sort by creation time and keep the primary-key index compact. The ORM sets each id
    with :func:`uuid7`; rows loaded by ``COPY`` or inserted by SQL get the server's
    ``uuidv7()`` (created on PostgreSQL < 18, see :mod:`dbnb.orm.uuidv7`). Never a v4.

    Example::

        class Event(UUIDv7PrimaryKey, Timestamps, Base):
            __tablename__ = "events"
    """

    id: Mapped[uuid.UUID] = mapped_column(
        primary_key=True, default=uuid7, server_default=uuidv7(), sort_order=-100
    )
