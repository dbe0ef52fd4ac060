"""Writing and reading revision files: revision (autogenerate, baseline), merge, branches, show.

``revision`` compares the models with the database (Alembic's autogenerate, with dbnb's
partial-index comparator) and writes nothing when nothing differs, unless asked for an empty
revision; with no models at all it refuses. A database that already has the models' tables but
no ``alembic_version`` is recognised: ``baseline`` writes the revision that creates them, to be
``stamp`` ed. ``merge``, ``branches`` and ``show`` read or join the revision graph and need no
database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alembic import command
from alembic.autogenerate import produce_migrations
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from dbnb.engine.database import Database
from dbnb.errors import MigrationError
from dbnb.migrations.api import _as_tuple, _info, _require_known, _stamped
from dbnb.migrations.config import (
    ConfigArg,
    TargetMetadata,
    context_options,
    load_config,
    require_models,
    target_metadata,
)
from dbnb.migrations.drift import describe_diff, two_ways_forward, unversioned_tables
from dbnb.migrations.locking import alembic_connection
from dbnb.migrations.reports import History, RevisionDetail, RevisionResult
from dbnb.phrasing import command as suggest
from dbnb.phrasing import option

__all__ = ["branches", "merge", "revision", "show"]


def _baseline(metadata: TargetMetadata, conn: Connection, script: Any) -> None:
    """Fill ``script`` with what creates every model, as if the database were empty."""
    opts = {
        **context_options(conn),
        "target_metadata": metadata,
        # Reflect no table of the database: every model then reads as one to create.
        "include_name": lambda _name, kind, _parents: kind != "table",
    }
    context = MigrationContext.configure(conn, opts=opts)
    fresh = produce_migrations(context, metadata)  # type: ignore[arg-type]
    script.upgrade_ops = fresh.upgrade_ops
    script.downgrade_ops = fresh.downgrade_ops


def revision(
    db: Database,
    message: str,
    *,
    autogenerate: bool = False,
    empty: bool = False,
    baseline: bool = False,
    models: MetaData | Sequence[MetaData] | str | None = None,
    config: ConfigArg = None,
) -> RevisionResult:
    """Write a new revision file; with ``autogenerate``, from the models' differences.

    With autogenerate and nothing detected, no file is written (the result says so) unless
    ``empty``. Without any models it raises instead of writing an empty revision.

    Args:
        db: the database to compare against (it must be at head for autogenerate).
        message: what the revision does, e.g. ``"add coupons"``.
        autogenerate: fill upgrade()/downgrade() from the difference between the models and
            the database.
        empty: write the revision even when autogenerate detects nothing.
        baseline: create every model, as if the database were empty (for tables made with
            create_all: write this, then stamp head).
        models: a MetaData or a models module path; default: ``dbnb.models`` in alembic.ini,
            else dbnb's ``Base.metadata`` (the models defined in this notebook).
        config: an alembic.ini path or a Config; default: found from the working directory.
    """
    cfg = load_config(config)
    script = ScriptDirectory.from_config(cfg)
    compare = autogenerate or baseline
    operations: list[str] = []
    metadata = target_metadata(cfg, models) if compare else None
    if metadata is not None:
        require_models(metadata)
    unversioned: list[str] = []

    def collect(context: Any, rev: Any, directives: list[Any]) -> None:
        if baseline:
            assert metadata is not None
            _baseline(metadata, context.connection, directives[0])
        for directive in directives:
            for ops in directive.upgrade_ops_list:
                operations.extend(d.detail for diff in ops.as_diffs() for d in describe_diff(diff))
        if compare and not operations and not empty:
            directives[:] = []  # nothing detected: Alembic writes no file

    given = cfg.attributes.get("target_metadata")
    if metadata is not None:
        cfg.attributes["target_metadata"] = metadata
    try:
        with alembic_connection(db, cfg, lock=False) as conn:
            _require_known(script, _stamped(conn))
            if metadata is not None:
                unversioned = unversioned_tables(conn, metadata)
                conn.rollback()
            written = command.revision(
                cfg, message=message, autogenerate=compare, process_revision_directives=collect
            )
    except (CommandError, SQLAlchemyError) as exc:
        hint = f" (run {suggest('migrate', 'dbnb.migrations.upgrade(db)')} first)" if (
            "not up to date" in str(exc)) else ""
        raise MigrationError(f"revision failed: {str(exc).strip()}{hint}") from exc
    finally:
        cfg.attributes["target_metadata"] = given
    new = written[0] if isinstance(written, list) and written else written
    if not isinstance(new, Script):
        note = (
            two_ways_forward(unversioned) if unversioned and not baseline else
            f"the models match the database: no revision written ({option('empty')} writes "
            "an empty one anyway)"
        )
        return RevisionResult(None, (), message, None, (), compare, note)
    return RevisionResult(
        revision=new.revision,
        down_revisions=_as_tuple(new.down_revision),
        message=message,
        path=new.path,
        operations=tuple(operations),
        autogenerate=compare,
    )


def merge(
    revisions: str = "heads", *, message: str | None = None, config: ConfigArg = None
) -> RevisionResult:
    """Write a revision that joins several heads (or the given revisions) into one.

    Args:
        revisions: what to merge: ``heads`` (default) or revision ids separated by commas.
        message: what the merge revision says, e.g. ``"merge coupons and categories"``.
        config: an alembic.ini path or a Config; default: found from the working directory.
    """
    cfg = load_config(config)
    wanted = "heads" if revisions == "heads" else [r.strip() for r in revisions.split(",")]
    script = ScriptDirectory.from_config(cfg)
    if wanted == "heads" and len(script.get_heads()) < 2:
        raise MigrationError(f"there is one head ({', '.join(script.get_heads()) or 'none'}): "
                             "nothing to merge")
    try:
        new = command.merge(cfg, wanted, message=message)
    except CommandError as exc:
        raise MigrationError(f"merge failed: {str(exc).strip()}") from exc
    if new is None:
        raise MigrationError("merge wrote no file")
    return RevisionResult(new.revision, _as_tuple(new.down_revision), message or "", new.path,
                          (), False)


def branches(*, config: ConfigArg = None) -> History:
    """List the revisions where the history branches (more than one revision builds on them).

    Args:
        config: an alembic.ini path or a Config; default: found from the working directory.
    """
    script = ScriptDirectory.from_config(load_config(config))
    return History(tuple(_info(s) for s in script.walk_revisions() if s.is_branch_point))


def show(revision: str = "head", *, config: ConfigArg = None) -> RevisionDetail:
    """Show one revision: its message, parents, children, file and whether it is a head.

    Args:
        revision: a revision id (a unique prefix is enough), ``head`` or ``base``-relative.
        config: an alembic.ini path or a Config; default: found from the working directory.
    """
    script = ScriptDirectory.from_config(load_config(config))
    try:
        found = script.get_revision(revision)
    except CommandError as exc:
        raise MigrationError(f"show: {str(exc).strip()}") from exc
    if found is None:
        raise MigrationError(f"show: there is no revision {revision!r} (the history is empty)")
    return RevisionDetail(
        revision=found.revision,
        down_revisions=_as_tuple(found.down_revision),
        next_revisions=tuple(sorted(found.nextrev)),
        message=(found.doc or "").strip(),
        path=found.path,
        is_head=found.is_head,
        is_branch_point=found.is_branch_point,
    )
