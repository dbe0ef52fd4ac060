"""What the sync and async frame readers share: the statement, what was sent, the plan, COPY SQL.

A read goes in four steps, the same on both drivers:

1. :func:`target_of` turns SQL text (split by :mod:`dbnb.sqltext`, ``:name`` bound) or a
   SQLAlchemy statement into a :class:`Target`;
2. the statement runs through the session with :data:`STOP` set, and :func:`stop_before_sending`
   keeps what the driver would send (every ORM hook, soft-delete criteria included, and the
   driver's parameter binding applied) and stops it there: nothing executes;
3. the server describes that SQL (:mod:`dbnb.frames.describe`, no wrapping) and
   :func:`plan_for` builds the :class:`~dbnb.frames.dtypes.ReadPlan`;
4. the SQL, parameters inlined, runs as ``COPY (...) TO STDOUT (FORMAT csv)`` with
   ``TimeZone=UTC``, ``DateStyle=ISO`` and ``extra_float_digits=1`` for the transaction (what the
   parser expects); the readers put the previous values back after.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.sql import Executable
from sqlalchemy.sql.elements import BindParameter

from dbnb.errors import FrameError, ParameterError, translate
from dbnb.frames.dtypes import ARRAY_OIDS, DtypeBackend, ReadPlan, ResultColumn, UuidAs
from dbnb.sqltext import Statement, split

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Connection

__all__ = [
    "BLOCK",
    "PIPELINED",
    "READ_SETTINGS",
    "SET_ASYNC",
    "SET_SYNC",
    "SHOW_SETTINGS",
    "STOP",
    "Target",
    "copy_query",
    "copy_sql",
    "driver_error",
    "explain_sql",
    "fetched_frame",
    "inline_parameters",
    "options_of",
    "plan_for",
    "planned_rows",
    "stop_before_sending",
    "stopped",
    "target_of",
]

# Output the CSV parser relies on: UTC offsets, ISO dates, shortest exact floats.
READ_SETTINGS = {"TimeZone": "UTC", "DateStyle": "ISO, MDY", "extra_float_digits": "1"}
SHOW_SETTINGS = "SELECT " + ", ".join(f"current_setting('{n}')" for n in READ_SETTINGS)
BLOCK = 1 << 17  # bytes of CSV iter_frames pulls from libpq at a time: small keeps memory flat
PIPELINED = 1 << 24  # read_frame: blocks parsed on a worker thread while the COPY goes on
#: Execution option that makes :func:`stop_before_sending` stop a statement (and only it: an
#: autoflush running before it still executes).
STOP = "dbnb_stop_before_sending"
_MODIFYING = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE"})


def _set_settings_sql(placeholder: str) -> str:
    calls = [
        f"set_config('{name}', {placeholder.format(i + 1)}, true)"
        for i, name in enumerate(READ_SETTINGS)
    ]
    return "SELECT " + ", ".join(calls)


SET_SYNC = _set_settings_sql("%s")
SET_ASYNC = _set_settings_sql("${}")


@dataclass(frozen=True)
class Target:
    """A statement to describe and read: what the session runs, and the SQL as written."""

    executable: Executable
    statement: Statement | None = None  # None for a SQLAlchemy statement

    @property
    def copyable(self) -> bool:
        """True when ``COPY (...) TO STDOUT`` can read its rows (SQLAlchemy SELECTs are)."""
        return self.statement is None or self.statement.copyable

    @property
    def wraps_cleanly(self) -> bool:
        """True when it may sit in a subquery (no INSERT/UPDATE/DELETE/MERGE at its top)."""
        return self.statement is None or self.statement.keyword not in _MODIFYING | {"WITH"}


def target_of(
    stmt: Executable | str | Statement,
    params: dict[str, Any] | None = None,
    *,
    what: str = "db.frame()",
) -> Target:
    """Make ``stmt`` a :class:`Target`; SQL text gets ``params`` bound to its ``:name`` s.

    Raises:
        FrameError: the text holds no statement, or several (run scripts with db.execute()).
        ParameterError: a ``:name`` without a value, or a value for no ``:name``.
    """
    if isinstance(stmt, Executable):
        if params:
            raise FrameError("params= is for SQL text; bind values in the SQLAlchemy statement")
        return Target(stmt)
    if isinstance(stmt, str):
        found = split(stmt)
        if len(found) != 1:
            many = f"{len(found)} statements" if found else "no statement"
            raise FrameError(
                f"{what} reads one statement and this SQL holds {many}; run a script with "
                "db.execute() (or %%db), which reads the last statement's rows"
            )
        stmt = found[0]
    given = params or {}
    extra = sorted(set(given) - set(stmt.names))
    if extra:
        have = ", ".join(f":{n}" for n in stmt.names) or "none"
        raise ParameterError(
            f"{', '.join(extra)} given but the SQL has no such :name (its parameters: {have})"
        )
    values = stmt.values(given, where="pass {name}=... to " + what)
    binds: list[BindParameter[Any]] = [bindparam(n, v) for n, v in values.items()]
    return Target(text(stmt.bindable()).bindparams(*binds), stmt)


class _Stopped(Exception):
    """Raised by the listener to stop a statement before the driver sends it."""

    def __init__(self, statement: str, parameters: Any) -> None:
        super().__init__(statement)
        self.statement, self.parameters = statement, parameters


def stop_before_sending(conn: Connection) -> Any:
    """Listen on ``conn``: a statement run with :data:`STOP` raises what it would send."""

    def stop(_c: Any, _cur: Any, statement: str, parameters: Any, context: Any, *_: Any) -> None:
        if context is not None and context.execution_options.get(STOP):
            raise _Stopped(statement, parameters)

    event.listen(conn, "before_cursor_execute", stop)
    return stop


def stopped(exc: BaseException) -> tuple[str, Any] | None:
    """The SQL and parameters a stopped statement would have sent, if ``exc`` is that stop."""
    if isinstance(exc, _Stopped):
        return exc.statement, exc.parameters
    return None


def plan_for(target: Target, columns: list[ResultColumn], options: dict[str, Any]) -> ReadPlan:
    """The read plan; numeric precision from the SQLAlchemy statement when the driver lacks it."""
    declared: list[Any] = []
    selected = getattr(target.executable, "selected_columns", None)
    if target.statement is None and selected is not None and len(selected) == len(columns):
        declared = [c.type for c in selected]
    planned = []
    for i, column in enumerate(columns):
        if column.precision is None and declared:
            precision = getattr(declared[i], "precision", None)
            column = ResultColumn(column.name, column.oid, precision,
                                  getattr(declared[i], "scale", None))
        planned.append(column)
    return ReadPlan(planned, **options)


def copy_query(sql: str, target: Target, plan: ReadPlan) -> str:
    """The query to COPY: ``sql`` itself, or with arrays turned into JSON (CSV cannot type them).

    To do that the statement becomes a CTE when it modifies data (a subquery cannot hold
    INSERT ... RETURNING), a subquery otherwise.
    """
    columns = plan.columns
    if not any(c.oid in ARRAY_OIDS for c in columns):
        return sql
    names = [f"c{i}" for i in range(len(columns))]
    outputs = ", ".join(
        f"to_json(q.{n})" if c.oid in ARRAY_OIDS else f"q.{n}"
        for n, c in zip(names, columns, strict=True)
    )
    if target.wraps_cleanly:
        return f"SELECT {outputs} FROM ({sql}\n) AS q({', '.join(names)})"
    return f"WITH q({', '.join(names)}) AS ({sql}\n) SELECT {outputs} FROM q"


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
    """``COPY (query) TO STDOUT (FORMAT csv)``."""
    return f"COPY ({query}\n) TO STDOUT (FORMAT csv)"


def inline_parameters(sql: str, literals: list[str]) -> str:
    """Put ``literals[n - 1]`` in place of each ``$n`` parameter (never inside a literal)."""
    from pglast import parser

    out, last = [], 0
    for token in parser.scan(sql):
        if token.name == "PARAM":
            number = int(sql[token.start + 1 : token.end + 1])
            out += [sql[last : token.start], literals[number - 1]]
            last = token.end + 1
    return "".join(out) + sql[last:]


def fetched_frame(result: Any) -> pd.DataFrame:
    """A frame from rows fetched the ordinary way (SHOW, EXPLAIN: what COPY cannot read)."""
    import pandas as pd

    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def driver_error(exc: Exception, statement: str, target: Target | None = None) -> BaseException:
    """Turn a raw psycopg/asyncpg error into the dbnb error, its position in the SQL as written."""
    wrapped = sa_exc.DBAPIError(statement, None, exc, hide_parameters=True)
    wrapped.__cause__ = exc
    written = target.statement if target is not None else None
    if written is None:
        return translate(wrapped)
    return translate(wrapped, source=written.source, span=written.span)


def options_of(
    dtype_backend: DtypeBackend = None, decimal: bool = False, uuid_as: UuidAs = "string"
) -> dict[str, Any]:
    return {"dtype_backend": dtype_backend, "decimal": decimal, "uuid_as": uuid_as}
