"""PostgreSQL's error fields, read the same from psycopg and asyncpg, and psql's ``LINE n`` view.

IO-free helpers of :mod:`dbnb.errors`: :func:`read_diagnostics` collects SQLSTATE, DETAIL, HINT,
position and the named objects from either driver's exception (SQLite's extended result codes
and MySQL/MariaDB's error numbers are given the SQLSTATE PostgreSQL uses for the same failure,
with the table, column or constraint their messages name); :func:`position_lines` renders a
position as psql does; :func:`relocate` moves a position from the SQL sent to the SQL written.
The bottom of the package: it imports nothing of dbnb.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

__all__ = ["as_sent", "position_lines", "read_diagnostics", "relocate"]

# Each diagnostic field: psycopg's name on ``exc.diag``, then asyncpg's name on the exception.
_FIELDS = {
    "sqlstate": ("sqlstate", "sqlstate"),
    "severity": ("severity_nonlocalized", "severity_en"),
    "message": ("message_primary", "message"),
    "detail": ("message_detail", "detail"),
    "hint": ("message_hint", "hint"),
    "position": ("statement_position", "position"),
    "schema": ("schema_name", "schema_name"),
    "table": ("table_name", "table_name"),
    "column": ("column_name", "column_name"),
    "datatype": ("datatype_name", "data_type_name"),
    "constraint": ("constraint_name", "constraint_name"),
}


# SQLite's extended result codes (sqlite3's ``sqlite_errorname``) -> PostgreSQL's SQLSTATE.
_SQLITE_STATES = {
    "SQLITE_CONSTRAINT_UNIQUE": "23505",
    "SQLITE_CONSTRAINT_PRIMARYKEY": "23505",
    "SQLITE_CONSTRAINT_FOREIGNKEY": "23503",
    "SQLITE_CONSTRAINT_NOTNULL": "23502",
    "SQLITE_CONSTRAINT_CHECK": "23514",
    "SQLITE_BUSY": "55P03",
    "SQLITE_LOCKED": "55P03",
    "SQLITE_INTERRUPT": "57014",
    "SQLITE_CANTOPEN": "08006",
}
# MySQL/MariaDB error numbers (PyMySQL's and aiomysql's ``args[0]``) -> SQLSTATE.
_MYSQL_STATES = {
    1062: "23505", 1451: "23503", 1452: "23503", 1048: "23502", 1364: "23502", 3819: "23514",
    4025: "23514", 1213: "40001", 1205: "55P03", 3024: "57014", 1969: "57014", 1064: "42601",
    1146: "42P01", 1054: "42703", 1049: "3D000", 1045: "28000", 2003: "08006", 2006: "08006",
    2013: "08006",
}
# SQLite's generic SQLITE_ERROR, by what its message says.
_SQLITE_MESSAGES = (
    ("no such table", "42P01"), ("no such column", "42703"), ("syntax error", "42601"),
    ("already exists", "42P07"),
)
_SQLITE_FAILED = re.compile(r"constraint failed: (?P<what>[^,\s]+)")
_MYSQL_KEY = re.compile(r"for key '(?:[^'.]*\.)?(?P<key>[^']+)'")
_MYSQL_CONSTRAINT = re.compile(r"CONSTRAINT `(?P<name>[^`]+)`")
_MYSQL_COLUMN = re.compile(r"(?:Column|Field) '(?P<column>[^']+)'")


def _other_backends(orig: BaseException) -> dict[str, str]:
    """SQLSTATE, message and named objects of a SQLite or MySQL/MariaDB driver exception."""
    name = getattr(orig, "sqlite_errorname", None)
    if isinstance(name, str):
        message = str(orig)
        found = {"message": message}
        state = _SQLITE_STATES.get(name) or _SQLITE_STATES.get("_".join(name.split("_")[:2]))
        if state is None:
            # Any other SQLite error is about the statement, never the connection (a file
            # that cannot be opened is SQLITE_CANTOPEN above).
            said = next((s for text, s in _SQLITE_MESSAGES if text in message), None)
            state = said or ("23000" if "CONSTRAINT" in name else "42000")
        found["sqlstate"] = state
        failed = _SQLITE_FAILED.search(message)
        if failed:
            what = failed.group("what")
            table, _, column = what.rpartition(".")
            if state == "23514":
                found["constraint"] = what
            elif table:
                found["table"], found["column"] = table, column
        return found
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    module = type(orig).__module__
    if module.startswith(("pymysql", "aiomysql")) and len(args) >= 2 and isinstance(args[0], int):
        message = str(args[1])
        found = {"message": message}
        if args[0] in _MYSQL_STATES:
            found["sqlstate"] = _MYSQL_STATES[args[0]]
        elif args[0] < 2000:  # the server's errors; 2000 and up are the client's (connection)
            found["sqlstate"] = "HY000"
        for pattern, key, group in (
            (_MYSQL_KEY, "constraint", "key"),
            (_MYSQL_CONSTRAINT, "constraint", "name"),
            (_MYSQL_COLUMN, "column", "column"),
        ):
            match = pattern.search(message)
            if match and key not in found:
                found[key] = match.group(group)
        return found
    return {}


def read_diagnostics(orig: BaseException | None) -> dict[str, str]:
    """Read PostgreSQL's error fields from a psycopg or asyncpg exception (or its wrapper).

    A SQLite or MySQL/MariaDB driver exception gives the SQLSTATE PostgreSQL would use for the
    same failure, its message, and the table, column or constraint the message names.
    """
    found: dict[str, str] = {}
    seen: set[int] = set()
    # SQLAlchemy's asyncpg adapter wraps the asyncpg exception; walk the cause chain.
    while orig is not None and id(orig) not in seen:
        seen.add(id(orig))
        for key, known in _other_backends(orig).items():
            found.setdefault(key, known)
        diag = getattr(orig, "diag", None)
        for key, (psycopg_name, asyncpg_name) in _FIELDS.items():
            for source, attr in ((diag, psycopg_name), (orig, asyncpg_name), (diag, key)):
                value = getattr(source, attr, None) if source is not None else None
                if isinstance(value, str) and value and key not in found:
                    found[key] = value
        severity = getattr(orig, "severity", None)
        if "severity" not in found and isinstance(severity, str):
            found["severity"] = severity
        orig = orig.__cause__ or getattr(orig, "orig", None)
    return found


_PYFORMAT = re.compile(r"%\((?:[^)]*)\)s|%s|%%")


def as_sent(statement: str, orig: BaseException | None) -> str:
    """The text the server parsed: psycopg turns ``%(name)s`` into ``$1`` before sending."""
    if orig is None or not type(orig).__module__.startswith("psycopg"):
        return statement
    numbers: dict[str, int] = {}

    def placeholder(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "%%":
            return "%"
        key = token if token != "%s" else f"%s{len(numbers)}"
        return f"${numbers.setdefault(key, len(numbers) + 1)}"

    return _PYFORMAT.sub(placeholder, statement)


def position_lines(statement: str, position: int) -> list[str]:
    """psql's ``LINE n: ...`` and a caret under the character at ``position`` (1-based)."""
    index = position - 1
    if not 0 <= index <= len(statement):
        return []
    start = statement.rfind("\n", 0, index) + 1
    end = statement.find("\n", index)
    text = statement[start : end if end >= 0 else len(statement)].rstrip("\r").replace("\t", " ")
    column = index - start
    if len(text) > _LINE_WIDTH:  # a window around the caret, as psql does for long lines
        left = max(0, min(column - _LINE_WIDTH // 2, len(text) - _LINE_WIDTH))
        shown = text[left : left + _LINE_WIDTH]
        head = "..." if left else ""
        tail = "..." if left + _LINE_WIDTH < len(text) else ""
        text, column = f"{head}{shown}{tail}", column - left + len(head)
    prefix = f"LINE {statement.count(chr(10), 0, index) + 1}: "
    return [prefix + text, " " * (len(prefix) + column) + "^"]


_LINE_WIDTH = 72
_UNDEFINED_COLUMN = re.compile(r'column "?([^"\s]+?)"? does not exist')


def relocate(sent: str, position: int, source: str, span: tuple[int, int]) -> int:
    """Map a position in the SQL sent to the same place in the SQL the caller wrote.

    The two differ only where parameters were bound (``:name`` became ``$1`` or a literal), so
    the unchanged stretches line up exactly.
    """
    start, end = span
    written = source[start:end]
    index = position - 1
    blocks = difflib.SequenceMatcher(None, sent, written, autojunk=False).get_opcodes()
    for tag, i1, i2, j1, j2 in blocks:
        if i1 <= index < i2 or index == i2 == len(sent):
            offset = index - i1 if tag == "equal" else 0
            return start + j1 + min(offset, max(j2 - j1, 0)) + 1
    return start + 1
