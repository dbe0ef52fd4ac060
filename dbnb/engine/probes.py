"""What ``health()`` and ``info()`` ask each backend: the same questions in its own catalog.

PostgreSQL answers from ``pg_stat_activity`` (:mod:`dbnb.engine.server_info`); MySQL/MariaDB from
``information_schema`` (size of its tables, connections by command, transactions left open by
sleeping sessions, long queries); SQLite from its pragmas (the file's size). A question a
backend has no answer to is ``None``, so the report leaves that field out instead of inventing
it: SQLite has no connections or sessions to list, neither SQLite nor MySQL an application name.
"""

from __future__ import annotations

from dataclasses import dataclass

from dbnb.dialects import Capabilities
from dbnb.engine import server_info

__all__ = ["InfoQueries", "info_queries", "version_sql"]

_LONG = server_info.LONG_RUNNING_SECONDS


@dataclass(frozen=True)
class InfoQueries:
    """The SQL behind ``info()``: the head row, then row lists (None: not on this backend)."""

    head: str
    connections: str | None
    idle: str | None
    long: str | None


_POSTGRESQL = InfoQueries(
    server_info.SERVER_INFO_SQL, server_info.CONNECTIONS_SQL, server_info.IDLE_IN_TRANSACTION_SQL,
    server_info.LONG_RUNNING_SQL,
)
_SQLITE = InfoQueries(
    """
    SELECT sqlite_version() AS version,
           (SELECT COALESCE(NULLIF(file, ''), ':memory:') FROM pragma_database_list
            WHERE name = 'main') AS database,
           (SELECT page_count FROM pragma_page_count()) * (SELECT page_size FROM pragma_page_size())
               AS size_bytes,
           NULL AS size_pretty, NULL AS application_name
    """,
    None,
    None,
    None,
)
_MYSQL = InfoQueries(
    """
    SELECT VERSION() AS version, DATABASE() AS `database`,
           (SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables
            WHERE table_schema = DATABASE()) AS size_bytes,
           NULL AS size_pretty, NULL AS application_name
    """,
    """
    SELECT LOWER(command) AS state, COUNT(*) AS n FROM information_schema.processlist
    WHERE db = DATABASE() AND user = SUBSTRING_INDEX(USER(), '@', 1)
    GROUP BY LOWER(command) ORDER BY 1
    """,
    """
    SELECT p.id AS pid, p.user AS application_name, p.time AS idle_seconds,
           COALESCE(LEFT(t.trx_query, 200), '') AS last_query
    FROM information_schema.innodb_trx t
    JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id
    WHERE p.command = 'Sleep' AND p.db = DATABASE() AND p.id <> CONNECTION_ID()
    ORDER BY p.time DESC
    """,
    f"""
    SELECT id AS pid, user AS application_name, time AS idle_seconds,
           LEFT(info, 200) AS last_query
    FROM information_schema.processlist
    WHERE command = 'Query' AND time > {_LONG} AND db = DATABASE() AND id <> CONNECTION_ID()
    ORDER BY time DESC
    """,
)


_INFO = {"postgresql": _POSTGRESQL, "sqlite": _SQLITE, "mysql": _MYSQL, "mariadb": _MYSQL}
_VERSION = {
    "postgresql": "SHOW server_version",
    "sqlite": "SELECT sqlite_version()",
    "mysql": "SELECT VERSION()",
    "mariadb": "SELECT VERSION()",
}


def info_queries(caps: Capabilities) -> InfoQueries:
    """The ``info()`` queries for a backend."""
    return _INFO[caps.name]


def version_sql(caps: Capabilities) -> str:
    """The query that returns the server's (or library's) version."""
    return _VERSION[caps.name]
