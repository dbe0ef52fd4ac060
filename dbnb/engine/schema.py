"""``create_all``: the tables of models, a Base or a MetaData, created where they are missing.

The apps' ``init_db()``: what people run before they have migrations, and what test fixtures
run on a fresh (in-memory SQLite) database. Tables that exist are left alone; nothing is
altered (that is what migrations are for).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import MetaData, Table, inspect
from sqlalchemy.engine import Connection

__all__ = ["create_missing", "metadata_of"]


def _tables_of(item: Any) -> list[Table]:
    if isinstance(item, MetaData):
        return list(item.sorted_tables)
    if isinstance(item, Table):
        return [item]
    metadata = getattr(item, "metadata", None)
    mapper = inspect(item, raiseerr=False) if isinstance(item, type) else None
    local = getattr(mapper, "local_table", None)
    if isinstance(local, Table):
        return [local]
    if isinstance(metadata, MetaData):  # a declarative Base: every model on it
        return list(metadata.sorted_tables)
    raise TypeError(
        f"create_all takes a declarative Base, a model class, a Table or a MetaData (or a "
        f"list of them), got {type(item).__name__}"
    )


def metadata_of(models: Any) -> list[Table]:
    """The tables of ``models`` (a Base, a model, a Table, a MetaData, or a list of them)."""
    items: Iterable[Any] = models if isinstance(models, list | tuple | set) else [models]
    found: dict[int, Table] = {}
    for item in items:
        for table in _tables_of(item):
            found.setdefault(id(table), table)
    return list(found.values())


def create_missing(conn: Connection, tables: list[Table]) -> list[str]:
    """CREATE the ``tables`` that ``conn``'s database lacks, in dependency order; their names."""
    inspector = inspect(conn)
    missing = [t for t in tables if not inspector.has_table(t.name, schema=t.schema)]
    by_metadata: dict[int, tuple[MetaData, list[Table]]] = {}
    for table in missing:
        by_metadata.setdefault(id(table.metadata), (table.metadata, []))[1].append(table)
    for metadata, chosen in by_metadata.values():
        metadata.create_all(conn, tables=chosen)
    return [t.name for t in missing]
