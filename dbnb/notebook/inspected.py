"""``tables`` and ``describe`` where there is no PostgreSQL catalog: SQLAlchemy's inspector.

SQLite and MySQL/MariaDB answer through :func:`sqlalchemy.inspect`: table and view names,
columns, indexes (SQLite's partial ``WHERE`` included), unique, foreign-key and check
constraints. Row estimates and sizes are what PostgreSQL's planner statistics give; these
backends are not asked for them, so they stay empty rather than guessed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect
from sqlalchemy.engine import Connection

__all__ = ["describe_rows", "table_rows"]


def table_rows(conn: Connection) -> tuple[tuple[Any, ...], ...]:
    """(schema, name, kind, rows estimate, size) of every table and view; no estimates."""
    inspector = inspect(conn)
    schema = inspector.default_schema_name
    found = [(schema, n, "table", None, None) for n in inspector.get_table_names()]
    found += [(schema, n, "view", None, None) for n in inspector.get_view_names()]
    return tuple(found)


def _index(index: dict[str, Any]) -> str:
    columns = ", ".join(str(c) for c in index.get("column_names") or [])
    unique = "UNIQUE " if index.get("unique") else ""
    where = (index.get("dialect_options") or {}).get("sqlite_where")
    return f"{unique}({columns})" + (f" WHERE {where}" if where is not None else "")


def describe_rows(
    conn: Connection, table: str
) -> tuple[tuple[tuple[Any, ...], ...], tuple[tuple[str, str, str], ...]] | None:
    """The columns and the other objects of ``table``; None when there is no such table."""
    inspector = inspect(conn)
    schema, _, name = table.rpartition(".")
    schema_or_none = schema or None
    if not inspector.has_table(name, schema=schema_or_none) and name not in (
        inspector.get_view_names(schema=schema_or_none)
    ):
        return None
    keys = set(inspector.get_pk_constraint(name, schema=schema_or_none).get(
        "constrained_columns") or [])
    columns = tuple(
        (c["name"], str(c["type"]), bool(c.get("nullable", True)), c.get("default"),
         c["name"] in keys)
        for c in inspector.get_columns(name, schema=schema_or_none)
    )
    others: list[tuple[str, str, str]] = [
        ("index", str(i["name"]), _index(dict(i)))
        for i in inspector.get_indexes(name, schema=schema_or_none)
    ]
    for u in inspector.get_unique_constraints(name, schema=schema_or_none):
        others.append(("constraint", str(u.get("name")),
                       f"UNIQUE ({', '.join(u['column_names'])})"))
    for f in inspector.get_foreign_keys(name, schema=schema_or_none):
        others.append((
            "constraint", str(f.get("name")),
            f"FOREIGN KEY ({', '.join(f['constrained_columns'])}) REFERENCES "
            f"{f['referred_table']}({', '.join(f['referred_columns'])})",
        ))
    for c in inspector.get_check_constraints(name, schema=schema_or_none):
        others.append(("constraint", str(c.get("name")), f"CHECK ({c['sqltext']})"))
    return columns, tuple(others)
