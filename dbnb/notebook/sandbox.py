"""``%db sandbox``: a sandbox that spans notebook cells, ended (rolled back) by ``--end``.

A context variable set in one cell does not survive into the next, so the scoped
``with db.sandbox()`` cannot span cells; this pins one sandbox connection on the Database
instead, which every new sync session joins until the sandbox ends.
"""

from __future__ import annotations

from dataclasses import dataclass

from dbnb.display.tables import html_record
from dbnb.engine.database import Database

__all__ = ["SandboxState", "sandbox"]


@dataclass(frozen=True)
class SandboxState:
    """Whether a cross-cell sandbox is open on a Database, after :func:`sandbox` acted."""

    database: str
    active: bool
    message: str

    def __repr__(self) -> str:
        return self.message

    def _repr_html_(self) -> str:
        return html_record("sandbox", {"database": self.database, "active": self.active,
                                       "": self.message})


def sandbox(db: Database, *, end: bool = False) -> SandboxState:
    """Start a sandbox that lasts across notebook cells; with end, roll it all back.

    Until it ends, every sync session this Database opens (repositories, ``%%db``,
    ``db.execute``, ``db.frame``) joins one connection through savepoints, so whatever they
    "commit" is undone at the end. ``with db.sandbox()`` is the scoped form for Python code.

    Args:
        end: roll back everything done since the sandbox started, and close it.
    """
    if end:
        ended = db._sessions.unpin_sandbox()
        message = (
            "sandbox ended: every change since it started was rolled back"
            if ended else "no sandbox was open"
        )
        return SandboxState(db.database, False, message)
    started = db._sessions.pin_sandbox()
    message = (
        "sandbox started: changes stay until `%db sandbox --end` rolls them back"
        if started else "a sandbox is already open; `%db sandbox --end` rolls it back"
    )
    return SandboxState(db.database, True, message)
