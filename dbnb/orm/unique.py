"""Unique among live rows: the unique key of a soft-deletable table, on every backend.

A soft-deleted row keeps its email; a new user must be able to take it. PostgreSQL and SQLite
have partial indexes (``CREATE UNIQUE INDEX … WHERE deleted_at IS NULL``). MySQL and MariaDB
do not, so there the table gets a generated column ``dbnb_alive`` — ``1`` while the row is
alive, ``NULL`` once it is deleted — and the unique index covers ``(email, dbnb_alive)``: a
unique index ignores rows with a NULL in it, so deleted rows never conflict, and
``INSERT … ON DUPLICATE KEY UPDATE`` finds the live row only::

    class User(UUIDPrimaryKey, SoftDelete, Base):
        __tablename__ = "users"
        __table_args__ = (unique_while_alive("uq_users_email", "email"),)

``create_all`` builds either form. In migrations, ``op.create_index(..., postgresql_where=...,
sqlite_where=...)`` covers PostgreSQL and SQLite; on MySQL call :func:`mysql_alive_sql` through
``op.execute`` (the generated column is not a model column, so autogenerate leaves it alone:
see ``dbnb.migrations.config.context_options``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import DDL, Index, Table, event, text

from dbnb.dialects import capabilities

__all__ = ["ALIVE_COLUMN", "mysql_alive_sql", "unique_while_alive"]

#: The generated column MySQL/MariaDB tables get for their unique-while-alive keys.
ALIVE_COLUMN = "dbnb_alive"
_ALIVE = "deleted_at IS NULL"


def _partial(
    ddl: Any, target: Any, bind: Any, tables: Any = None, state: Any = None, *,
    dialect: Any, **kw: Any,
) -> bool:
    return capabilities(dialect).partial_index


def _no_partial(
    ddl: Any, target: Any, bind: Any, tables: Any = None, state: Any = None, *,
    dialect: Any, **kw: Any,
) -> bool:
    return not capabilities(dialect).partial_index


def mysql_alive_sql(table: str, name: str, columns: list[str], *, add_column: bool) -> list[str]:
    """The MySQL/MariaDB statements of one unique-while-alive key (and its generated column)."""
    statements = []
    if add_column:
        statements.append(
            f"ALTER TABLE `{table}` ADD COLUMN `{ALIVE_COLUMN}` TINYINT "
            f"AS (IF(`deleted_at` IS NULL, 1, NULL)) STORED"
        )
    cols = ", ".join(f"`{c}`" for c in [*columns, ALIVE_COLUMN])
    statements.append(f"CREATE UNIQUE INDEX `{name}` ON `{table}` ({cols})")
    return statements


def unique_while_alive(name: str, *columns: str) -> Index:
    """A unique index on ``columns`` among rows that are not soft-deleted (see the module).

    Args:
        name: the index name (``uq_<table>_<column>``, as the naming convention would say).
        *columns: the column names of the key.
    """
    index = Index(
        name, *columns, unique=True, postgresql_where=text(_ALIVE), sqlite_where=text(_ALIVE)
    )
    index.ddl_if(callable_=_partial)
    index.info[ALIVE_COLUMN] = True  # what migrations look for (dbnb.migrations.config)

    @event.listens_for(index, "after_parent_attach")
    def attached(target: Index, table: Table) -> None:
        first = not table.info.get(ALIVE_COLUMN)
        table.info[ALIVE_COLUMN] = True
        for sql in mysql_alive_sql(table.name, name, list(columns), add_column=first):
            ddl = DDL(sql)  # type: ignore[no-untyped-call]
            event.listen(table, "after_create", ddl.execute_if(callable_=_no_partial))

    return index
