"""Model/database drift: Alembic's autogenerate comparison plus partial-index predicates.

Alembic compares tables, columns, types, indexes and constraints but not the ``WHERE`` of a
partial index, so a unique index ``WHERE deleted_at IS NULL`` that lost its predicate would pass
unnoticed. :func:`compare` asks the server to normalise the model's predicate (it builds the
index on a temporary copy of the table inside a savepoint that is always rolled back) and
compares that with ``pg_get_expr`` of the real index.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Index, Table, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import CreateIndex

from dbnb.migrations.config import TargetMetadata
from dbnb.migrations.reports import Drift

__all__ = ["compare", "describe_diff"]

_DB_INDEXES = """
SELECT c.relname AS name, pg_get_expr(i.indpred, i.indrelid) AS predicate
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = coalesce(:schema, current_schema()) AND t.relname = :table
"""
_PROBE_TABLE = "dbnb_drift_probe"


def _name(obj: Any) -> str:
    return str(getattr(obj, "name", None) or "")


def _table_of(obj: Any) -> str:
    table = getattr(obj, "table", None)
    return _name(table) if table is not None else ""


def describe_diff(diff: Any) -> list[Drift]:
    """Turn one entry of Alembic's ``compare_metadata`` / ``as_diffs()`` into Drift rows."""
    if isinstance(diff, list):
        return [d for item in diff for d in describe_diff(item)]
    kind = str(diff[0])
    if kind in {"add_table", "remove_table"}:
        table = diff[1]
        return [Drift(kind, table.name, table.name, f"{kind.replace('_', ' ')} {table.name}")]
    if kind in {"add_column", "remove_column"}:
        _, _schema, table, column = diff
        what = f"{kind.replace('_', ' ')} {table}.{column.name} {column.type}"
        return [Drift(kind, table, column.name, what)]
    if kind.startswith("modify_"):
        _, _schema, table, column, _existing, old, new = diff
        detail = f"{kind} {table}.{column}: database {old!s}, models {new!s}"
        return [Drift(kind, table, column, detail)]
    obj = diff[1]
    detail = f"{kind.replace('_', ' ')} {_name(obj) or obj!s} on {_table_of(obj)}"
    return [Drift(kind, _table_of(obj), _name(obj), detail)]


def _model_predicate(conn: Connection, index: Index) -> str | None:
    if index.dialect_options["postgresql"].get("where") is None:
        return None
    ddl = str(CreateIndex(index).compile(dialect=conn.dialect))
    return ddl.partition(" WHERE ")[2].strip() or None


def _normalised(conn: Connection, table: Table, predicate: str) -> str:
    """Let the server rewrite ``predicate`` as it would store it (pg_get_expr)."""
    savepoint = conn.begin_nested()
    try:
        source = conn.dialect.identifier_preparer.format_table(table)
        conn.execute(text(f"CREATE TEMP TABLE {_PROBE_TABLE} (LIKE {source})"))
        first = conn.execute(
            text(
                "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = "
                f"'pg_temp.{_PROBE_TABLE}'::regclass AND attnum > 0 AND NOT attisdropped "
                "ORDER BY attnum LIMIT 1"
            )
        ).scalar_one()
        probe = f"CREATE INDEX {_PROBE_TABLE}_ix ON pg_temp.{_PROBE_TABLE} ({first})"
        conn.execute(text(f"{probe} WHERE {predicate}"))
        return str(
            conn.execute(
                text(
                    "SELECT pg_get_expr(indpred, indrelid) FROM pg_index "
                    f"WHERE indexrelid = 'pg_temp.{_PROBE_TABLE}_ix'::regclass"
                )
            ).scalar_one()
        )
    except SQLAlchemyError as exc:
        return f"<cannot apply: {str(getattr(exc, 'orig', exc)).splitlines()[0]}>"
    finally:
        savepoint.rollback()


def _predicate_drifts(conn: Connection, metadata: TargetMetadata) -> list[Drift]:
    drifts = []
    every = metadata if isinstance(metadata, tuple) else (metadata,)
    for table in (t for m in every for t in m.sorted_tables):
        rows = conn.execute(text(_DB_INDEXES), {"schema": table.schema, "table": table.name})
        in_db = {str(r.name): r.predicate for r in rows}
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            name = str(index.name)
            if name not in in_db:
                continue  # missing indexes are Alembic's to report
            model = _model_predicate(conn, index)
            model = _normalised(conn, table, model) if model is not None else None
            found = in_db[name]
            if model != found:
                detail = f"partial index WHERE: database {found}, models {model}"
                drifts.append(Drift("modify_index_where", table.name, name, detail))
    return drifts


def compare(
    conn: Connection, metadata: TargetMetadata, options: dict[str, Any]
) -> tuple[Drift, ...]:
    """List every difference between ``metadata`` and the database on ``conn`` (changes nothing)."""
    try:
        context = MigrationContext.configure(
            conn, opts={**options, "target_metadata": metadata}
        )
        # compare_metadata takes several MetaData too (as env.py's target_metadata does).
        diffs = compare_metadata(context, metadata)  # type: ignore[arg-type]
        drifts = [d for diff in diffs for d in describe_diff(diff)]
        drifts += _predicate_drifts(conn, metadata)
    finally:
        conn.rollback()
    return tuple(drifts)
