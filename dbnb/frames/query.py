"""What the sync and async frame readers share: the statement, what was sent, the plan, COPY SQL.

A read goes in four steps, the same on both drivers:

1. :func:`target_of` turns SQL text (split by :mod:`dbnb.sqltext`, ``:name`` bound) or a
   SQLAlchemy statement into a :class:`Target`;
2. the statement runs through the session under a stop marker, and :func:`sent`
   keeps what the driver would send (every ORM hook, soft-delete criteria included, and the
   driver's parameter binding applied) and stops it there: nothing executes;
3. the server describes that SQL (:mod:`dbnb.frames.describe`, no wrapping) and
   :func:`plan_for` builds the :class:`~dbnb.frames.dtypes.ReadPlan`;
4. the SQL, parameters inlined (and wrapped when a column travels as other SQL, see
   :meth:`~dbnb.frames.plan.ReadPlan.copy_query`), runs as ``COPY (...) TO STDOUT (FORMAT
   csv)`` under :data:`READ_SETTINGS` (what the parser expects); the previous values are put
   back after. On psycopg the save, the settings, the COPY and the restore go as one message.

Light on purpose: nothing here imports pyarrow or pandas (``import dbnb`` stays cheap).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.sql import Executable
from sqlalchemy.sql.elements import BindParameter

from dbnb.driver_errors import translate
from dbnb.errors import FrameError, ParameterError
from dbnb.frames.columns import ResultColumn
from dbnb.sqltext import Statement, split

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session

    from dbnb.frames.plan import ReadPlan

__all__ = [
    "AHEAD",
    "PIPELINED",
    "READ_SETTINGS",
    "RESTORE_SETTINGS",
    "SAVE_SETTINGS",
    "SET_SETTINGS",
    "Target",
    "asent",
    "copy_message",
    "copy_sql",
    "driver_error",
    "explain_sql",
    "fetched_frame",
    "inline_parameters",
    "plan_for",
    "planned_rows",
    "sent",
    "target_of",
]

# Output the CSV parser relies on: UTC offsets, ISO dates, shortest exact floats, hex bytea.
READ_SETTINGS = {
    "TimeZone": "UTC", "DateStyle": "ISO, MDY", "extra_float_digits": "1", "bytea_output": "hex",
}
PIPELINED = 1 << 24  # read_frame: blocks parsed on a worker thread while the COPY goes on
#: Blocks received but not parsed yet, at most: past it the read waits for the parser (and the
#: server for the read), so a fast connection cannot pile up the whole CSV in memory.
AHEAD = 1
# Execution option that makes :func:`sent` stop a statement (and only it: an
# autoflush running before it still executes).
_STOP = "dbnb_stop_before_sending"
_MODIFYING = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE"})


# The previous values wait in placeholder settings of the transaction (dbnb.read_N), so saving
# and restoring them need no round trip of their own.
SAVE_SETTINGS = "SELECT " + ", ".join(
    f"set_config('dbnb.read_{i}', current_setting('{name}'), true)"
    for i, name in enumerate(READ_SETTINGS)
)
SET_SETTINGS = "SELECT " + ", ".join(
    f"set_config('{name}', '{value}', true)" for name, value in READ_SETTINGS.items()
)
RESTORE_SETTINGS = "SELECT " + ", ".join(
    f"set_config('{name}', current_setting('dbnb.read_{i}'), true)"
    for i, name in enumerate(READ_SETTINGS)
)


def copy_message(query: str) -> str:
    """One simple-protocol message: save the settings, set them, COPY ``query``, restore them."""
    return f"{SAVE_SETTINGS}; {SET_SETTINGS}; {copy_sql(query)}; {RESTORE_SETTINGS}"


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


def _stop_before_sending(conn: Connection) -> Any:
    """Listen on ``conn``: a statement run with ``_STOP`` raises what it would send."""

    def stop(_c: Any, _cur: Any, statement: str, parameters: Any, context: Any, *_: Any) -> None:
        if context is not None and context.execution_options.get(_STOP):
            raise _Stopped(statement, parameters)

    event.listen(conn, "before_cursor_execute", stop)
    return stop


def _stopped(exc: BaseException, target: Target) -> tuple[str, Any]:
    """The SQL and parameters a stopped statement would have sent; else raise ``exc``, translated
    (a bad parameter or statement fails here, before anything reaches the server)."""
    if isinstance(exc, _Stopped):
        return exc.statement, exc.parameters
    written = target.statement
    span = {"source": written.source, "span": written.span} if written else {}
    raise translate(exc, **span)  # type: ignore[arg-type]


_NO_SQL = "the statement ran no SQL, so it has no rows to read"


def sent(session: Session, target: Target) -> tuple[str, Any]:
    """What the sync driver would be sent for ``target`` (SQL and parameters), unsent.

    The session's ORM hooks (soft-delete criteria, autoflush) apply as for a real execution.
    """
    conn = session.connection()
    listener = _stop_before_sending(conn)
    try:
        session.execute(target.executable, execution_options={_STOP: True})
    except Exception as exc:
        return _stopped(exc, target)
    finally:
        event.remove(conn, "before_cursor_execute", listener)
    raise FrameError(_NO_SQL)


async def asent(session: AsyncSession, target: Target) -> tuple[str, Any]:
    """What asyncpg would be sent for ``target`` (SQL and parameters), unsent."""
    conn = (await session.connection()).sync_connection
    assert conn is not None
    listener = _stop_before_sending(conn)
    try:
        await session.execute(target.executable, execution_options={_STOP: True})
    except Exception as exc:
        return _stopped(exc, target)
    finally:
        event.remove(conn, "before_cursor_execute", listener)
    raise FrameError(_NO_SQL)


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
    from dbnb.frames.plan import cached_plan

    return cached_plan(tuple(planned), tuple(sorted(options.items())))


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


def fetched_frame(result: Any, backend: str = "pandas") -> Any:
    """A frame from rows fetched the ordinary way (SHOW, EXPLAIN: what COPY cannot read).

    A pandas DataFrame, or for ``backend="arrow"`` / ``"polars"`` an Arrow table (types
    inferred from the values, as these statements' rows are few and text) or polars frame.
    """
    rows, names = result.fetchall(), list(result.keys())
    if backend == "pandas":
        import pandas as pd

        return pd.DataFrame(rows, columns=names)
    import pyarrow as pa

    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    table = pa.table([pa.array(list(c)) for c in columns], names=names)
    if backend == "arrow":
        return table
    from dbnb.frames.outputs import polars_frame

    return polars_frame(table)


def driver_error(exc: Exception, statement: str, target: Target | None = None) -> BaseException:
    """Turn a raw psycopg/asyncpg error into the dbnb error, its position in the SQL as written."""
    wrapped = sa_exc.DBAPIError(statement, None, exc, hide_parameters=True)
    wrapped.__cause__ = exc
    written = target.statement if target is not None else None
    if written is None:
        return translate(wrapped)
    return translate(wrapped, source=written.source, span=written.span)
