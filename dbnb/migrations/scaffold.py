"""``dbnb init``: write ``alembic.ini`` and ``migrations/`` from dbnb's packaged template."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from dbnb.display.tables import html_record, text_record
from dbnb.errors import MigrationError

__all__ = ["Scaffold", "init", "render_ini"]

_TEMPLATE = ("migrations", "templates", "alembic")


@dataclass(frozen=True)
class Scaffold:
    """The files ``init`` wrote."""

    directory: str
    files: tuple[str, ...]
    models: str | None

    def as_dict(self) -> dict[str, Any]:
        """The result as plain values."""
        return {
            "directory": self.directory,
            "files": ", ".join(self.files),
            "models": self.models or "dbnb.Base.metadata",
            "next": "dbnb revision -m 'first tables' --autogenerate, then dbnb migrate",
        }

    def __repr__(self) -> str:
        return text_record("Scaffold", self.as_dict())

    def _repr_html_(self) -> str:
        return html_record("dbnb init", self.as_dict())


def _template(name: str) -> str:
    return resources.files("dbnb").joinpath(*_TEMPLATE, name).read_text(encoding="utf-8")


def render_ini(models: str | None = None) -> str:
    """Return the ``alembic.ini`` text ``init`` writes, with ``dbnb.models`` set to ``models``."""
    return _template("alembic.ini").replace("{models}", models or "")


def init(directory: str | os.PathLike[str] = ".", *, models: str | None = None) -> Scaffold:
    """Write ``alembic.ini`` and ``migrations/`` (env.py, script.py.mako, versions/) into a project.

    Args:
        directory: the project root (default: the working directory).
        models: the module whose models autogenerate compares against, e.g. ``myapp.models``;
            default: dbnb's ``Base.metadata`` (whatever models are defined when it runs).

    Raises:
        MigrationError: ``alembic.ini`` or ``migrations/`` already exists there.
    """
    root = Path(directory).resolve()
    targets = {
        root / "alembic.ini": render_ini(models),
        root / "migrations" / "env.py": _template("env.py"),
        root / "migrations" / "script.py.mako": _template("script.py.mako"),
    }
    existing = [p for p in (root / "alembic.ini", root / "migrations") if p.exists()]
    if existing:
        raise MigrationError(
            f"{', '.join(str(p) for p in existing)} already exist(s); dbnb init never overwrites: "
            "remove them first or use the existing setup"
        )
    (root / "migrations" / "versions").mkdir(parents=True)
    for path, content in targets.items():
        path.write_text(content, encoding="utf-8")
    written = [*(str(p.relative_to(root)) for p in targets), "migrations/versions/"]
    return Scaffold(str(root), tuple(written), models)
