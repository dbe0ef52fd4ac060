"""Alembic through its Python API: upgrade, downgrade, stamp, revision, history, check and more.

Every function takes a :class:`~dbnb.Database` first. The Alembic ``Config`` is built in code
from the ``alembic.ini`` found from the working directory upwards (never above the project root,
i.e. the first directory holding ``pyproject.toml`` or ``.git``), or from ``config=``. dbnb hands
its own live connection to ``env.py`` in ``config.attributes["connection"]``, captures Alembic's
output, and returns snapshots built from Alembic's ``Script`` objects (see
:mod:`dbnb.migrations.reports`). Upgrades, downgrades and stamps hold a PostgreSQL advisory lock,
so two kernels migrating at once apply each revision once; afterwards both engines' pools are
refreshed so no cached statement plan or type outlives the DDL.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from dbnb.driver_errors import translate
from dbnb.engine.database import Database
from dbnb.errors import DbnbError, MigrationError
from dbnb.migrations.config import (
    ConfigArg,
    context_options,
    load_config,
    require_models,
    target_metadata,
)
from dbnb.migrations.locking import POOLED, alembic_connection, blocked_error
from dbnb.migrations.reports import (
    CurrentRevision,
    DriftReport,
    History,
    MigrationResult,
    RevisionInfo,
    SqlScript,
)
from dbnb.phrasing import command as suggest
from dbnb.redaction import mask_secrets
from dbnb.server.admin import psycopg_conninfo
from dbnb.server.sessions import BlockerWatch

__all__ = [
    "check",
    "current",
    "downgrade",
    "heads",
    "history",
    "stamp",
    "upgrade",
]

# -- connection, lock, state ----------------------------------------------------------------------


def _stamped(conn: Connection) -> tuple[str, ...]:
    heads = MigrationContext.configure(conn).get_current_heads()
    if not conn.info.get(POOLED) or not conn.in_transaction():
        conn.rollback()
    return tuple(heads)


def _unknown(script: ScriptDirectory, revisions: tuple[str, ...]) -> list[str]:
    missing = []
    for rev in revisions:
        try:
            script.get_revision(rev)
        except CommandError:
            missing.append(rev)
    return missing


def _require_known(script: ScriptDirectory, revisions: tuple[str, ...]) -> None:
    missing = _unknown(script, revisions)
    if missing:
        raise MigrationError(
            f"the database is stamped with revision {', '.join(missing)}, which is not in "
            f"{script.versions}: check out the code that has that migration, or, if the schema "
            "matches a known revision, re-stamp it ("
            f"{suggest('stamp <revision>', 'dbnb.migrations.stamp(db, <revision>)')}); nothing "
            "was changed"
        )


def _info(script: Script, *, applied: bool = False) -> RevisionInfo:
    return RevisionInfo(
        revision=script.revision,
        down_revisions=_as_tuple(script.down_revision),
        message=(script.doc or "").strip(),
        is_head=script.is_head,
        applied=applied,
    )


def _as_tuple(value: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _between(
    script: ScriptDirectory, upper: tuple[str, ...], lower: tuple[str, ...]
) -> list[Script]:
    if not upper:
        return []
    return list(script.iterate_revisions(upper, lower or "base", assert_relative_length=False))


def _alembic_failure(action: str, exc: BaseException, at: tuple[str, ...]) -> MigrationError:
    translated = translate(exc)
    first = (str(translated).strip().splitlines() or [type(exc).__name__])[0]
    kind = "" if isinstance(exc, CommandError) else f"{type(translated).__name__}: "
    where = ", ".join(at) if at else "base"
    return MigrationError(mask_secrets(f"{action} failed: {kind}{first} (database at {where})"))


# -- commands that change the database ------------------------------------------------------------

#: Migrations run (action, revisions before and after): ``logging.getLogger("dbnb")`` sees them.
LOG = logging.getLogger("dbnb.migrations")


class _NoWatch(contextlib.AbstractContextManager["_NoWatch"]):
    """No sessions to name: SQLite and MySQL/MariaDB migrations have no blocker watch."""

    blockers: tuple[dict[str, Any], ...] = ()

    def __exit__(self, *exc_info: object) -> None:
        return None


def _watch(db: Database, conn: Connection) -> Any:
    """Who blocks this migration's DDL (PostgreSQL's sessions); elsewhere nothing to watch."""
    if not db.capabilities.server_sessions:
        return _NoWatch()
    pid = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
    return BlockerWatch(
        psycopg_conninfo(db.url, application_name=f"dbnb-watch:{os.getpid()}",
                         connect_timeout=db.settings.connect_timeout),
        pid,
    )



def _move(
    db: Database,
    action: str,
    run: Callable[[Config, tuple[str, ...]], None],
    config: ConfigArg,
) -> MigrationResult:
    cfg = load_config(config)
    script = ScriptDirectory.from_config(cfg)
    try:
        with alembic_connection(db, cfg, lock=True) as conn:
            # The watch asks the server first: _stamped() then ends that transaction, so
            # Alembic begins (and commits) its own per revision.
            watch = _watch(db, conn)
            before = _stamped(conn)
            try:
                with watch:
                    run(cfg, before)
            except MigrationError:
                raise
            except (CommandError, SQLAlchemyError, DbnbError) as exc:
                conn.rollback()
                if getattr(translate(exc), "sqlstate", None) == "55P03":
                    raise blocked_error(action, db, watch.blockers, _stamped(conn)) from exc
                raise _alembic_failure(action, exc, _stamped(conn)) from exc
            after = _stamped(conn)
    finally:
        db.refresh_pools()
    LOG.info(
        "%s: %s -> %s", action, ", ".join(before) or "base", ", ".join(after) or "base",
        extra={"action": action, "before": before, "after": after},
    )
    if action == "upgrade":
        steps = list(reversed(_between(script, after, before)))
    elif action == "downgrade":
        steps = _between(script, before, after)
    else:
        steps = []
    applied = action == "upgrade"
    return MigrationResult(action, before, after, tuple(_info(s, applied=applied) for s in steps))


def upgrade(
    db: Database, revision: str = "head", *, sql: bool = False, config: ConfigArg = None
) -> MigrationResult | SqlScript:
    """Upgrade the database to ``revision`` (default ``head``); return what was applied.

    Each revision runs in its own transaction under a PostgreSQL advisory lock: a concurrent
    upgrade waits, then finds nothing left to do. A failing revision rolls back alone.

    Args:
        db: the database to upgrade.
        revision: the target: ``head`` (default), a revision id, or ``+1`` for one step.
        sql: show the SQL the upgrade would run (from the current revision); run nothing.
        config: an alembic.ini path or a Config; default: found from the working directory.

    Example::

        dbnb.migrations.upgrade(db)          # %db migrate
    """
    if sql:
        return _offline(db, "upgrade", revision, config)

    def run(cfg: Config, before: tuple[str, ...]) -> None:
        _require_known(ScriptDirectory.from_config(cfg), before)
        command.upgrade(cfg, revision)

    return _move(db, "upgrade", run, config)


def downgrade(
    db: Database, revision: str = "-1", *, sql: bool = False, config: ConfigArg = None
) -> MigrationResult | SqlScript:
    """Downgrade the database to ``revision``, one transaction per revision, under the lock.

    Args:
        db: the database to downgrade.
        revision: the target: ``-1`` (default, one step back), a revision id, or ``base``.
        sql: show the SQL the downgrade would run (from the current revision); run nothing.
        config: an alembic.ini path or a Config; default: found from the working directory.
    """
    if sql:
        return _offline(db, "downgrade", revision, config)

    def run(cfg: Config, before: tuple[str, ...]) -> None:
        _require_known(ScriptDirectory.from_config(cfg), before)
        if not before:
            raise MigrationError("the database is at base: there is nothing to downgrade")
        command.downgrade(cfg, revision)

    return _move(db, "downgrade", run, config)


def _offline(db: Database, action: str, revision: str, config: ConfigArg) -> SqlScript:
    from dbnb.migrations.offline import sql_script

    cfg = load_config(config)
    _, stamped = _scripts_and_stamp(db, cfg)
    cfg.attributes["dialect_name"] = db.capabilities.name  # env.py writes SQL in its dialect
    return sql_script(cfg, action, stamped, revision)


def stamp(db: Database, revision: str, *, config: ConfigArg = None) -> MigrationResult:
    """Record ``revision`` as the database's current revision without running any migration.

    An unknown revision stamped in the database is replaced (Alembic's ``purge``).

    Args:
        db: the database to stamp.
        revision: the revision id to record, ``head`` or ``base``.
        config: an alembic.ini path or a Config; default: found from the working directory.
    """

    def run(cfg: Config, before: tuple[str, ...]) -> None:
        purge = bool(_unknown(ScriptDirectory.from_config(cfg), before))
        command.stamp(cfg, revision, purge=purge)

    return _move(db, "stamp", run, config)


# -- commands that only read ----------------------------------------------------------------------


def _scripts_and_stamp(db: Database, config: ConfigArg) -> tuple[ScriptDirectory, tuple[str, ...]]:
    """The migration scripts and the revisions stamped in the database (all of them known)."""
    cfg = load_config(config)
    script = ScriptDirectory.from_config(cfg)
    with alembic_connection(db, cfg, lock=False) as conn:
        stamped = _stamped(conn)
    _require_known(script, stamped)
    return script, stamped


def current(db: Database, *, config: ConfigArg = None) -> CurrentRevision:
    """Read the revision stamped in the database (``alembic_version``) and the scripts' heads.

    Args:
        db: the database to read.
        config: an alembic.ini path or a Config; default: found from the working directory.
    """
    script, stamped = _scripts_and_stamp(db, config)
    messages = tuple((script.get_revision(r).doc or "").strip() for r in stamped)
    return CurrentRevision(stamped, tuple(script.get_heads()), messages)


def heads(db: Database, *, config: ConfigArg = None) -> History:
    """List the head revisions of the migration scripts (more than one means a branch).

    Args:
        db: the database whose applied revisions are marked.
        config: an alembic.ini path or a Config; default: found from the working directory.
    """
    full = history(db, config=config)
    return History(tuple(r for r in full.revisions if r.is_head))


def history(db: Database, *, config: ConfigArg = None) -> History:
    """List every revision, newest first, marking those applied to the database.

    ``history(db).frame`` is the same as a DataFrame.

    Args:
        db: the database whose applied revisions are marked.
        config: an alembic.ini path or a Config; default: found from the working directory.
    """
    script, stamped = _scripts_and_stamp(db, config)
    applied = {s.revision for s in _between(script, stamped, ())}
    return History(tuple(_info(s, applied=s.revision in applied) for s in script.walk_revisions()))


def check(
    db: Database,
    *,
    models: MetaData | Sequence[MetaData] | str | None = None,
    config: ConfigArg = None,
) -> DriftReport:
    """Compare the models with the database: Alembic's autogenerate diff plus partial indexes.

    Alembic does not compare the ``WHERE`` of partial indexes; this does, by letting the server
    normalise the model's predicate. Nothing is changed (the probe runs in a rolled-back
    transaction). ``report.ok`` is True when nothing differs and the database is at head.

    Args:
        db: the database to compare.
        models: a MetaData or a models module path; default: ``dbnb.models`` in alembic.ini,
            else dbnb's ``Base.metadata`` (the models defined in this notebook).
        config: an alembic.ini path or a Config; default: found from the working directory.
    """
    from dbnb.migrations.drift import compare, two_ways_forward, unversioned_tables

    cfg = load_config(config)
    metadata = target_metadata(cfg, models)
    require_models(metadata)
    state = current(db, config=cfg)
    with alembic_connection(db, cfg, lock=False) as conn:
        unversioned = unversioned_tables(conn, metadata)
        conn.rollback()
        drifts = compare(conn, metadata, context_options(conn))
    note = two_ways_forward(unversioned) if unversioned and not drifts else ""
    return DriftReport(drifts, state, note)
