"""Model/database drift: Alembic's autogenerate comparison plus partial-index predicates.

Alembic compares tables, columns, types, indexes and constraints but not the ``WHERE`` of a
partial index, so a unique index ``WHERE deleted_at IS NULL`` that lost its predicate would pass
unnoticed. :func:`predicate_changes` asks the server to normalise the model's predicate (it
builds the index on a temporary copy of the table inside a savepoint that is always rolled back)
and compares that with ``pg_get_expr`` of the real index; :mod:`dbnb.migrations.comparators`
registers it with Alembic, and :func:`compare` reports it as one drift per index.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Index, MetaData, Table, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import CreateIndex

from dbnb.dialects import capabilities
from dbnb.migrations.reports import Drift
from dbnb.phrasing import command as suggest

__all__ = [
    "TargetMetadata",
    "compare",
    "describe_diff",
    "predicate_changes",
    "two_ways_forward",
    "unversioned_tables",
]

#: What Alembic's ``target_metadata`` accepts: one MetaData, or several compared together.
TargetMetadata = MetaData | tuple[MetaData, ...]

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


def predicate_changes(conn: Connection, table: Table) -> list[tuple[Index, str | None, str | None]]:
    """The indexes of ``table`` whose partial-index ``WHERE`` differs from the database's.

    Each as ``(index, predicate in the database, predicate of the model)``, both as the server
    writes them. Indexes missing on either side are left to Alembic's own comparison.
    """
    rows = conn.execute(text(_DB_INDEXES), {"schema": table.schema, "table": table.name})
    in_db = {str(r.name): r.predicate for r in rows}
    changes = []
    for index in sorted(table.indexes, key=lambda i: str(i.name)):
        name = str(index.name)
        if name not in in_db:
            continue
        model = _model_predicate(conn, index)
        model = _normalised(conn, table, model) if model is not None else None
        if model != in_db[name]:
            changes.append((index, in_db[name], model))
    return changes


def compare(
    conn: Connection, metadata: TargetMetadata, options: dict[str, Any]
) -> tuple[Drift, ...]:
    """List every difference between ``metadata`` and the database on ``conn`` (changes nothing).

    Alembic's comparison, with dbnb's partial-index comparator registered (it reports a
    changed ``WHERE`` as a drop and re-create of the index; here it reads as one drift).
    """
    try:
        context = MigrationContext.configure(
            conn, opts={**options, "target_metadata": metadata}
        )
        # compare_metadata takes several MetaData too (as env.py's target_metadata does).
        diffs = compare_metadata(context, metadata)  # type: ignore[arg-type]
        every = metadata if isinstance(metadata, tuple) else (metadata,)
        predicates = capabilities(conn.dialect).index_predicates
        changed = [
            Drift("modify_index_where", table.name, str(index.name),
                  f"partial index WHERE: database {found}, models {model}")
            for table in (t for m in every for t in m.sorted_tables if predicates)
            for index, found, model in predicate_changes(conn, table)
        ]
        names = {d.name for d in changed}
        drifts = [
            d for diff in diffs for d in describe_diff(diff)
            if not (d.kind in {"add_index", "remove_index"} and d.name in names)
        ]
    finally:
        conn.rollback()
    return tuple(drifts + changed)


def unversioned_tables(conn: Connection, metadata: TargetMetadata) -> list[str]:
    """The models' tables the database already has, when it has no ``alembic_version``."""
    inspector = inspect(conn)
    if inspector.has_table("alembic_version"):
        return []
    every = metadata if isinstance(metadata, tuple) else (metadata,)
    present = set(inspector.get_table_names())
    return sorted(t.name for m in every for t in m.sorted_tables if t.name in present)


def two_ways_forward(tables: list[str]) -> str:
    """What to say about tables created without migrations (``create_all``): two ways on."""
    shown = ", ".join(tables[:4]) + (", ..." if len(tables) > 4 else "")
    baseline = suggest('revision -m "baseline" --baseline',
                       "dbnb.migrations.revision(db, 'baseline', baseline=True)")
    stamp = suggest("stamp head", "dbnb.migrations.stamp(db, 'head')")
    migrate = suggest("migrate", "dbnb.migrations.upgrade(db)")
    return (
        f"the database already has the models' tables ({shown}) but no alembic_version, so "
        f"nothing differs: either write a baseline revision that creates them ({baseline}) and "
        f"mark this database as having it ({stamp}), or drop the tables and let {migrate} "
        "create them from a revision autogenerated on the empty database"
    )
