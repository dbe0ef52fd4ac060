"""What is in the database: ``tables`` and ``describe``, read from the PostgreSQL catalog.

Both return frozen snapshots (plain repr, ``_repr_html_``, ``.frame``); the catalog is read
once, on the sync engine, and the transaction is rolled back (nothing is changed). SQLite and
MySQL/MariaDB are read through SQLAlchemy's inspector (:mod:`dbnb.notebook.inspected`).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from dbnb.display.tables import Table
from dbnb.display.values import Count, Size, plural
from dbnb.driver_errors import translate
from dbnb.errors import NotFound
from dbnb.notebook import inspected

if TYPE_CHECKING:
    import pandas as pd

    from dbnb.engine.database import Database

__all__ = ["TableDescription", "TableList", "describe", "tables"]

_TABLES_SQL = """
SELECT n.nspname AS schema, c.relname AS name,
       CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table'
            WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' ELSE 'foreign table' END
         AS kind,
       -- reltuples is -1 until the first ANALYZE; the statistics' live-row count stands in.
       CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint ELSE s.n_live_tup END
         AS rows_estimate,
       pg_total_relation_size(c.oid) AS size_bytes
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
ORDER BY n.nspname = current_schema() DESC, 1, 2
"""
_COLUMNS_SQL = """
SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
       NOT a.attnotnull AS nullable, pg_get_expr(d.adbin, d.adrelid) AS default,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary
               AND a.attnum = ANY (i.indkey)) AS primary_key
FROM pg_attribute a
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = :oid AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
_OTHERS_SQL = """
SELECT 'index' AS kind, c.relname AS name, pg_get_indexdef(i.indexrelid) AS definition
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = :oid
UNION ALL
SELECT 'constraint', conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = :oid
UNION ALL
SELECT 'trigger', tgname, pg_get_triggerdef(oid) FROM pg_trigger
WHERE tgrelid = :oid AND NOT tgisinternal
ORDER BY 1, 2
"""

_LIST_COLUMNS = ("schema", "name", "kind", "rows_estimate", "size_bytes")
_LIST_LABELS = ("schema", "name", "kind", "rows (estimate)", "size")
_COLUMN_COLUMNS = ("name", "type", "nullable", "default", "primary_key")


def _frame(columns: tuple[str, ...], rows: tuple[tuple[Any, ...], ...]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(list(rows), columns=list(columns))


@dataclass(frozen=True)
class TableList:
    """The tables and views of the database (``rows_estimate`` from the planner statistics)."""

    rows: tuple[tuple[Any, ...], ...]

    @property
    def names(self) -> tuple[str, ...]:
        """Table names, schema-qualified outside the current schema's first entries."""
        return tuple(str(r[1]) for r in self.rows)

    @property
    def frame(self) -> pd.DataFrame:
        """The list as a DataFrame."""
        return _frame(_LIST_COLUMNS, self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def _table(self) -> Table:
        kinds = [str(r[2]) for r in self.rows]
        views = sum("view" in k for k in kinds)
        caption = plural(len(kinds) - views, "table")
        if views:
            caption += ", " + plural(views, "view")
        rows = [
            (*r[:3], None if r[3] is None else Count(r[3]), None if r[4] is None else Size(r[4]))
            for r in self.rows
        ]
        return Table(_LIST_LABELS, rows, caption=caption, empty="no tables yet")

    def __repr__(self) -> str:
        return self._table().text()

    def _repr_html_(self) -> str:
        return self._table().html()


@dataclass(frozen=True)
class TableDescription:
    """One table: its columns, then its indexes, constraints and triggers as PostgreSQL says."""

    name: str
    columns: tuple[tuple[Any, ...], ...]
    others: tuple[tuple[str, str, str], ...]

    @property
    def frame(self) -> pd.DataFrame:
        """The columns as a DataFrame."""
        return _frame(_COLUMN_COLUMNS, self.columns)

    def definitions(self, kind: str) -> dict[str, str]:
        """Name -> definition of the ``index``, ``constraint`` or ``trigger`` objects."""
        return {name: definition for k, name, definition in self.others if k == kind}

    def _tables(self) -> tuple[Table, Table]:
        columns = Table(
            _COLUMN_COLUMNS, self.columns,
            caption=f"table {self.name} ({plural(len(self.columns), 'column')})",
        )
        others = Table(
            ("kind", "name", "definition"), self.others,
            caption="indexes, constraints and triggers",
            empty="no indexes, constraints or triggers",
        )
        return columns, others

    def __repr__(self) -> str:
        columns, others = self._tables()
        return columns.text() + "\n\n" + others.text()

    def _repr_html_(self) -> str:
        columns, others = self._tables()
        return columns.html() + others.html()


def tables(db: Database) -> TableList:
    """List the tables and views, current schema first, with estimated rows and size."""
    try:
        with db.engine.connect() as conn:
            if db.capabilities.server_catalog:
                rows = tuple(tuple(r) for r in conn.execute(text(_TABLES_SQL)))
            else:
                rows = inspected.table_rows(conn)
            conn.rollback()
    except SQLAlchemyError as exc:
        raise translate(exc) from exc
    return TableList(rows)


def describe(db: Database, table: str) -> TableDescription:
    """Describe ``table`` (optionally ``schema.table``): columns, indexes, constraints, triggers.

    Args:
        db: the database to read.
        table: the table or view name, optionally schema-qualified.

    Raises:
        NotFound: no such table; the message suggests the closest names.
    """
    if not db.capabilities.server_catalog:
        return _describe_inspected(db, table)
    try:
        with db.engine.connect() as conn:
            oid = None
            with conn.begin_nested() as probe:
                try:
                    oid = conn.execute(text("SELECT to_regclass(:n)::oid"), {"n": table}).scalar()
                except SQLAlchemyError:
                    probe.rollback()  # not even a valid name: same answer as a missing table
            if oid is None:
                known = [str(r[1]) for r in conn.execute(text(_TABLES_SQL))]
                close = difflib.get_close_matches(table, known, n=3)
                hint = f"did you mean {', '.join(close)}?" if close else "%db tables lists them"
                raise NotFound(f"no table named {table!r}; {hint}")
            columns = tuple(tuple(r) for r in conn.execute(text(_COLUMNS_SQL), {"oid": oid}))
            others = tuple(
                (str(r.kind), str(r.name), str(r.definition))
                for r in conn.execute(text(_OTHERS_SQL), {"oid": oid})
            )
            conn.rollback()
    except SQLAlchemyError as exc:
        raise translate(exc) from exc
    return TableDescription(table, columns, others)


def _describe_inspected(db: Database, table: str) -> TableDescription:
    try:
        with db.engine.connect() as conn:
            found = inspected.describe_rows(conn, table)
            known = [str(r[1]) for r in inspected.table_rows(conn)] if found is None else []
            conn.rollback()
    except SQLAlchemyError as exc:
        raise translate(exc) from exc
    if found is None:
        close = difflib.get_close_matches(table, known, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "%db tables lists them"
        raise NotFound(f"no table named {table!r}; {hint}")
    return TableDescription(table, *found)
