"""What dbnb does on each connection of its engines, through SQLAlchemy's event hooks.

- **Session settings** (``statement_timeout``, ``idle_in_transaction_session_timeout``,
  ``client_connection_check_interval`` on PostgreSQL >= 14) are set once per new connection,
  or, behind a transaction pooler, at the start of every transaction with
  ``set_config(…, true)``: never as startup parameters, which poolers refuse.
- **Bounded waits.** Connects are bounded by ``connect_timeout`` and a timeout names the host
  and the bound; a pooled connection must answer a ping within ``ping_timeout`` when checked
  out (SQLAlchemy's ``pool_pre_ping`` has no deadline), else it is replaced; with
  ``command_timeout``, a psycopg call that outlives it has its socket shut down
  (:mod:`dbnb.engine.watchdog`; asyncpg's own ``command_timeout`` does the same job).
- **TCP keepalives** on asyncpg's socket (libpq gets them as connection parameters).
- **Schema changes.** A statement that fails because a cached plan or statement outlived DDL
  (``cached plan must not change result type``, asyncpg's ``InvalidCachedStatementError``) is
  run once more, on a fresh transaction, when it was the first statement of its transaction
  (nothing else is lost by rolling that back); DDL run through dbnb (``db.execute``,
  ``%%db``, a session) makes both engines forget their cached plans (``on_ddl``).
- **Errors** get the bound that expired and, with ``redact_values``, a mark that tells
  :func:`~dbnb.driver_errors.translate` to hide quoted values.
- **SQLite** connections enforce foreign keys and let SQLAlchemy, not the ``sqlite3`` module,
  begin transactions (so SAVEPOINTs nest and DDL is transactional); SQLite and MySQL/MariaDB
  get none of PostgreSQL's session settings or pings (MySQL's pool pre-pings instead).
- **Slow statements** (over ``slow_query_ms``) are logged as warnings on the ``dbnb.sql``
  logger, with their duration and SQL (never their parameters).
"""

from __future__ import annotations

import logging
import re
import select
import socket
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from dbnb.dialects import capabilities
from dbnb.engine import watchdog
from dbnb.engine.engines import KEEPALIVES, TCP_USER_TIMEOUT_MS, transaction_pooler
from dbnb.settings import Settings

__all__ = ["install", "session_settings"]

#: How often the server checks that a client running a long query is still there (ms).
CLIENT_CHECK_INTERVAL_MS = 2000
_FRESH = "dbnb_fresh"
_PING_FAILED = "dbnb_ping_failed"
_DEADLINE = "dbnb_deadline"
_GENERATION = "dbnb_generation"
_FIRST = "dbnb_first_statement"
_STARTED = "dbnb_started"
#: Where slow statements are recorded (``logging.getLogger("dbnb")`` catches them).
SQL_LOG = logging.getLogger("dbnb.sql")
# Statements after which cached plans of other statements may be stale (comments skipped).
_DDL = re.compile(
    r"^(?:\s|--[^\n]*(?:\n|$)|/\*.*?\*/)*(?:alter|drop|create\s+or\s+replace)\b",
    re.IGNORECASE | re.DOTALL,
)


def session_settings(
    settings: Settings, version: tuple[int | str, ...] | None
) -> list[tuple[str, str]]:
    """The server settings dbnb gives each session, for a server of ``version``."""
    values: list[tuple[str, str]] = []
    if settings.statement_timeout is not None:
        values.append(("statement_timeout", str(settings.statement_timeout)))
    if settings.idle_in_transaction_timeout is not None:
        values.append(
            ("idle_in_transaction_session_timeout", str(settings.idle_in_transaction_timeout))
        )
    if version is None or int(version[0]) >= 14:
        values.append(("client_connection_check_interval", str(CLIENT_CHECK_INTERVAL_MS)))
    return values


def _set_sql(values: list[tuple[str, str]], *, local: bool) -> str:
    flag = "true" if local else "false"
    return "SELECT " + ", ".join(f"set_config('{n}', '{v}', {flag})" for n, v in values)


def _where(params: dict[str, Any]) -> str:
    """Name the server of a connect call's parameters: host (or socket dir) and port."""
    host = params.get("host") or "localhost"
    if isinstance(host, list | tuple):
        host = ",".join(map(str, host))
    port = params.get("port")
    return f"{host}:{port}" if port else str(host)


def _raw(dbapi_connection: Any) -> Any:
    """The driver's own connection under SQLAlchemy's asyncpg adapter (or psycopg's itself)."""
    return getattr(dbapi_connection, "_connection", dbapi_connection)


