"""Which scripts are reads, and running one where it belongs (a replica, else the primary).

Behind ``db.execute``, ``db.frame`` and ``%%db``: a script whose every statement only reads
(``SELECT``, ``WITH``, ``VALUES``, ``TABLE``, ``SHOW``, ``EXPLAIN`` without a data-modifying
word or a row lock in it, as PostgreSQL's own lexer reads the text) runs in a read session,
which a Database with replicas sends to one of them; anything else runs on the primary. A
read that turns out to write after all (``SELECT nextval(...)``: the replica refuses it with
SQLSTATE 25006) runs again on the primary: a standby wrote nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import TYPE_CHECKING, Any

from dbnb.engine.scripts import arun_script, run_script
from dbnb.errors import QueryError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session

    from dbnb.engine.replicas import Use
    from dbnb.engine.scripts import ScriptResult
    from dbnb.frames.query import Target

__all__ = ["READ_ONLY_TRANSACTION", "arun_routed", "reads_only", "run_routed"]

#: SQLSTATE of "cannot execute ... in a read-only transaction" (what a standby answers).
READ_ONLY_TRANSACTION = "25006"
_READS = frozenset({"SELECT", "WITH", "VALUES", "TABLE", "SHOW", "EXPLAIN"})
# Words that make a read statement write or lock rows (SELECT ... INTO makes a table; FOR
# UPDATE / SHARE lock rows): such a statement goes to the primary.
_WRITES = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE", "INTO", "SHARE"})

OpenSession = Callable[..., AbstractContextManager["Session"]]
OpenAsyncSession = Callable[..., AbstractAsyncContextManager["AsyncSession"]]


def reads_only(targets: Sequence[Target]) -> bool:
    """Tell whether every statement only reads (SQL text; SQLAlchemy statements never do here)."""
    from pglast import parser

    for target in targets:
        statement = target.statement
        if statement is None or statement.keyword not in _READS:
            return False
        if any(token.name in _WRITES for token in parser.scan(statement.text)):
            return False
    return bool(targets)


def _read(targets: Sequence[Target], use: Use) -> bool:
    # use="primary" still opens a read session: the routing counts it as a primary read.
    return use == "replica" or reads_only(targets)


def run_routed(
    open_session: OpenSession, targets: Sequence[Target], *, use: Use = None, **options: Any
) -> tuple[ScriptResult, list[Any]]:
    """Run a script (:func:`~dbnb.engine.scripts.run_script`) where it belongs; commit.

    ``open_session`` is ``Database.session``. A read goes to a read session (a replica when
    one is usable), anything else to the primary; ``use`` overrides (``"primary"``,
    ``"replica"``).
    """
    if _read(targets, use):
        try:
            with open_session(read_only=True, use=use) as session:
                return run_script(session, list(targets), **options)
        except QueryError as exc:
            if exc.sqlstate != READ_ONLY_TRANSACTION:
                raise
    with open_session() as session:
        return run_script(session, list(targets), **options)


async def arun_routed(
    open_session: OpenAsyncSession,
    targets: Sequence[Target],
    *,
    use: Use = None,
    **options: Any,
) -> tuple[ScriptResult, list[Any]]:
    """Await :func:`run_routed` on asyncpg (``open_session`` is ``db.asyncio.session``)."""
    if _read(targets, use):
        try:
            async with open_session(read_only=True, use=use) as session:
                return await arun_script(session, list(targets), **options)
        except QueryError as exc:
            if exc.sqlstate != READ_ONLY_TRANSACTION:
                raise
    async with open_session() as session:
        return await arun_script(session, list(targets), **options)
