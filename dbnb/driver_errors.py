"""The one boundary where driver and SQLAlchemy exceptions become dbnb's (:func:`translate`).

Database errors are keyed by SQLSTATE, so the same failure raises the same class whichever
driver (psycopg or asyncpg) ran it; PostgreSQL's diagnostics (DETAIL, HINT, the position, the
column) are kept, passwords masked and, when asked, quoted values redacted.
"""

from __future__ import annotations

import re

from dbnb.diagnostics import as_sent, read_diagnostics, relocate
from dbnb.errors import (
    CheckViolation,
    ConnectionFailed,
    DbnbError,
    ForeignKeyViolation,
    IntegrityViolation,
    InvalidValue,
    NotNullViolation,
    PoolExhausted,
    QueryCanceled,
    QueryError,
    QueryTimeout,
    SchemaChanged,
    SerializationFailure,
    UniqueViolation,
)
from dbnb.redaction import mask_secrets, redact_values

__all__ = ["translate"]

_BY_SQLSTATE: dict[str, type[QueryError]] = {
    cls.sqlstate_code: cls
    for cls in (
        UniqueViolation,
        ForeignKeyViolation,
        NotNullViolation,
        CheckViolation,
        QueryCanceled,
        SerializationFailure,
    )
    if cls.sqlstate_code
}
_BY_SQLSTATE["40P01"] = SerializationFailure  # deadlock_detected: the same advice applies

_ADVICE: dict[type[QueryError], str] = {
    UniqueViolation: "that value is taken; use another, or update the existing row (upsert)",
    ForeignKeyViolation: "the referenced row is missing (or still referenced)",
    NotNullViolation: "give the column a value",
    CheckViolation: "the row breaks a CHECK constraint",
    QueryTimeout: "the statement exceeded statement_timeout; narrow the query or raise "
    "DB_STATEMENT_TIMEOUT",
    SerializationFailure: "retry the whole transaction",
}

_UNDEFINED_COLUMN = re.compile(r'column "?([^"\s]+?)"? does not exist')


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return mask_secrets(text.splitlines()[0] if text else type(exc).__name__)


def translate(
    exc: BaseException, *, source: str | None = None, span: tuple[int, int] | None = None
) -> BaseException:
    """Map a driver or SQLAlchemy exception to the matching :class:`DbnbError`, chained to it.

    The new error's ``__cause__`` is ``exc``. ``exc`` itself comes back unchanged when it is
    not a database error or already a DbnbError, keeping its own chain: an error is never its
    own cause. So where ``exc`` may already be a DbnbError (a ``with`` block's exit, an
    ``except Exception``), write ``raise translate(exc)``; ``raise translate(exc) from exc``
    is only right where it cannot be (``except SQLAlchemyError``).

    Args:
        exc: the exception caught.
        source: the SQL as the caller wrote it (a cell, a script); an error position is moved
            into it, so ``LINE n`` and the caret point at what the person typed.
        span: where in ``source`` the failing statement is (default: all of it).
    """

    if isinstance(exc, DbnbError):
        return exc
    translated = _translate(exc, source, span)
    if isinstance(translated, ConnectionFailed):
        # The driver's frames hold the connect parameters (the password among them), and
        # IPython's %xmode Verbose prints frame variables: the cause keeps its message only.
        _strip_tracebacks(exc)
    if translated is not exc:
        translated.__cause__ = exc  # also sets __suppress_context__: exc is the one to show
    return translated


def _strip_tracebacks(exc: BaseException) -> None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        current = current.__cause__ or current.__context__


def _reason(exc: BaseException) -> str | None:
    """The bound dbnb's engine events recorded on a failure (ping, command, connect)."""
    for candidate in (exc, getattr(exc, "orig", None)):
        reason = getattr(candidate, "dbnb_reason", None)
        if isinstance(reason, str):
            return reason
    return None


_STARTUP_PARAMETER = re.compile(r"unsupported startup parameter:?\s*(?P<name>[\w.]+)", re.I)


