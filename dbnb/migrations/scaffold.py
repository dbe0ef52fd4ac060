"""``dbnb init``: write ``alembic.ini`` and ``migrations/`` from dbnb's packaged template."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData

from dbnb.display.tables import html_record, text_record
from dbnb.errors import MigrationError
from dbnb.migrations.config import NOTEBOOK
from dbnb.phrasing import command as suggest

__all__ = ["Scaffold", "init", "render_ini"]

_TEMPLATE = ("migrations", "templates", "alembic")


@dataclass(frozen=True)
class Scaffold:
    """The files ``init`` wrote."""

    directory: str
    files: tuple[str, ...]
    models: str | None
    next: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The result as plain values."""
        return {
            "directory": self.directory,
            "files": ", ".join(self.files),
            "models": self.models or "dbnb.Base.metadata (the models defined where it runs)",
            "next": self.next,
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


def _spec(models: Any) -> str | None:
    """Where the models are, as alembic.ini records it: a module path, or ``__main__:Name``."""
    if models is None or isinstance(models, str):
        return models
    main: dict[str, Any] = getattr(sys.modules.get(NOTEBOOK), "__dict__", {})
    for name, value in main.items():
        if name.startswith("_"):
            continue
        if value is models or getattr(value, "metadata", None) is models:
            return f"{NOTEBOOK}:{name}"
    raise MigrationError(
        "init records where the models are, so it needs a name: a module path such as "
        "myapp.models (or myapp.models:Base), or a Base or MetaData defined in the notebook"
    )


def init(
    directory: str | os.PathLike[str] = ".", *, models: str | MetaData | type | None = None
) -> Scaffold:
    """Write ``alembic.ini`` and ``migrations/`` (env.py, script.py.mako, versions/) into a project.

    Args:
        directory: the project root (default: the working directory).
        models: where the models autogenerate and check compare against are, recorded in
            alembic.ini: a module path (``myapp.models``, ``myapp.models:Base``; a module next
            to alembic.ini is found), or the notebook's ``Base`` / MetaData; default: dbnb's
            ``Base.metadata`` (whatever models are defined when it runs).

    Raises:
        MigrationError: ``alembic.ini`` or ``migrations/`` already exists there.
    """
    spec = _spec(models)
    root = Path(directory).resolve()
    targets = {
        root / "alembic.ini": render_ini(spec),
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
    first = suggest('revision -m "first tables" --autogenerate',
                    "dbnb.migrations.revision(db, 'first tables', autogenerate=True)")
    then = suggest("migrate", "dbnb.migrations.upgrade(db)")
    return Scaffold(str(root), tuple(written), spec, f"{first}, then {then}")
