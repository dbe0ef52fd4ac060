"""``--sql``: the SQL an upgrade or downgrade would run, written by Alembic's offline mode.

Nothing runs and nothing is locked: ``env.py`` sees ``context.is_offline_mode()`` and renders
each migration as PostgreSQL SQL into a buffer. The range starts at the database's current
revision (read by the caller), so ``upgrade --sql`` shows exactly what ``upgrade`` would do.
"""

from __future__ import annotations

import io
from contextlib import redirect_stdout

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError

from dbnb.errors import MigrationError
from dbnb.migrations.reports import SqlScript

__all__ = ["sql_script"]


def _below(script: ScriptDirectory, start: str, steps: int) -> str:
    current = start
    for _ in range(steps):
        down = script.get_revision(current).down_revision if current != "base" else None
        if down is None:
            return "base"
        if not isinstance(down, str):
            raise MigrationError(f"{current} merges {', '.join(down)}: name the revision to go "
                                 "down to instead of a relative step")
        current = down
    return current


def sql_script(cfg: Config, action: str, stamped: tuple[str, ...], target: str) -> SqlScript:
    """Render ``action`` (upgrade or downgrade) from ``stamped`` to ``target`` as SQL."""
    script = ScriptDirectory.from_config(cfg)
    start = stamped[0] if len(stamped) == 1 else "base" if not stamped else None
    if start is None:
        raise MigrationError("the database is at several heads: name one with a range, A:B")
    if action == "downgrade" and target.startswith("-") and target[1:].isdigit():
        target = _below(script, start, int(target[1:]))
    span = target if ":" in target else f"{start}:{target}"
    if action == "upgrade" and start == "base" and ":" not in target:
        span = target
    buffer = io.StringIO()
    cfg.output_buffer = buffer
    try:
        with redirect_stdout(buffer):
            run = command.upgrade if action == "upgrade" else command.downgrade
            run(cfg, span, sql=True)
    except CommandError as exc:
        raise MigrationError(f"{action} --sql failed: {str(exc).strip()}") from exc
    finally:
        cfg.output_buffer = None
    return SqlScript(action, span, buffer.getvalue())
