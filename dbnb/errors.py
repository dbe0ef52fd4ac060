"""The dbnb exception tree and the one boundary that translates driver errors into it.

Every error dbnb raises derives from :class:`DbnbError`. Database errors are keyed by SQLSTATE,
so the same failure raises the same class whichever driver (psycopg or asyncpg) ran it::

    try:
        users.create(email="ana@example.com", name="Ana")
    except dbnb.UniqueViolation as exc:
        print(exc.constraint)       # "uq_users_email"

Messages never contain a password or a full DSN (see :func:`mask_secrets`).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from dbnb.diagnostics import as_sent, position_lines, read_diagnostics, relocate

__all__ = [
    "AbstractModelError",
    "CheckViolation",
    "ConfigError",
    "ConfigWarning",
    "ConnectionFailed",
    "DatabaseClosed",
    "DbnbError",
    "FilterError",
    "ForeignKeyViolation",
    "FrameError",
    "IntegrityViolation",
    "InvalidValue",
    "LoopMismatch",
    "MigrationBlocked",
    "MigrationError",
    "MissingExtra",
    "NotFound",
    "NotNullViolation",
    "PaginationError",
    "ParameterError",
    "PoolExhausted",
    "QueryCanceled",
    "QueryError",
    "QueryTimeout",
    "ReplicaWarning",
    "ReplicasBehind",
    "SchemaChanged",
    "SerializationFailure",
    "ServerInUse",
    "UniqueViolation",
    "UnsupportedOnDialect",
    "mask_secrets",
    "translate",
]


class DbnbError(Exception):
    """Root of every error dbnb raises."""


class ConfigError(DbnbError, ValueError):
    """A setting (argument or environment variable) has a value dbnb cannot use."""


class ConfigWarning(UserWarning):
    """A setting dbnb does not know (``DB_POOL_SIZ``), named with the closest one it does."""


class UnsupportedOnDialect(DbnbError, NotImplementedError):
    """A feature needs PostgreSQL and this database is SQLite or MySQL/MariaDB.

    The message names the feature, the backend and what to do instead; ``feature`` and
    ``backend`` carry the first two.
    """

    def __init__(self, message: str, *, feature: str = "", backend: str = "") -> None:
        super().__init__(message)
        self.feature = feature
        self.backend = backend


class AbstractModelError(DbnbError, TypeError):
    """``dbnb.Base`` or an ``__abstract__`` model was instantiated: subclass it with a table."""


class DatabaseClosed(DbnbError, RuntimeError):
    """The Database was closed; connect again with ``dbnb.connect()``."""


class LoopMismatch(DbnbError, RuntimeError):
    """An async engine was used from an event loop other than the one that created it."""


class NotFound(DbnbError, LookupError):
    """No row matched a lookup that requires one (``get_or_raise`` and friends)."""


class FilterError(DbnbError, ValueError):
    """A keyword filter, ordering or column name does not match the model."""


class FrameError(DbnbError, ValueError):
    """A DataFrame does not fit its table, or a result cannot become a DataFrame."""


class MissingExtra(DbnbError, ImportError):
    """An optional dependency is not installed; the message names the ``pip install`` to run."""


class ParameterError(DbnbError, ValueError):
    """A ``:name`` parameter has no value, or a value that cannot be a parameter (a function)."""


class PaginationError(DbnbError, ValueError):
    """A page number, page size or keyset cursor is out of range or malformed."""


class InvalidValue(DbnbError, ValueError):
    """A value cannot be sent as its column's or argument's type; the message names which."""


class MigrationError(DbnbError):
    """An Alembic operation could not run; the message says which and why."""


class MigrationBlocked(MigrationError):
    """A migration waited ``migration_lock_timeout`` for a lock other sessions hold.

    ``blockers`` lists them (pid, application name, state, age in seconds, query); the message
    says how to end them.
    """

    def __init__(self, message: str, blockers: tuple[dict[str, Any], ...] = ()) -> None:
        super().__init__(message)
        self.blockers = blockers


class ServerInUse(DbnbError, RuntimeError):
    """The embedded server was asked to stop while other live processes still use it."""


class ReplicaWarning(UserWarning):
    """A read replica left the rotation (unreachable, too far behind, not a standby).

    Reads go to the other replicas, or to the primary; the replica is tried again later.
    """


class ReplicasBehind(DbnbError, RuntimeError):
    """Replicas did not replay the primary's latest writes within the time allowed."""


class ConnectionFailed(DbnbError, ConnectionError):
    """The server could not be reached, or the connection was lost."""


