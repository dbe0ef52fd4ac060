"""How migrations hold the database: one advisory lock, bounded lock waits, named blockers.

Upgrades, downgrades and stamps of one database take turns on a PostgreSQL advisory lock. On a
direct (or session-pooled) connection it is session-level, since Alembic commits once per
revision; behind a transaction pooler (``pooler="transaction"``) a session lock would be taken
on one server connection and released on another, so the whole run is one transaction holding
``pg_advisory_xact_lock``. ``lock_timeout`` bounds every table-lock wait of the DDL
(``migration_lock_timeout``); when it expires, :class:`~dbnb.MigrationBlocked` names the
sessions that held the lock (followed by :class:`~dbnb.server.sessions.BlockerWatch`).

MySQL/MariaDB take turns on a named lock instead (``GET_LOCK('dbnb_migrations', …)``, held by
the migrating session like PostgreSQL's session-level lock; their DDL is not transactional, so
a failing revision may leave its earlier statements applied). SQLite has no such lock: its
database lock serialises each revision's transaction, but two processes migrating at once can
both try the same revision, so migrate a SQLite database from one process.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from typing import Any

from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from dbnb.dialects import capabilities
from dbnb.driver_errors import translate
from dbnb.engine.database import Database
from dbnb.errors import MigrationBlocked, MigrationError
from dbnb.server.sessions import describe_blockers

__all__ = [
    "POOLED",
    "QUEUE_TIMEOUT_MS",
    "alembic_connection",
    "blocked_error",
    "release",
    "take_lock",
]

# One advisory lock key per database for every schema change made through dbnb ("dbnb" in hex).
_LOCK_KEY = 0x64626E62
#: How long (ms) a migration waits for another migration of the same database to finish.
QUEUE_TIMEOUT_MS = 300_000
#: conn.info key: this migration runs as one transaction (behind a transaction pooler).
POOLED = "dbnb_migration_pooled"


@contextmanager
def alembic_connection(db: Database, cfg: Config, *, lock: bool) -> Iterator[Connection]:
    """Check out a connection for Alembic, holding the migration advisory lock if asked.

    On a direct (or session-pooled) connection the lock is session-level, since Alembic commits
    once per revision. Behind a transaction pooler a session-level lock would be taken on one
    server connection and released on another, so the whole run is one transaction holding
    ``pg_advisory_xact_lock``. Either way, ``lock_timeout`` bounds every lock wait of the DDL
    (``migration_lock_timeout``); waiting for another migration is bounded by
    :data:`QUEUE_TIMEOUT_MS`. Alembic also writes some messages straight to ``sys.stdout``;
    they go to the config's buffer too, so nothing reaches the notebook.
    """
    buffer = cfg.stdout if isinstance(cfg.stdout, io.StringIO) else io.StringIO()
    pooled = lock and db.settings.pooler == "transaction"
    caps = capabilities(db.url)
    if not caps.advisory_locks:
        with redirect_stdout(buffer), _named_lock(db, lock=lock) as conn:
            cfg.attributes["connection"] = conn
            try:
                yield conn
            finally:
                cfg.attributes.pop("connection", None)
        return
    try:
        with redirect_stdout(buffer), db.engine.connect() as conn:
            conn.info[POOLED] = pooled
            if lock:
                take_lock(conn, db.settings.migration_lock_timeout, pooled=pooled)
            cfg.attributes["connection"] = conn
            try:
                yield conn
                if pooled:
                    conn.commit()
            finally:
                cfg.attributes.pop("connection", None)
                release(conn, lock=lock and not pooled)
    except SQLAlchemyError as exc:
        raise translate(exc) from exc


_NAMED_LOCK = "dbnb_migrations"


@contextmanager
def _named_lock(db: Database, *, lock: bool) -> Iterator[Connection]:
    """A connection for Alembic on SQLite (no lock) or MySQL/MariaDB (GET_LOCK, named)."""
    named = lock and capabilities(db.url).named_locks
    seconds = QUEUE_TIMEOUT_MS // 1000
    try:
        with db.engine.connect() as conn:
            if named:
                got = conn.execute(
                    text("SELECT GET_LOCK(:name, :seconds)"),
                    {"name": _NAMED_LOCK, "seconds": seconds},
                ).scalar()
                conn.commit()
                if got != 1:
                    raise MigrationError(
                        f"another migration of this database held {_NAMED_LOCK!r} for "
                        f"{seconds} s; let it finish, then run this one again (nothing ran)"
                    )
            try:
                yield conn
            finally:
                conn.rollback()
                if named:
                    conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": _NAMED_LOCK})
                    conn.commit()
    except SQLAlchemyError as exc:
        raise translate(exc) from exc


def take_lock(conn: Connection, lock_timeout_ms: int, *, pooled: bool) -> None:
    """Take the migration lock (waiting at most QUEUE_TIMEOUT_MS), then bound DDL lock waits."""
    local = "true" if pooled else "false"
    queue = f"SELECT set_config('lock_timeout', '{QUEUE_TIMEOUT_MS}', {local})"
    ddl = f"SELECT set_config('lock_timeout', '{lock_timeout_ms}', {local})"
    if pooled:
        conn.begin()
        conn.execute(text(queue))
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        conn.execute(text(ddl))
        return
    conn.execute(text(queue))
    conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _LOCK_KEY})
    conn.execute(text(ddl))
    conn.commit()


def release(conn: Connection, *, lock: bool) -> None:
    """End the transaction and drop the lock; a connection that cannot is discarded instead.

    Discarding closes the server session, which releases the lock, so a pooled connection
    can never go back to the pool still holding it (and a cleanup error never hides the
    migration's own error). An unlock that returns false means the lock was not held by this
    session any more: the connection is discarded too.
    """
    try:
        conn.rollback()
        if lock:
            unlocked = conn.execute(
                text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY}
            ).scalar_one()
            conn.execute(text("RESET lock_timeout"))
            conn.commit()
            if not unlocked:
                conn.invalidate()
    except SQLAlchemyError:
        conn.invalidate()


def blocked_error(
    action: str, db: Database, blockers: tuple[dict[str, Any], ...], at: tuple[str, ...]
) -> MigrationBlocked:
    seconds = db.settings.migration_lock_timeout / 1000
    who = describe_blockers(blockers) or "sessions that ended before they could be named"
    pids = str(blockers[0]["pid"]) if len(blockers) == 1 else "PID"
    if len(blockers) > 1:
        who += f" (PID: each of {', '.join(str(b['pid']) for b in blockers)})"
    where = ", ".join(at) if at else "base"
    return MigrationBlocked(
        f"{action} waited {seconds:g} s (migration_lock_timeout, DB_MIGRATION_LOCK_TIMEOUT) "
        f"for a lock held by {who}; end them (%db sessions --terminate {pids} in a notebook, "
        f"dbnb sessions --terminate {pids} in a terminal, or "
        f"SELECT pg_terminate_backend(pid)) or let them finish, then run it again "
        f"(database at {where}, nothing of this revision was applied)",
        blockers,
    )