def _translate(
    exc: BaseException, source: str | None, span: tuple[int, int] | None
) -> BaseException:
    from sqlalchemy import exc as sa_exc

    reason = _reason(exc)
    if reason is not None:
        return ConnectionFailed(reason)
    startup = _STARTUP_PARAMETER.search(str(getattr(exc, "orig", None) or exc))
    if startup is not None:
        name = startup.group("name")
        return ConnectionFailed(
            f"the server's pooler (PgBouncer or similar) refused the startup parameter {name!r}; "
            f"remove {name}= from the URL, and set pooler='transaction' (DB_POOLER=transaction) "
            "so dbnb sends its own settings inside each transaction instead"
        )
    if isinstance(exc, sa_exc.TimeoutError):
        return PoolExhausted(
            "every pooled connection is checked out and none came back within pool_timeout; "
            "close sessions you no longer use (idle transactions hold connections) or raise "
            "pool_size / DB_POOL_SIZE or max_overflow / DB_MAX_OVERFLOW"
        )
    if isinstance(exc, sa_exc.DBAPIError):
        diag = read_diagnostics(exc.orig)
        sqlstate = diag.get("sqlstate")
        message = mask_secrets(diag.get("message") or _first_line(exc))
        redact = bool(getattr(exc, "dbnb_redact", False))
        if redact:
            message = redact_values(message)
            if "detail" in diag:
                diag["detail"] = redact_values(diag["detail"])
        if sqlstate == "25P03" or "idle-in-transaction timeout" in message:
            return ConnectionFailed(
                f"{message} — the server ended this session after it sat idle inside a "
                "transaction for longer than idle_in_transaction_timeout "
                "(DB_IDLE_IN_TRANSACTION_TIMEOUT); commit or roll back sooner, or raise it"
            )
        if _is_stale_plan(exc, message):
            return SchemaChanged(
                f"{message} — the table changed (DDL) after this connection cached the "
                "statement; run the call again (dbnb already refreshed the cache), or call "
                "db.refresh_pools() after DDL run outside dbnb",
                sqlstate=sqlstate,
            )
        if exc.connection_invalidated or _is_connection_error(exc, sqlstate):
            return ConnectionFailed(
                f"{message} — check that the server is running and that the URL's host, port, "
                "database and user are right"
            )
        statement = "" if redact else str(exc.statement or "")
        if exc.params is not None:  # run by SQLAlchemy: the driver may rewrite placeholders
            statement = as_sent(statement, exc.orig)
        return _query_error(message, diag, statement, source, span)
    if isinstance(exc, sa_exc.StatementError) and exc.orig is not None:
        # Not the server: a value SQLAlchemy or the driver could not turn into a parameter.
        orig = exc.orig
        return InvalidValue(
            f"a parameter value could not be sent: {type(orig).__name__}: "
            f"{_first_line(orig)}; pass a value of the column's type"
        )
    if isinstance(exc, TimeoutError):
        return ConnectionFailed(
            "the server did not answer in time (asyncio timeout); the network path may be "
            "down: check it, or raise command_timeout (DB_COMMAND_TIMEOUT)"
        )
    if isinstance(exc, OSError | sa_exc.InterfaceError):
        return ConnectionFailed(f"{_first_line(exc)} — check that the server is running")
    return exc


def _query_error(
    message: str,
    diag: dict[str, str],
    sent: str,
    source: str | None,
    span: tuple[int, int] | None,
) -> QueryError:
    sqlstate = diag.get("sqlstate")
    cls: type[QueryError] = QueryError
    if sqlstate is not None:
        cls = _BY_SQLSTATE.get(sqlstate) or (
            IntegrityViolation if sqlstate.startswith("23") else QueryError
        )
    if cls is QueryCanceled and "statement timeout" in message:
        cls = QueryTimeout
    advice = _ADVICE.get(cls)
    constraint = diag.get("constraint")
    named = constraint is None or f'"{constraint}"' in message
    text = message + ("" if named else f" (constraint {constraint})")
    position = int(diag["position"]) if diag.get("position", "").isdigit() else None
    column = diag.get("column")
    if column is None and sqlstate == "42703":  # undefined_column names it only in the message
        named_column = _UNDEFINED_COLUMN.search(message)
        column = named_column.group(1) if named_column else None
    statement: str | None = sent or None
    if position is not None and source is not None and sent:
        position = relocate(sent, position, source, span or (0, len(source)))
        statement = source
    return cls(
        text + (f": {advice}" if advice else ""),
        sqlstate=sqlstate,
        severity=diag.get("severity"),
        detail=mask_secrets(diag["detail"]) if "detail" in diag else None,
        hint=diag.get("hint"),
        position=position,
        statement=mask_secrets(statement) if statement is not None else None,
        schema=diag.get("schema"),
        table=diag.get("table"),
        column=column,
        constraint=constraint,
        datatype=diag.get("datatype"),
    )


def _is_stale_plan(exc: BaseException, message: str) -> bool:
    names = {type(e).__name__ for e in (exc, getattr(exc, "orig", None)) if e is not None}
    return "InvalidCachedStatementError" in names or "cached plan must not change" in message


def _is_connection_error(exc: BaseException, sqlstate: str | None) -> bool:
    from sqlalchemy import exc as sa_exc

    if sqlstate is not None:
        # 08: connection exception; 57P01-57P03: admin shutdown, crash shutdown, cannot connect.
        return sqlstate.startswith("08") or sqlstate in {"57P01", "57P02", "57P03"}
    orig = getattr(exc, "orig", None)
    return isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError) or isinstance(
        orig, OSError | ConnectionError
    )
