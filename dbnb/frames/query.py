"""What the sync and async frame readers share: describing a query, planning, COPY SQL.

A statement first runs through the session wrapped in ``LIMIT 0`` (:func:`listen` swaps it in):
that applies every ORM hook (soft-delete criteria included), binds the parameters the driver's
way, and has the server describe the result's column types, from which :func:`plan_of` builds
the :class:`~dbnb.frames.ReadPlan`. The same SQL then runs as
``COPY (...) TO STDOUT (FORMAT csv)`` (:func:`copy_sql`), with ``TimeZone=UTC``,
``DateStyle=ISO`` and ``extra_float_digits=1`` for the transaction (what the parser expects);
the readers put the previous values back after.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.sql import Executable

from dbnb.errors import FrameError, translate
from dbnb.frames.dtypes import ARRAY_OIDS, DtypeBackend, ReadPlan, ResultColumn, UuidAs

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = [
    "BLOCK",
    "PIPELINED",
    "READ_SETTINGS",
    "SET_ASYNC",
    "SET_SYNC",
    "SHOW_SETTINGS",
    "Described",
    "as_statement",
    "copy_query",
    "copy_sql",
    "driver_error",
    "explain_sql",
    "listen",
    "options_of",
    "plan_of",
    "planned_rows",
    "unlisten",
]

# Output the CSV parser relies on: UTC offsets, ISO dates, shortest exact floats.
READ_SETTINGS = {"TimeZone": "UTC", "DateStyle": "ISO, MDY", "extra_float_digits": "1"}
SHOW_SETTINGS = "SELECT " + ", ".join(f"current_setting('{n}')" for n in READ_SETTINGS)
BLOCK = 1 << 17  # bytes of CSV iter_frames pulls from libpq at a time: small keeps memory flat
PIPELINED = 1 << 24  # read_frame: blocks parsed on a worker thread while the COPY goes on
# A query COPY can wrap, after any leading comments.
_QUERY = re.compile(
    r"^(\s|--[^\n]*\n|/\*.*?\*/)*(\(|select\b|with\b|values\b|table\b)",
    re.IGNORECASE | re.DOTALL,
)


def _set_settings_sql(placeholder: str) -> str:
    calls = [
        f"set_config('{name}', {placeholder.format(i + 1)}, true)"
        for i, name in enumerate(READ_SETTINGS)
    ]
    return "SELECT " + ", ".join(calls)


SET_SYNC = _set_settings_sql("%s")
SET_ASYNC = _set_settings_sql("${}")


class Described:
    """What the driver received (SQL, parameters) and the result's description."""

    statement: str = ""
    parameters: Any = None
    description: Any = None


def listen(conn: Connection, described: Described) -> tuple[Any, Any]:
    """Swap ``conn``'s next statement for its ``LIMIT 0`` form, keeping what was sent."""

    def swap(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> Any:
        described.statement, described.parameters = statement, parameters
        return f"SELECT * FROM ({statement}) AS dbnb_q LIMIT 0", parameters

    def keep(_c: Any, cursor: Any, *_: Any) -> None:
        described.description = cursor.description

    event.listen(conn, "before_cursor_execute", swap, retval=True)
    event.listen(conn, "after_cursor_execute", keep)
    return swap, keep


def unlisten(conn: Connection, swap: Any, keep: Any) -> None:
    event.remove(conn, "before_cursor_execute", swap)
    event.remove(conn, "after_cursor_execute", keep)


def is_query(sql: str) -> bool:
    """Tell whether SQL text is a query a frame can be read from (SELECT, WITH, VALUES, TABLE)."""
    return _QUERY.match(sql) is not None


def as_statement(sql: Executable | str, params: dict[str, Any] | None = None) -> Executable:
    """Return ``sql`` as an executable query; SQL text gets ``params`` bound to ``:name``."""
    if isinstance(sql, str):
        if not is_query(sql):
            raise FrameError(
                "a frame is read from a query (SELECT, WITH, VALUES or TABLE); run other "
                "statements with db.execute()"
            )
        return text(sql).bindparams(**(params or {}))
    if params:
        raise FrameError("params= is for SQL text; bind values in the SQLAlchemy statement")
    return sql


def plan_of(stmt: Executable, described: Described, options: dict[str, Any]) -> ReadPlan:
    """Plan from the driver's description; numeric typmods from SQLAlchemy when it lacks them."""
    description = described.description or []
    declared: list[Any] = []
    selected = getattr(stmt, "selected_columns", None)
    if selected is not None and len(selected) == len(description):
        declared = [c.type for c in selected]
    columns = []
    for i, d in enumerate(description):
        precision = getattr(d, "precision", None)
        scale = getattr(d, "scale", None)
        if precision is None and declared:
            precision = getattr(declared[i], "precision", None)
            scale = getattr(declared[i], "scale", None)
        columns.append(ResultColumn(str(d[0]), int(d[1]), precision, scale))
    return ReadPlan(columns, **options)


def copy_query(sql: str, plan: ReadPlan) -> str:
    """Wrap ``sql`` so arrays arrive as JSON (CSV cannot type them); else leave it alone."""
    columns = plan.columns
    if any(c.oid in ARRAY_OIDS for c in columns):
        names = [f"c{i}" for i in range(len(columns))]
        outputs = [
            f"to_json(q.{n})" if c.oid in ARRAY_OIDS else f"q.{n}"
            for n, c in zip(names, columns, strict=True)
        ]
        sql = f"SELECT {', '.join(outputs)} FROM ({sql}) AS q({', '.join(names)})"
    return sql


def explain_sql(query: str) -> str:
    """The statement that asks the planner how many rows ``query`` returns."""
    return f"EXPLAIN (FORMAT JSON) {query}"


def planned_rows(explained: Any) -> int | None:
    """Read the top node's ``Plan Rows`` from ``EXPLAIN (FORMAT JSON)`` (parsed or text)."""
    import json

    try:
        plan = json.loads(explained) if isinstance(explained, str | bytes) else explained
        return int(plan[0]["Plan"]["Plan Rows"])
    except (ValueError, LookupError, TypeError):
        return None


def copy_sql(query: str) -> str:
    return f"COPY ({query}) TO STDOUT (FORMAT csv)"


def driver_error(exc: Exception, statement: str) -> BaseException:
    """Turn a raw psycopg/asyncpg error into the dbnb error SQLAlchemy's wrapper would become."""
    return translate(sa_exc.DBAPIError(statement, None, exc, hide_parameters=True))


def options_of(dtype_backend: DtypeBackend, decimal: bool, uuid_as: UuidAs) -> dict[str, Any]:
    return {"dtype_backend": dtype_backend, "decimal": decimal, "uuid_as": uuid_as}


# -- sync ------------------------------------------------------------------------------------------
