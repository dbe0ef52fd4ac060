"""The dbnb exception tree.

Every error dbnb raises derives from :class:`DbnbError`. Database errors are keyed by SQLSTATE,
so the same failure raises the same class whichever driver (psycopg or asyncpg) ran it::

    try:
        users.create(email="ana@example.com", name="Ana")
    except dbnb.UniqueViolation as exc:
        print(exc.constraint)       # "uq_users_email"

Driver errors become these classes in one place, :func:`dbnb.driver_errors.translate`;
messages never contain a password or a full DSN (:func:`dbnb.redaction.mask_secrets`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from dbnb.diagnostics import position_lines

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
