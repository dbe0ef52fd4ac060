"""Alembic through its Python API: upgrade, downgrade, stamp, revision, history, check and more.

Every function takes a :class:`~dbnb.Database` first. The Alembic ``Config`` is built in code
from the ``alembic.ini`` found from the working directory upwards (never above the project root,
i.e. the first directory holding ``pyproject.toml`` or ``.git``), or from ``config=``. dbnb hands
its own live connection to ``env.py`` in ``config.attributes["connection"]``, captures Alembic's
output, and returns snapshots built from Alembic's ``Script`` objects (see
:mod:`dbnb.migration_reports`). Upgrades, downgrades and stamps hold a PostgreSQL advisory lock,
so two kernels migrating at once apply each revision once; afterwards both engines' pools are
refreshed so no cached statement plan or type outlives the DDL.
"""

from __future__ import annotations

import importlib
import io
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from dbnb.database import Database
from dbnb.errors import DbnbError, MigrationError, mask_secrets, translate
from dbnb.migration_reports import (
    CurrentRevision,
    DriftReport,
    History,
    MigrationResult,
    RevisionInfo,
    RevisionResult,
)

__all__ = [
    "MODELS_OPTION",
    "check",
    "context_options",
    "current",
    "downgrade",
    "find_config",
    "heads",
    "history",
    "load_config",
    "revision",
    "stamp",
    "target_metadata",
    "upgrade",
]

#: The alembic.ini option naming the models module(s) autogenerate and check compare against.
MODELS_OPTION = "dbnb.models"
# One advisory lock key per database for every schema change made through dbnb ("dbnb" in hex).
_LOCK_KEY = 0x64626E62
_PROJECT_MARKERS = ("pyproject.toml", ".git")

ConfigArg = str | os.PathLike[str] | Config | None


# -- configuration --------------------------------------------------------------------------------


def find_config(start: str | os.PathLike[str] | None = None) -> Path:
    """Find ``alembic.ini`` in ``start`` (default: the working directory) or a parent of it.

    The search stops at the project root: the first directory containing ``pyproject.toml`` or
    ``.git`` is the last one looked at.

    Raises:
        MigrationError: no ``alembic.ini`` up to the project root.
    """
    here = Path(start if start is not None else Path.cwd()).resolve()
    looked = here
    for directory in (here, *here.parents):
        looked = directory
        candidate = directory / "alembic.ini"
        if candidate.is_file():
            return candidate
        if any((directory / marker).exists() for marker in _PROJECT_MARKERS):
            break
    raise MigrationError(
        f"no alembic.ini in {here} or above it up to {looked}; run `dbnb init` in the project "
        "root, or pass config='path/to/alembic.ini'"
    )


def load_config(config: ConfigArg = None) -> Config:
    """Build the Alembic ``Config``: from an ini path, a directory holding one, or found upwards.

    Alembic's output goes to a buffer (``config.stdout``), never to the notebook. A relative
    ``script_location`` is taken relative to the ini file, not to the working directory.
    A ``Config`` passed in is returned as it is.
    """
    if isinstance(config, Config):
        return config
    path = find_config() if config is None else Path(config)
    if path.is_dir():
        path = path / "alembic.ini"
    if not path.is_file():
        raise MigrationError(f"{path} does not exist; pass the path of an alembic.ini")
    cfg = Config(file_=str(path), stdout=io.StringIO())
    location = cfg.get_main_option("script_location")
    if not location:
        raise MigrationError(f"{path} sets no script_location; add one under [alembic]")
    if ":" not in location and not Path(location).is_absolute():
        absolute = str(path.resolve().parent / location)
        cfg.set_main_option("script_location", absolute.replace("%", "%%"))
    return cfg


def _base_metadata() -> MetaData:
    from dbnb.models import Base

    return Base.metadata


def _import_models(spec: str) -> MetaData | None:
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MigrationError(
            f"cannot import the models module {module_name!r} ({type(exc).__name__}: {exc}); "
            f"fix {MODELS_OPTION} in alembic.ini or pass models="
        ) from exc
    if attribute:
        found = getattr(module, attribute, None)
        if not isinstance(found, MetaData):
            raise MigrationError(f"{spec!r} is not a sqlalchemy MetaData")
        return found
    for name in ("target_metadata", "metadata"):
        found = getattr(module, name, None)
        if isinstance(found, MetaData):
            return found
    return None