def install(
    engine: Engine,
    settings: Settings,
    *,
    asynchronous: bool,
    generation: Callable[[], int],
    on_ddl: Callable[[], None],
) -> None:
    """Register dbnb's connection events on ``engine`` (an AsyncEngine's ``sync_engine``).

    ``generation`` tells the current schema generation: a psycopg connection made before the
    last refresh (DDL) is replaced on checkout, so no prepared plan outlives the change.
    """
    pooled = transaction_pooler(settings)
    url = settings.url
    assert url is not None
    _install_common(engine, settings)
    if not capabilities(url).server_settings:
        _install_generic(engine, capabilities(url).in_process)
        return
    server = _where({"host": url.host, "port": url.port} if url.host else dict(url.query))

    @event.listens_for(engine, "do_connect")
    def do_connect(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        start = time.monotonic()
        try:
            return dialect.connect(*cargs, **cparams)
        except Exception as error:
            timed_out = isinstance(error, TimeoutError) or "timeout expired" in str(error)
            if not timed_out:
                raise
            waited = time.monotonic() - start
            before = record.record_info.pop(_PING_FAILED, None) if record is not None else None
            message = (
                f"{before}; then " if before else ""
            ) + (
                f"no answer from {server} within connect_timeout="
                f"{settings.connect_timeout} s (DB_CONNECT_TIMEOUT) after {waited:.1f} s"
            )
            # The driver's frames hold the password: the error leaves without them.
            raise dialect.loaded_dbapi.OperationalError(message) from None

    @event.listens_for(engine, "connect")
    def connect(dbapi_connection: Any, record: Any) -> None:
        record.info[_FRESH] = True
        record.info[_GENERATION] = generation()
        if asynchronous:
            _keepalives(dbapi_connection)
        values = session_settings(settings, engine.dialect.server_version_info)
        if pooled or not values:
            return
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(_set_sql(values, local=False))
        finally:
            cursor.close()
        dbapi_connection.commit()

    @event.listens_for(engine, "checkout")
    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if record.info.pop(_FRESH, False) or not settings.pool_pre_ping:
            return
        if not asynchronous and record.info.get(_GENERATION, 0) < generation():
            raise sa_exc.DisconnectionError("the schema changed: a fresh connection replaces it")
        problem = _ping(dbapi_connection, settings.ping_timeout, asynchronous=asynchronous)
        if problem is not None:
            message = f"the pooled connection to {server} {problem}"
            record.record_info[_PING_FAILED] = message
            raise sa_exc.InvalidatePoolError(message)

    @event.listens_for(engine, "begin")
    def begin(conn: Any) -> None:
        if pooled:
            values = session_settings(settings, conn.dialect.server_version_info)
            if values:
                conn.exec_driver_sql(_set_sql(values, local=True))
        _info(conn)[_FIRST] = True

    @event.listens_for(engine, "do_execute")
    def do_execute(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        first = _info(context.connection).pop(_FIRST, False)
        try:
            context.dialect.do_execute(cursor, statement, parameters, context)
        except Exception as error:
            if not (first and _stale_plan(error)):
                raise
            # Nothing ran before it in this transaction: roll it back and run it once more,
            # with the caches that went stale cleared.
            dbapi_connection = context.connection.connection.dbapi_connection
            dbapi_connection.rollback()
            if asynchronous:
                # SQLAlchemy's adapter drops prepared statements older than this mark.
                context.dialect._invalidate_schema_cache()
                cursor._invalidate_schema_cache_asof = context.dialect._invalidate_schema_cache_asof
            context.dialect.do_execute(cursor, statement, parameters, context)
        return True

    @event.listens_for(engine, "after_cursor_execute")
    def after_ddl(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if _DDL.match(statement):
            on_ddl()

    if settings.command_timeout is not None and not asynchronous:
        limit = settings.command_timeout

        @event.listens_for(engine, "before_cursor_execute")
        def arm(conn: Any, cursor: Any, *_: Any) -> None:
            fd = cursor.connection.pgconn.socket
            conn.info[_DEADLINE] = watchdog.arm(fd, limit)

        @event.listens_for(engine, "after_cursor_execute")
        def disarm(conn: Any, *_: Any) -> None:
            deadline = conn.info.pop(_DEADLINE, None)
            if deadline is not None:
                deadline.disarm()

    @event.listens_for(engine, "handle_error")
    def handle_error(context: Any) -> None:
        wrapped = context.sqlalchemy_exception
        original = context.original_exception
        conn = context.connection
        deadline = conn.info.pop(_DEADLINE, None) if conn is not None else None
        if deadline is not None and deadline.disarm():
            reason = (
                f"no answer from {server} within command_timeout="
                f"{settings.command_timeout} s (DB_COMMAND_TIMEOUT); the connection was closed"
            )
            _mark(wrapped, original, reason)
            context.is_disconnect = True
        elif asynchronous and isinstance(original, TimeoutError) and not context.is_pre_ping:
            _mark(
                wrapped,
                original,
                f"no answer from {server} within command_timeout="
                f"{settings.command_timeout} s (DB_COMMAND_TIMEOUT)",
            )


def _install_common(engine: Engine, settings: Settings) -> None:
    """What every backend gets: the redaction mark on errors, slow-statement records."""

    @event.listens_for(engine, "handle_error")
    def redact(context: Any) -> None:
        wrapped = context.sqlalchemy_exception
        if settings.redact_values and wrapped is not None:
            wrapped.dbnb_redact = True

    if settings.slow_query_ms is None:
        return
    threshold = settings.slow_query_ms / 1000

    @event.listens_for(engine, "before_cursor_execute")
    def started(conn: Any, *_: Any) -> None:
        conn.info.setdefault(_STARTED, []).append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def finished(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        starts = conn.info.get(_STARTED)
        if not starts:
            return
        seconds = time.perf_counter() - starts.pop()
        if seconds >= threshold:
            SQL_LOG.warning(
                "slow statement: %.0f ms (slow_query_ms=%s): %s", seconds * 1000,
                settings.slow_query_ms, " ".join(statement.split())[:500],
                extra={"duration_ms": seconds * 1000, "statement": statement},
            )


def _install_generic(engine: Engine, in_process: bool) -> None:
    """SQLite and MySQL/MariaDB: no PostgreSQL session settings; SQLite's transaction fixes."""
    if not in_process:
        return

    @event.listens_for(engine, "connect")
    def connect(dbapi_connection: Any, _record: Any) -> None:
        # sqlite3 would begin (and commit) transactions on its own, which breaks SAVEPOINT
        # and transactional DDL: SQLAlchemy's documented recipe hands that to the "begin" hook.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")


def _info(conn: Any) -> dict[str, Any]:
    """The pooled connection's info dict (the first connect's bare connection has none)."""
    try:
        return conn.info  # type: ignore[no-any-return]
    except NotImplementedError:
        return {}


def _stale_plan(error: BaseException) -> bool:
    names = {type(error).__name__, type(getattr(error, "__cause__", None)).__name__}
    return "InvalidCachedStatementError" in names or "cached plan must not change" in str(error)


def _mark(wrapped: BaseException | None, original: BaseException, reason: str) -> None:
    for target in (wrapped, original):
        if target is not None:
            target.dbnb_reason = reason  # type: ignore[attr-defined]


def _ping(dbapi_connection: Any, seconds: float, *, asynchronous: bool) -> str | None:
    """Send ``SELECT 1`` and wait at most ``seconds``; return what went wrong, or None."""
    if asynchronous:
        return _ping_asyncpg(dbapi_connection, seconds)
    return _ping_psycopg(dbapi_connection, seconds)


def _ping_psycopg(conn: Any, seconds: float) -> str | None:
    from psycopg import pq

    pgconn = conn.pgconn
    if conn.closed or pgconn.transaction_status != pq.TransactionStatus.IDLE:
        return "is closed or was left inside a transaction"
    deadline = time.monotonic() + seconds
    try:
        # The query goes out without blocking; the answer is awaited on the socket with a
        # deadline (libpq's own calls would wait forever on a silent path).
        pgconn.send_query(b"SELECT 1")
        while pgconn.flush():
            if not _wait(pgconn.socket, deadline, write=True):
                return f"did not answer a ping within ping_timeout={seconds:g} s (DB_PING_TIMEOUT)"
        while True:
            pgconn.consume_input()
            if not pgconn.is_busy():
                break
            if not _wait(pgconn.socket, deadline):
                return f"did not answer a ping within ping_timeout={seconds:g} s (DB_PING_TIMEOUT)"
        ok = True
        while (result := pgconn.get_result()) is not None:
            ok = ok and result.status == pq.ExecStatus.TUPLES_OK
        return None if ok else "failed its ping"
    except Exception as error:
        return f"failed its ping ({type(error).__name__})"


def _wait(fd: int, deadline: float, *, write: bool = False) -> bool:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return False
    readers, writers = ([], [fd]) if write else ([fd], [])
    ready = select.select(readers, writers, [], remaining)
    return bool(ready[0] or ready[1])


def _ping_asyncpg(adapted: Any, seconds: float) -> str | None:
    from sqlalchemy.util import await_

    raw = _raw(adapted)
    if raw.is_closed():
        return "is closed"
    try:
        # A simple-protocol query: one round trip, no prepared statement (safe behind poolers).
        await_(raw.execute("SELECT 1", timeout=seconds))
    except TimeoutError:
        return f"did not answer a ping within ping_timeout={seconds:g} s (DB_PING_TIMEOUT)"
    except Exception as error:
        return f"failed its ping ({type(error).__name__})"
    return None


def _keepalives(dbapi_connection: Any) -> None:
    transport = getattr(_raw(dbapi_connection), "_transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    options = {
        "TCP_KEEPIDLE": KEEPALIVES["keepalives_idle"],
        "TCP_KEEPINTVL": KEEPALIVES["keepalives_interval"],
        "TCP_KEEPCNT": KEEPALIVES["keepalives_count"],
        "TCP_USER_TIMEOUT": TCP_USER_TIMEOUT_MS,
    }
    for name, value in options.items():
        if hasattr(socket, name):  # Linux names; other systems keep their defaults
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