class PoolExhausted(DbnbError):
    """Every pooled connection stayed checked out for longer than ``pool_timeout``."""


class QueryError(DbnbError):
    """The server rejected a statement; ``str()`` adds PostgreSQL's diagnostics like psql does.

    Attributes (each ``None`` when the server did not say): ``sqlstate`` (the five-character
    code), ``severity``, ``detail``, ``hint``, ``position`` (1-based character offset into
    ``statement``), ``statement`` (the SQL it is about: as the caller wrote it when dbnb knows
    it, else as sent, without parameter values), ``schema``, ``table``, ``column``,
    ``constraint`` and ``datatype``. The same on psycopg and asyncpg.
    """

    sqlstate_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        sqlstate: str | None = None,
        constraint: str | None = None,
        table: str | None = None,
        column: str | None = None,
        detail: str | None = None,
        hint: str | None = None,
        position: int | None = None,
        statement: str | None = None,
        severity: str | None = None,
        schema: str | None = None,
        datatype: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.sqlstate = sqlstate
        self.severity = severity
        self.detail = detail
        self.hint = hint
        self.position = position
        self.statement = statement
        self.schema = schema
        self.table = table
        self.column = column
        self.constraint = constraint
        self.datatype = datatype

    def __str__(self) -> str:
        lines = [self.message]
        if self.position is not None and self.statement:
            lines += position_lines(self.statement, self.position)
        if self.detail:
            lines.append(f"DETAIL:  {self.detail}")
        if self.hint:
            lines.append(f"HINT:  {self.hint}")
        return "\n".join(lines)


class IntegrityViolation(QueryError):
    """A constraint rejected the data (SQLSTATE class 23)."""


class UniqueViolation(IntegrityViolation):
    """A unique constraint or index rejected a duplicate value."""

    sqlstate_code = "23505"


class ForeignKeyViolation(IntegrityViolation):
    """A foreign key points to a row that does not exist (or still has dependents)."""

    sqlstate_code = "23503"


class NotNullViolation(IntegrityViolation):
    """A NOT NULL column was given no value."""

    sqlstate_code = "23502"


class CheckViolation(IntegrityViolation):
    """A CHECK constraint rejected the row."""

    sqlstate_code = "23514"


class QueryCanceled(QueryError):
    """The statement was canceled (SQLSTATE 57014) by the user or the server."""

    sqlstate_code = "57014"


class QueryTimeout(QueryCanceled):
    """The statement ran longer than ``statement_timeout`` and the server canceled it."""


class SerializationFailure(QueryError):
    """A concurrent transaction conflicted; retry the whole transaction (SQLSTATE 40001)."""

    sqlstate_code = "40001"


class SchemaChanged(QueryError):
    """A cached statement plan outlived a schema change (DDL) and could not be retried."""


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

# user:password@ in URLs whatever their slashes (scheme://, scheme:/, scheme: or none at all:
# `postgres:pw@host` is user "postgres" with a password), password=... in key/value DSNs,
# PASSWORD '...' in SQL.
_URL_PASSWORD = re.compile(
    r"(?P<prefix>(?:[a-z][a-z0-9+.-]*:/*)?[^\s:/@'\"(){}\[\]]*:)[^@\s/]*@", re.IGNORECASE
)
_KV_PASSWORD = re.compile(r"(?P<prefix>\bpassword\s*=\s*)('[^']*'|[^\s&'\"]+)", re.IGNORECASE)
# Values PostgreSQL quotes in its messages: Key (email)=(ana@example.com), "text", 'text'.
_QUOTED_VALUE = re.compile(r"=\((?P<paren>[^)]*)\)|'(?P<single>[^']*)'|\"(?P<double>[^\"]*)\"")
_SQL_PASSWORD = re.compile(r"(?P<prefix>\bpassword\s+)'(?:[^']|'')*'", re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """Replace every password in ``text`` (URL userinfo, ``password=``, SQL ``PASSWORD '...'``)."""
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('prefix')}***@", text)
    text = _SQL_PASSWORD.sub(lambda m: f"{m.group('prefix')}'***'", text)
    return _KV_PASSWORD.sub(lambda m: f"{m.group('prefix')}***", text)


_UNDEFINED_COLUMN = re.compile(r'column "?([^"\s]+?)"? does not exist')


def redact_values(text: str) -> str:
    """Replace the values PostgreSQL quotes in a message (``Key (email)=(…)``) with ``…``."""

    def hide(match: re.Match[str]) -> str:
        if match.group("paren") is not None:
            return "=(…)"
        return "'…'" if match.group("single") is not None else '"…"'

    return _QUOTED_VALUE.sub(hide, text)


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