def target_metadata(config: Config, models: MetaData | str | None = None) -> MetaData:
    """Choose the MetaData that autogenerate and :func:`check` compare the database against.

    In order: ``models`` (a MetaData, or a module path such as ``"myapp.models"`` or
    ``"myapp.models:metadata"``), then ``config.attributes["target_metadata"]``, then the
    modules named by ``dbnb.models`` in alembic.ini. A module's ``target_metadata`` or
    ``metadata`` attribute is used; a module with neither is imported for its models, which
    register on dbnb's ``Base``, and the result is ``dbnb.models.Base.metadata`` — which also
    holds every model defined in the notebook itself.
    """
    chosen = models if models is not None else config.attributes.get("target_metadata")
    if isinstance(chosen, MetaData):
        return chosen
    spec = chosen if isinstance(chosen, str) else config.get_main_option(MODELS_OPTION) or ""
    explicit = [m for m in (_import_models(s.strip()) for s in spec.split(",") if s.strip()) if m]
    if len(explicit) > 1:
        raise MigrationError(f"{spec!r} names several MetaData objects; name one")
    return explicit[0] if explicit else _base_metadata()


def context_options() -> dict[str, Any]:
    """Options ``env.py`` passes to ``context.configure`` (shared with :func:`check`).

    One transaction per revision: a revision that fails rolls back alone and leaves the
    database at the revision before it.
    """
    return {"compare_type": True, "transaction_per_migration": True}


# -- connection, lock, state ----------------------------------------------------------------------


@contextmanager
def _connection(db: Database, cfg: Config, *, lock: bool) -> Iterator[Connection]:
    """Check out a connection for Alembic, holding the migration advisory lock if asked.

    Alembic also writes some messages straight to ``sys.stdout``; they go to the config's
    buffer too, so nothing reaches the notebook.
    """
    buffer = cfg.stdout if isinstance(cfg.stdout, io.StringIO) else io.StringIO()
    try:
        with redirect_stdout(buffer), db.engine.connect() as conn:
            if lock:
                # Session-level (not transaction-level) lock: Alembic commits once per revision.
                conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _LOCK_KEY})
                conn.commit()
            cfg.attributes["connection"] = conn
            try:
                yield conn
            finally:
                cfg.attributes.pop("connection", None)
                conn.rollback()
                if lock:
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})
                    conn.commit()
    except SQLAlchemyError as exc:
        raise translate(exc) from exc


def _stamped(conn: Connection) -> tuple[str, ...]:
    heads = MigrationContext.configure(conn).get_current_heads()
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
            "matches a known revision, re-stamp it (`dbnb stamp <revision>`); nothing was changed"
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


def _move(
    db: Database,
    action: str,
    run: Callable[[Config, tuple[str, ...]], None],
    config: ConfigArg,
) -> MigrationResult:
    cfg = load_config(config)
    script = ScriptDirectory.from_config(cfg)
    try:
        with _connection(db, cfg, lock=True) as conn:
            before = _stamped(conn)
            try:
                run(cfg, before)
            except MigrationError:
                raise
            except (CommandError, SQLAlchemyError, DbnbError) as exc:
                conn.rollback()
                raise _alembic_failure(action, exc, _stamped(conn)) from exc
            after = _stamped(conn)
    finally:
        db.refresh_pools()
    if action == "upgrade":
        steps = list(reversed(_between(script, after, before)))
    elif action == "downgrade":
        steps = _between(script, before, after)
    else:
        steps = []
    applied = action == "upgrade"
    return MigrationResult(action, before, after, tuple(_info(s, applied=applied) for s in steps))


def upgrade(db: Database, revision: str = "head", *, config: ConfigArg = None) -> MigrationResult:
    """Upgrade the database to ``revision`` (default ``head``); return what was applied.

    Each revision runs in its own transaction under a PostgreSQL advisory lock: a concurrent
    upgrade waits, then finds nothing left to do. A failing revision rolls back alone.

    Args:
        db: the database to upgrade.
        revision: the target: ``head`` (default), a revision id, or ``+1`` for one step.
        config: an alembic.ini path or a Config; default: found from the working directory.

    Example::

        dbnb.migrations.upgrade(db)          # %db migrate
    """

    def run(cfg: Config, before: tuple[str, ...]) -> None:
        _require_known(ScriptDirectory.from_config(cfg), before)
        command.upgrade(cfg, revision)

    return _move(db, "upgrade", run, config)


