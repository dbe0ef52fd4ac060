"""Scripts: several SQL statements run in one transaction, each one reported.

Behind ``db.execute``, ``db.frame`` and ``%%db``. The text is split by :mod:`dbnb.sqltext`
and every ``:name`` is checked before anything runs; the statements then run in order in the
caller's session (one transaction: all or nothing). The last statement's rows come back either
as rows (``db.execute``) or as a typed DataFrame through the COPY reader (``db.frame``,
``%%db``: DML with RETURNING too). Each statement leaves a :class:`Step` in the report, so
nothing runs that the report does not mention.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy.exc import SQLAlchemyError

from dbnb.driver_errors import translate
from dbnb.errors import FrameError, ParameterError
from dbnb.frames.query import Target, target_of
from dbnb.sqltext import Statement, split

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session

__all__ = [
    "Last", "ScriptResult", "ScriptRows", "Step", "arun_script", "run_script", "targets_of"
]


@dataclass(frozen=True)
class Step:
    """One statement of a script and what it did: rows affected, or rows returned."""

    sql: str
    keyword: str
    rows: int
    returned: bool

    @property
    def summary(self) -> str:
        """One line: the statement's start and its row count."""
        first = " ".join(self.sql.split())
        first = first if len(first) <= 60 else first[:57].rsplit(" ", 1)[0] + " ..."
        plural = "" if self.rows == 1 else "s"
        count = "" if self.rows < 0 else f"{self.rows} row{plural}"
        what = f"{count} returned" if self.returned else (f"{count} affected" if count else "done")
        return f"{first}: {what}"


@dataclass(frozen=True)
class ScriptResult:
    """What a script did, statement by statement, and the last statement's rows as a frame."""

    steps: tuple[Step, ...]
    frame: pd.DataFrame | None

    def report(self) -> str:
        """One numbered line per statement (what ``%%db`` prints for a script)."""
        return "\n".join(f"{i}. {s.summary}" for i, s in enumerate(self.steps, start=1))


#: What happens to the last statement: ``rows`` fetched as rows; ``read`` through the typed
#: reader, refusing (before it runs) a statement that returns none; ``run`` through the typed
#: reader when it returns rows, else run and counted.
Last = Literal["rows", "read", "run"]


class ScriptRows(list[Any]):
    """The last statement's rows (a list, as ``db.execute`` always returned), with ``steps``."""

    steps: tuple[Step, ...] = ()


def targets_of(sql: str, params: dict[str, Any], *, what: str) -> list[Target]:
    """Split ``sql`` and bind each statement's ``:name`` s; a missing one raises before any runs.

    Raises:
        ParameterError: a ``:name`` without a value, or a value given for no ``:name``.
        FrameError: the text holds no statement.
    """
    statements = split(sql)
    if not statements:
        raise FrameError(f"{what} got no SQL statement (only blanks or comments)")
    used = {n for s in statements for n in s.names}
    unused = sorted(set(params) - used)
    if unused:
        have = ", ".join(f":{n}" for n in dict.fromkeys(n for s in statements for n in s.names))
        raise ParameterError(
            f"{', '.join(unused)} given but the SQL has no such :name (its parameters: "
            f"{have or 'none'})"
        )
    return [
        target_of(s, {n: params[n] for n in s.names if n in params}, what=what)
        for s in statements
    ]


def _step(statement: Statement | None, rows: int, returned: bool) -> Step:
    assert statement is not None
    return Step(statement.text, statement.keyword, rows, returned)


def _error(exc: SQLAlchemyError, target: Target) -> BaseException:
    written = target.statement
    assert written is not None
    return translate(exc, source=written.source, span=written.span)


def run_script(
    session: Session, targets: list[Target], *, last: Last = "rows", **options: Any
) -> tuple[ScriptResult, list[Any]]:
    """Run ``targets`` in order in ``session``; return the report and the last rows.

    With ``last="read"`` or ``"run"`` the last statement goes through the typed COPY reader
    and its rows are ``result.frame`` (see :data:`Last`); otherwise they are the list.
    """
    from dbnb.frames.read import read_frame, run_statement

    steps: list[Step] = []
    rows: list[Any] = []
    last_frame = None
    for i, target in enumerate(targets):
        if last != "rows" and i == len(targets) - 1:
            if last == "read":
                last_frame = read_frame(session, target, **options)
                count = len(last_frame)
            else:
                last_frame, count = run_statement(session, target, **options)
            steps.append(_step(target.statement, count, last_frame is not None))
            break
        try:
            result = session.execute(target.executable)
            returned = bool(getattr(result, "returns_rows", False))
            rows = list(result) if returned else []
        except SQLAlchemyError as exc:
            raise _error(exc, target) from exc
        count = len(rows) if returned else int(getattr(result, "rowcount", -1))
        steps.append(_step(target.statement, count, returned))
    return ScriptResult(tuple(steps), last_frame), rows


async def arun_script(
    session: AsyncSession, targets: list[Target], *, last: Last = "rows", **options: Any
) -> tuple[ScriptResult, list[Any]]:
    """The async twin of :func:`run_script`, on an AsyncSession (asyncpg)."""
    from dbnb.frames.aread import aread_frame, arun_statement

    steps: list[Step] = []
    rows: list[Any] = []
    last_frame = None
    for i, target in enumerate(targets):
        if last != "rows" and i == len(targets) - 1:
            if last == "read":
                last_frame = await aread_frame(session, target, **options)
                count = len(last_frame)
            else:
                last_frame, count = await arun_statement(session, target, **options)
            steps.append(_step(target.statement, count, last_frame is not None))
            break
        try:
            result = await session.execute(target.executable)
            returned = bool(getattr(result, "returns_rows", False))
            rows = list(result) if returned else []
        except SQLAlchemyError as exc:
            raise _error(exc, target) from exc
        count = len(rows) if returned else int(getattr(result, "rowcount", -1))
        steps.append(_step(target.statement, count, returned))
    return ScriptResult(tuple(steps), last_frame), rows
