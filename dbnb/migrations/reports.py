"""What the migration functions return: frozen snapshots built from Alembic's own objects.

Each has a plain ``__repr__`` and a ``_repr_html_`` (via :mod:`dbnb.display.tables`); none does I/O.
An empty result (nothing to do, no drift) renders as one line, not as an empty table.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dbnb.display.tables import Record, Table
from dbnb.display.values import Status, plural

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
        what = plural(len(self.steps), "revision")
        if not self.changed:
            return f"{self.action}: already at {_revs(self.to_revisions)}, nothing to do"
        if self.action == "stamp":
            return f"stamp: {_revs(self.from_revisions)} -> {_revs(self.to_revisions)} (no DDL run)"
        return f"{self.action}: {_revs(self.from_revisions)} -> {_revs(self.to_revisions)} ({what})"

    def _table(self) -> Table:
        return Table(COLUMNS, [s.as_row() for s in self.steps], caption=self.summary)

    def __repr__(self) -> str:
        return self._table().text()

    def _repr_html_(self) -> str:
        return self._table().html()


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

    def _record(self) -> Record:
        if not self.written:
            return Record("no revision written", self.as_dict(), ok=False)
        return Record(f"new revision {self.revision}", self.as_dict())

    def __repr__(self) -> str:
        return self._record().text()

    def _repr_html_(self) -> str:
        return self._record().html()


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
        return Record(f"revision {self.revision}", self.as_dict()).text()

    def _repr_html_(self) -> str:
        return Record(f"revision {self.revision}", self.as_dict()).html()


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

    def _record(self) -> Record:
        fields = self.as_dict()
        fields["up_to_date"] = Status(
            self.up_to_date, "yes" if self.up_to_date else "no: run migrate"
        )
        return Record("current revision", fields, ok=self.up_to_date)

    def __repr__(self) -> str:
        return self._record().text()

    def _repr_html_(self) -> str:
        return self._record().html()


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

    def _table(self) -> Table:
        return Table(
            COLUMNS, [r.as_row() for r in self.revisions],
            caption=f"migration history ({plural(len(self.revisions), 'revision')})",
            empty="no migration scripts yet: %db revision -m '...' writes the first",
        )

    def __repr__(self) -> str:
        return self._table().text()

    def _repr_html_(self) -> str:
        return self._table().html()


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
    def where(self) -> str:
        """Where the database stands: ``database at 0002`` (and the heads when behind)."""
        at = f"database at {_revs(self.current.revisions)}"
        if not self.current.up_to_date:
            at += f", scripts at {_revs(self.current.heads)}: run migrate"
        return at

    @property
    def summary(self) -> str:
        """One line saying whether the models match the database, and where it stands."""
        return self.note or f"{self._caption} ({self.where})"

    @property
    def _caption(self) -> str:
        if not self.drifts:
            return "no drift: the models match the database"
        return f"{plural(len(self.drifts), 'difference')} between the models and the database"

    def _table(self) -> Table:
        return Table(
            ("kind", "table", "name", "detail"), [d.as_row() for d in self.drifts],
            caption=self._caption, empty=self.summary, note=self.where, ok=self.ok,
        )

    def __repr__(self) -> str:
        return self._table().text()

    def _repr_html_(self) -> str:
        return self._table().html()
