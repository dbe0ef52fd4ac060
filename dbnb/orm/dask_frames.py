"""Dask DataFrames of dbnb reads, and dask DataFrames loaded partition by partition.

A read planned on the client (:func:`dbnb.frames.parallel.plan_reads`: one SELECT per range,
described once, dtypes from dbnb's rules) becomes a ``dask.dataframe`` with ``dd.from_map``:
each partition is a task that calls :class:`PartitionReader` on a worker, which connects with
its own credentials (:class:`~dbnb.engine.remote.WorkerConnection`: no password in the graph)
and reads its range through COPY. ``meta`` is the plan's empty frame, so no partition is
read to guess types, and every partition has exactly those dtypes.

Loads go the other way: :class:`PartitionWriter` writes one partition through COPY in a
transaction of its own on the worker, into the target table or into a staging table that
one ``INSERT ... SELECT`` then moves into the target (all or nothing).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, MetaData, Table, text
from sqlalchemy.dialects import postgresql

from dbnb.engine.remote import WorkerConnection
from dbnb.errors import MissingExtra

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd

    from dbnb.engine.database import Database
    from dbnb.frames.partitions import PartitionedRead

__all__ = [
    "PartitionReader",
    "PartitionWriter",
    "collection",
    "require_dask",
    "write_collection",
]

_quote = postgresql.dialect().identifier_preparer.quote  # type: ignore[no-untyped-call]
INSTALL = "pip install 'dbnb[dask]'"


def require_dask() -> None:
    """Make sure dask's DataFrame and distributed scheduler import, else say how to install them.

    Raises:
        MissingExtra: dask (with its DataFrame dependencies) is not installed.
    """
    try:
        import dask.dataframe  # noqa: F401
    except ImportError as exc:
        raise MissingExtra(
            f"Dask DataFrames need dask[dataframe] and distributed: install them with {INSTALL}"
        ) from exc


@dataclass(frozen=True)
class PartitionReader:
    """Read partition ``i`` of a planned read on a worker (what each task of the graph calls).

    ``connections`` are where the partitions read, in turn (replicas, or the primary); each
    carries no password.
    """

    read: PartitionedRead
    connections: tuple[WorkerConnection, ...]

    def __call__(self, index: int) -> pd.DataFrame:
        """COPY partition ``index`` on this process's connection; return it as a DataFrame."""
        from dbnb.frames.parallel import read_partition

        connection = self.connections[index % len(self.connections)]
        with connection.raw() as raw:
            tables = read_partition(raw, self.read, index)
        frame: pd.DataFrame = self.read.plan.combine(tables)  # pandas: dbnb.dask reads no other
        return frame


def collection(read: PartitionedRead, connections: tuple[WorkerConnection, ...]) -> dd.DataFrame:
    """The dask DataFrame of ``read``: one task per partition, ``meta`` from the plan."""
    require_dask()
    import dask
    import dask.dataframe as dd

    reader = PartitionReader(read, connections)
    # dask would turn object columns (JSON values) into strings: the dtypes stay dbnb's.
    with dask.config.set({"dataframe.convert-string": False}):
        frame: dd.DataFrame = dd.from_map(  # type: ignore[no-untyped-call]
            reader, range(len(read.queries)), meta=read.plan.empty(), label="dbnb-read",
            enforce_metadata=False,
        )
    return frame


@dataclass(frozen=True)
class PartitionWriter:
    """Load one partition through COPY in a transaction of its own on a worker; return its rows."""

    connection: WorkerConnection
    table: Table
    naive_as: str | None = None

    def __call__(self, frame: pd.DataFrame) -> int:
        """Write ``frame`` into :attr:`table`, committed when the COPY has finished."""
        from dbnb.frames.write import write_frame

        with self.connection.session() as session:
            return write_frame(session, self.table, frame, naive_as=self.naive_as, progress=False)


def loaded_columns(table: Table, frame_columns: list[Any], attributes: dict[str, str]) -> list[str]:
    """The columns a load of these frame columns writes (checked as a direct load would be).

    The frame's own, those filled on the client (Python defaults) and those whose default is
    a client-side SQL expression; the rest get the server's defaults.

    Raises:
        FrameError: a column the table lacks, or a NOT NULL column missing with no default.
    """
    from dbnb.frames.convert import plan_load

    plan = plan_load(table, frame_columns, attributes)
    rendered = [
        c.name for c in table.columns
        if c.name not in plan.columns and c.computed is None and c.server_default is None
        and c.default is not None and (c.default.is_clause_element or c.default.is_sequence)
    ]
    return [*plan.columns, *rendered]


def _each_partition(writer: PartitionWriter, frame: dd.DataFrame) -> list[int]:
    """Run ``writer`` on every partition of ``frame``, in parallel on the workers."""
    from dask.base import compute
    from dask.delayed import delayed

    parts: list[Any] = frame.to_delayed()  # type: ignore[no-untyped-call]
    counts = compute(*(delayed(writer)(p) for p in parts))  # type: ignore[no-untyped-call]
    return [int(c) for c in counts]


def _qualified(schema: str | None, name: str) -> str:
    return (f"{_quote(schema)}." if schema else "") + _quote(name)


def _staging_table(table: Table, columns: list[str]) -> Table:
    """The Table object the workers load into: the loaded columns, defaults and all."""
    name = f"dbnb_stage_{uuid.uuid4().hex[:12]}"
    copies: list[Column[Any]] = [c._copy() for c in table.columns if c.name in columns]
    return Table(name, MetaData(), *copies, schema=table.schema)


def write_collection(
    frame: dd.DataFrame,
    table: Table,
    attributes: dict[str, str],
    db: Database,
    *,
    all_or_nothing: bool = False,
    naive_as: str | None = None,
) -> int:
    """Load every partition of ``frame`` into ``table`` on the workers; return the rows written.

    See :func:`dbnb.dask.write_frame` for the two modes.
    """
    require_dask()
    columns = loaded_columns(table, list(frame.columns), attributes)
    # The workers get a bare Table (no mapper): frame columns named by attribute are renamed.
    renamed = {k: v for k, v in attributes.items() if k != v and k in frame.columns}
    if renamed:
        frame = frame.rename(columns=renamed)
    connection = WorkerConnection.of(db.url, db.settings)
    if not all_or_nothing:
        # A copy of its own: the model's MetaData (every other table) stays out of the tasks.
        writer = PartitionWriter(connection, table.to_metadata(MetaData()), naive_as)
        return sum(_each_partition(writer, frame))
    staging = _staging_table(table, columns)
    target = _qualified(table.schema, table.name)
    stage = _qualified(staging.schema, staging.name)
    names = ", ".join(_quote(c) for c in columns)
    with db.transaction() as s:
        s.execute(text(f"CREATE UNLOGGED TABLE {stage} AS SELECT {names} FROM {target} "
                       "WITH NO DATA"))
    try:
        writer = PartitionWriter(connection, staging, naive_as)
        _each_partition(writer, frame)
        with db.transaction() as s:
            result = s.execute(text(f"INSERT INTO {target} ({names}) SELECT {names} FROM {stage}"))
            written = int(getattr(result, "rowcount", 0))
            s.execute(text(f"DROP TABLE {stage}"))
    except BaseException:
        with db.transaction() as s:
            s.execute(text(f"DROP TABLE IF EXISTS {stage}"))
        raise
    return written
