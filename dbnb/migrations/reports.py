"""What the migration functions return: frozen snapshots built from Alembic's own objects.

Each has a plain ``__repr__`` and a ``_repr_html_`` (via :mod:`dbnb.display.tables`); none does I/O.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dbnb.display.tables import html_record, html_table, text_record, text_table

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CurrentRevision",
    "Drift",
    "DriftReport",
    "History",
    "MigrationResult",
    "RevisionDetail",
    "RevisionInfo",
    "RevisionResult",
    "SqlScript",
]


def _revs(revisions: tuple[str, ...]) -> str:
    return ", ".join(revisions) if revisions else "base"


@dataclass(frozen=True)
class RevisionInfo:
    """One revision of the history, and whether the database has it applied."""

    revision: str
    down_revisions: tuple[str, ...]
    message: str
    is_head: bool = False
    applied: bool = False

    def as_row(self) -> tuple[Any, ...]:
        """The revision as a table row (see :data:`COLUMNS`)."""
        return (self.revision, _revs(self.down_revisions), self.message, self.is_head, self.applied)


COLUMNS = ("revision", "down_revision", "message", "head", "applied")


@dataclass(frozen=True)
class MigrationResult:
    """What ``upgrade`` / ``downgrade`` / ``stamp`` did: from where, to where, and each step."""

    action: str
    from_revisions: tuple[str, ...]
    to_revisions: tuple[str, ...]
    steps: tuple[RevisionInfo, ...]

    @property
    def changed(self) -> bool:
        """True when the database moved to another revision."""
        return self.from_revisions != self.to_revisions

    @property
    def summary(self) -> str:
        """One line: ``upgrade: base -> 1a2b (2 revisions)``."""
        what = f"{len(self.steps)} revision{'s' if len(self.steps) != 1 else ''}"
        if not self.changed:
            return f"{self.action}: already at {_revs(self.to_revisions)}, nothing to do"
        if self.action == "stamp":
            return f"stamp: {_revs(self.from_revisions)} -> {_revs(self.to_revisions)} (no DDL run)"
        return f"{self.action}: {_revs(self.from_revisions)} -> {_revs(self.to_revisions)} ({what})"

    def __repr__(self) -> str:
        if not self.steps:
            return self.summary
        return self.summary + "\n" + text_table(COLUMNS, [s.as_row() for s in self.steps])

    def _repr_html_(self) -> str:
        return html_table(COLUMNS, [s.as_row() for s in self.steps], caption=self.summary)


@dataclass(frozen=True)
class RevisionResult:
    """A revision file ``revision`` / ``merge`` wrote (and what autogenerate put in it), or why
    none was written (``written`` is False and ``note`` says why and what to do)."""

    revision: str | None
    down_revisions: tuple[str, ...]
    message: str
    path: str | None
    operations: tuple[str, ...]
    autogenerate: bool
    note: str = ""

    @property
    def written(self) -> bool:
        """True when a revision file was written."""
        return self.path is not None

    def as_dict(self) -> dict[str, Any]:
        """The result as plain values."""
        if not self.written:
            return {"revision": "none written", "message": self.message, "why": self.note}
        ops = "; ".join(self.operations) if self.operations else "none detected"
        if not self.autogenerate:
            ops = "empty revision: write upgrade() and downgrade()"
        return {
            "revision": self.revision,
            "down_revision": _revs(self.down_revisions),
            "message": self.message,
            "path": self.path,
            "operations": ops,
        }

    def __repr__(self) -> str:
        return text_record("RevisionResult", self.as_dict())

    def _repr_html_(self) -> str:
        return html_record("new revision" if self.written else "no revision written",
                           self.as_dict(), ok=None if self.written else False)


@dataclass(frozen=True)
class RevisionDetail:
    """One revision of the history (``show``): message, parents, children, file."""

    revision: str
    down_revisions: tuple[str, ...]
    next_revisions: tuple[str, ...]
    message: str
    path: str
    is_head: bool
    is_branch_point: bool

    def as_dict(self) -> dict[str, Any]:
        """The revision as plain values."""
        return {
            "revision": self.revision,
            "message": self.message,
            "down_revision": _revs(self.down_revisions),
            "next": ", ".join(self.next_revisions) or "none (a head)",
            "branch_point": self.is_branch_point,
            "path": self.path,
        }

    def __repr__(self) -> str:
        return text_record("RevisionDetail", self.as_dict())

    def _repr_html_(self) -> str:
        return html_record(f"revision {self.revision}", self.as_dict())


@dataclass(frozen=True)
class SqlScript:
    """The SQL an upgrade or downgrade would run (``--sql``): shown, never executed."""

    action: str
    range: str
    sql: str

    def __repr__(self) -> str:
        return self.sql.rstrip() + "\n"

    def _repr_html_(self) -> str:
        return (f"<details open><summary>{html.escape(self.action)} {html.escape(self.range)}: "
                f"the SQL, not run</summary><pre>{html.escape(self.sql)}</pre></details>")


@dataclass(frozen=True)
class CurrentRevision:
    """The revision(s) stamped in the database next to the heads of the migration scripts."""

    revisions: tuple[str, ...]
    heads: tuple[str, ...]
    messages: tuple[str, ...]

    @property
    def up_to_date(self) -> bool:
        """True when the database is at every head of the scripts."""
        return set(self.revisions) == set(self.heads)

    def as_dict(self) -> dict[str, Any]:
        """The snapshot as plain values."""
        return {
            "current": _revs(self.revisions),
            "message": "; ".join(self.messages),
            "heads": _revs(self.heads),
            "up_to_date": self.up_to_date,
        }

    def __repr__(self) -> str:
        return text_record("CurrentRevision", self.as_dict())

    def _repr_html_(self) -> str:
        return html_record("current revision", self.as_dict(), ok=self.up_to_date)


@dataclass(frozen=True)
class History:
    """The revisions of the migration scripts, newest first, with what is applied."""

    revisions: tuple[RevisionInfo, ...]

    @property
    def heads(self) -> tuple[str, ...]:
        """The revisions no other revision builds on."""
        return tuple(r.revision for r in self.revisions if r.is_head)

    @property
    def frame(self) -> pd.DataFrame:
        """The history as a DataFrame (one row per revision, newest first)."""
        import pandas as pd

        return pd.DataFrame([r.as_row() for r in self.revisions], columns=list(COLUMNS))

    def __len__(self) -> int:
        return len(self.revisions)

    def __repr__(self) -> str:
        return text_table(COLUMNS, [r.as_row() for r in self.revisions])

    def _repr_html_(self) -> str:
        rows = [r.as_row() for r in self.revisions]
        return html_table(COLUMNS, rows, caption=f"migration history ({len(rows)} revisions)")


@dataclass(frozen=True)
class Drift:
    """One difference between the models and the database."""

    kind: str
    table: str
    name: str
    detail: str

    def as_row(self) -> tuple[str, str, str, str]:
        """The difference as a table row."""
        return (self.kind, self.table, self.name, self.detail)


@dataclass(frozen=True)
class DriftReport:
    """Do the models match the database? Alembic's comparison plus partial-index predicates."""

    drifts: tuple[Drift, ...]
    current: CurrentRevision
    note: str = ""  # e.g. the models' tables exist but the database has no alembic_version

    @property
    def ok(self) -> bool:
        """True when there is no drift, the database is at head and migrations track it."""
        return not self.drifts and self.current.up_to_date and not self.note

    @property
    def summary(self) -> str:
        """One line saying whether the models match the database."""
        at = f"database at {_revs(self.current.revisions)}"
        if not self.current.up_to_date:
            at += f", heads are {_revs(self.current.heads)}: run migrate"
        if self.note:
            return self.note
        if not self.drifts:
            return f"no drift: the models match the database ({at})"
        return f"{len(self.drifts)} difference(s) between the models and the database ({at})"

    def __repr__(self) -> str:
        if not self.drifts:
            return self.summary
        columns = ("kind", "table", "name", "detail")
        return self.summary + "\n" + text_table(columns, [d.as_row() for d in self.drifts])

    def _repr_html_(self) -> str:
        columns = ("kind", "table", "name", "detail")
        return html_table(columns, [d.as_row() for d in self.drifts], caption=self.summary)
