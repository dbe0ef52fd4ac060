"""Dask DataFrames from PostgreSQL and back, through dbnb's COPY reader and writer.

For results larger than one process or machine: a dask DataFrame whose partitions are dbnb
reads of ranges, run on the workers of your ``dask.distributed`` Client::

    import dbnb
    from dask.distributed import Client

    client = Client(cluster)                              # or LocalCluster(n_workers=2)
    ddf = dbnb.dask.read_frame(db, "SELECT * FROM events WHERE kind <> 'test'",
                               partition_on="id", partitions=16)
    ddf = events.to_dask(partitions=16)                   # a repository: filters, soft delete
    ddf.groupby("kind").amount.sum().compute()
    dbnb.dask.write_frame(ddf, events)                    # each partition through COPY

The dtypes are dbnb's (``meta`` comes from the server's description of the query, never from
reading a partition). **Credentials stay on the workers**: the task graph carries the server,
database and user, never the password; each worker finds it where libpq looks on that machine:
``PGPASSWORD``, ``PGPASSFILE`` or ``~/.pgpass`` (mode 0600), a service file, or trust / peer /
certificate authentication. A worker without one fails with an error saying what to set.
Each partition reads when its task runs, on its own connection (replicas take turns), so
partitions are not one snapshot: load into a quiet table, or read a replica, for a consistent
cut. Needs ``pip install 'dbnb[dask]'``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import Float, MetaData, Table, column, func, literal, literal_column, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import URL
from sqlalchemy.sql import bindparam
from sqlalchemy.types import NullType

from dbnb.engine.database import Database
from dbnb.errors import FilterError, FrameError
from dbnb.orm.async_repository import AsyncRepository
from dbnb.orm.dask_frames import collection, require_dask, write_collection
from dbnb.orm.repository import Repository

if TYPE_CHECKING:
    import dask.dataframe as dd
    from sqlalchemy import Select
    from sqlalchemy.orm import Session

    from dbnb.engine.replicas import Use
    from dbnb.frames.columns import DtypeBackend, JsonAs, UuidAs

__all__ = ["read_frame", "write_frame"]

_NO_COPY = ("use dbnb.read_frame() / from_frame() with dask.dataframe.from_pandas() and "
            "compute(); dbnb.dask reads and writes through PostgreSQL's COPY")
_TABLE_NAME = re.compile(r"^[A-Za-z_][\w$]*(\.[A-Za-z_][\w$]*)?$")


def _database(db: Database | str | URL) -> Database:
    if isinstance(db, Database):
        return db
    sync = getattr(db, "sync", None)  # an AsyncDatabase: its sync face plans the same way
    if isinstance(sync, Database):
        return sync
    from dbnb.engine.registry import connect

    return connect(db)


def _reflect(session: Session, name: str) -> Table:
    schema, _, table = name.rpartition(".")
    return Table(table, MetaData(), schema=schema or None, autoload_with=session.connection())


def _spread(session: Session, stmt: Select[Any], key: Any, partitions: int) -> list[Select[Any]]:
    """Cut ``stmt`` at even steps of ``key`` from its min to its max (else at its quantiles).

    ``key`` is a column of the one table (or subquery) ``stmt`` reads, which has no WHERE.
    """
    from dbnb.frames.partitions import even_cuts, value_ranges

    low, high = session.execute(select(func.min(key), func.max(key))).one()
    cuts = even_cuts(low, high, partitions)
    if cuts is None:
        fractions = literal([k / partitions for k in range(1, partitions)], ARRAY(Float))
        found = session.execute(
            select(func.percentile_disc(fractions).within_group(key))
        ).scalar()
        cuts = sorted({c for c in found or [] if c is not None})
    # Untyped binds: psycopg writes each cut as a literal of its own type (bigint, timestamptz).
    return value_ranges(stmt, key, [bindparam(None, c, type_=NullType()) for c in cuts])


def read_frame(
    db: Database | str | URL,
    sql_or_table: str | Table,
    params: dict[str, Any] | None = None,
    *,
    partition_on: str | None = "id",
    partitions: int = 16,
    dtype_backend: DtypeBackend = None,
    decimal: bool = False,
    uuid_as: UuidAs = "string",
    json_as: JsonAs = "object",
    use: Use = None,
) -> dd.DataFrame:
    """A dask DataFrame of a query or table: ``partitions`` COPY reads that run on the workers.

    ``sql_or_table`` is SQL text (one statement, ``:name`` parameters from ``params``), a
    table name (``events``, ``mart.events``) or a SQLAlchemy Table; a mapped model reads
    through ``Repository(Model, db).to_dask()`` instead (filters, soft delete). The rows are
    cut into ranges of the result column ``partition_on``: at a table's statistics, else at
    even steps from its minimum to its maximum (numbers, dates, timestamps) or at its
    quantiles (other types). A table read with ``partition_on=None`` is cut into ranges of
    pages (``ctid``). The server describes the query here, once; nothing is read until the
    frame is computed. ``db`` is a Database or a URL (any driver's spelling, asyncpg's too:
    the workers read with psycopg).

    Raises:
        FrameError: SQL text with ``partition_on=None`` and more than one partition, or a
            statement that returns no rows.
        FilterError: ``partition_on`` is not a column of the table.
        MissingExtra: dask is not installed.

    Example::

        ddf = dbnb.dask.read_frame(db, "SELECT * FROM events WHERE at >= :since",
                                   {"since": start}, partition_on="id", partitions=16)
    """
    require_dask()
    from dbnb.frames import parallel
    from dbnb.frames.columns import options_of
    from dbnb.frames.partitions import OrderKey, check_partitions
    from dbnb.frames.query import target_of

    check_partitions(partitions, limit=None, offset=None)
    options = options_of(dtype_backend, decimal, uuid_as, json_as)
    database = _database(db)
    database.capabilities.require("dbnb.dask.read_frame()", _NO_COPY)
    parts: list[Any]
    with database.session(read_only=True, use=use) as s:
        if isinstance(sql_or_table, Table) or _TABLE_NAME.match(sql_or_table):
            table = sql_or_table if isinstance(sql_or_table, Table) else _reflect(s, sql_or_table)
            stmt = select(table)
            if partition_on is not None and partition_on not in table.c:
                raise FilterError(
                    f"partition_on={partition_on!r} is not a column of {table.name}; choose "
                    f"from {', '.join(table.c.keys())}, or None for ranges of pages"
                )
            key = None if partition_on is None else OrderKey(table.c[partition_on], False)
            parts = parallel.cut(s, stmt, table, partitions, key)
            if len(parts) == 1 and key is not None and partitions > 1:  # no statistics yet
                parts = _spread(s, stmt, key.column, partitions)
        else:
            target = target_of(sql_or_table, params, what="dbnb.dask.read_frame()")
            if partition_on is None:
                if partitions > 1:
                    raise FrameError(
                        "SQL text is cut at a column of its result: pass partition_on='id' "
                        "(a column it returns), or partitions=1"
                    )
                parts = [target.executable]
            else:
                textual = target.executable.columns(column(partition_on))  # type: ignore[attr-defined]
                sub = textual.subquery("dbnb_q")
                stmt = select(literal_column("*")).select_from(sub)
                parts = _spread(s, stmt, sub.c[partition_on], partitions)
        read = parallel.plan_reads(s, parts, **options)
        url = s.connection().engine.url
    from dbnb.engine.remote import WorkerConnection

    return collection(read, (WorkerConnection.of(url, database.settings),))


def write_frame(
    frame: dd.DataFrame,
    target: Any,
    db: Database | str | URL | None = None,
    *,
    all_or_nothing: bool = False,
    naive_as: str | None = None,
) -> int:
    """Load a dask DataFrame into a table, each partition through COPY on a worker; rows written.

    ``target`` is a repository bound to a Database (``events``), a mapped model, a Table or a
    table name (then ``db`` says where: a Database or a URL). Columns are checked against the
    table before anything runs, as :meth:`~dbnb.Repository.from_frame` does.

    By default each partition is written in a transaction of its own, in parallel: if one
    fails, the partitions already committed stay. ``all_or_nothing=True`` loads through a
    staging table instead: an ``UNLOGGED`` table of the loaded columns is created once, every
    partition COPYs into it (in parallel, each in its own transaction), then one transaction
    runs ``INSERT INTO target SELECT ... FROM staging`` and drops it; if any partition or the
    insert fails the staging table is dropped and the target is untouched. The rows then pass
    through the server twice (staging, then target), and constraints are checked only by the
    final insert; the staging table lives in the target's schema, so the user needs CREATE
    there.

    Raises:
        FrameError: a column the table lacks, a NOT NULL column missing, or a repository
            bound to a Session (each partition commits on its own).
        MissingExtra: dask is not installed.

    Example::

        dbnb.dask.write_frame(ddf, events)                          # partition by partition
        dbnb.dask.write_frame(ddf, "events_copy", db, all_or_nothing=True)
    """
    require_dask()
    from dbnb.frames.load_input import table_of

    if isinstance(target, Repository | AsyncRepository):
        bound = getattr(target.bind, "sync", target.bind)
        if not isinstance(bound, Database):
            raise FrameError(
                "write_frame() commits each partition on its own, so the repository must be "
                "bound to a Database, not a Session"
            )
        db, target = db or bound, target.model
    if db is None:
        raise FrameError("write_frame() needs db= (a Database or URL) unless given a repository")
    database = _database(db)
    database.capabilities.require("dbnb.dask.write_frame()", _NO_COPY)
    if isinstance(target, str):
        with database.session() as s:
            target = _reflect(s, target)
    table, attributes = table_of(target)
    return write_collection(
        frame, table, attributes, database, all_or_nothing=all_or_nothing, naive_as=naive_as
    )