def downgrade(db: Database, revision: str = "-1", *, config: ConfigArg = None) -> MigrationResult:
    """Downgrade the database to ``revision``, one transaction per revision, under the lock.

    Args:
        db: the database to downgrade.
        revision: the target: ``-1`` (default, one step back), a revision id, or ``base``.
        config: an alembic.ini path or a Config; default: found from the working directory.
    """

    def run(cfg: Config, before: tuple[str, ...]) -> None:
        _require_known(ScriptDirectory.from_config(cfg), before)
        if not before:
            raise MigrationError("the database is at base: there is nothing to downgrade")
        command.downgrade(cfg, revision)

    return _move(db, "downgrade", run, config)


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


def revision(
    db: Database,
    message: str,
    *,
    autogenerate: bool = False,
    models: MetaData | str | None = None,
    config: ConfigArg = None,
) -> RevisionResult:
    """Write a new revision file; with ``autogenerate``, from the models' differences.

    Args:
        db: the database to compare against (it must be at head for autogenerate).
        message: what the revision does, e.g. ``"add coupons"``.
        autogenerate: fill upgrade()/downgrade() from the difference between the models and
            the database.
        models: a MetaData or a models module path; default: ``dbnb.models`` in alembic.ini,
            else dbnb's ``Base.metadata`` (the models defined in this notebook).
        config: an alembic.ini path or a Config; default: found from the working directory.
    """
    from dbnb.drift import describe_diff

    cfg = load_config(config)
    script = ScriptDirectory.from_config(cfg)
    operations: list[str] = []

    def collect(context: Any, rev: Any, directives: list[Any]) -> None:
        for directive in directives:
            for ops in directive.upgrade_ops_list:
                operations.extend(d.detail for diff in ops.as_diffs() for d in describe_diff(diff))

    if autogenerate:
        cfg.attributes["target_metadata"] = target_metadata(cfg, models)
    try:
        with _connection(db, cfg, lock=False) as conn:
            _require_known(script, _stamped(conn))
            written = command.revision(
                cfg, message=message, autogenerate=autogenerate, process_revision_directives=collect
            )
    except (CommandError, SQLAlchemyError) as exc:
        hint = " (run migrate first)" if "not up to date" in str(exc) else ""
        raise MigrationError(f"revision failed: {str(exc).strip()}{hint}") from exc
    finally:
        cfg.attributes.pop("target_metadata", None)
    new = written[0] if isinstance(written, list) else written
    if new is None:
        raise MigrationError("revision wrote no file")
    return RevisionResult(
        revision=new.revision,
        down_revisions=_as_tuple(new.down_revision),
        message=message,
        path=new.path,
        operations=tuple(operations),
        autogenerate=autogenerate,
    )


# -- commands that only read ----------------------------------------------------------------------


def current(db: Database, *, config: ConfigArg = None) -> CurrentRevision:
    """Read the revision stamped in the database (``alembic_version``) and the scripts' heads.

    Args:
        db: the database to read.
        config: an alembic.ini path or a Config; default: found from the working directory.
    """
    cfg = load_config(config)
    script = ScriptDirectory.from_config(cfg)
    with _connection(db, cfg, lock=False) as conn:
        stamped = _stamped(conn)
    _require_known(script, stamped)
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
    cfg = load_config(config)
    script = ScriptDirectory.from_config(cfg)
    with _connection(db, cfg, lock=False) as conn:
        stamped = _stamped(conn)
    _require_known(script, stamped)
    applied = {s.revision for s in _between(script, stamped, ())}
    return History(tuple(_info(s, applied=s.revision in applied) for s in script.walk_revisions()))


def check(
    db: Database, *, models: MetaData | str | None = None, config: ConfigArg = None
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
    from dbnb.drift import compare

    cfg = load_config(config)
    metadata = target_metadata(cfg, models)
    state = current(db, config=cfg)
    with _connection(db, cfg, lock=False) as conn:
        drifts = compare(conn, metadata, context_options())
    return DriftReport(drifts, state)
