"""Where dbnb's migrations get their Alembic ``Config`` and models from.

``alembic.ini`` is found from the working directory upwards, never above the project root (the
first directory holding ``pyproject.toml`` or ``.git``); the models autogenerate and ``check``
compare against are chosen by :func:`target_metadata`. ``env.py`` imports
:func:`target_metadata` and :func:`context_options` from here, so the template, this repo's
``migrations/env.py`` and :mod:`dbnb.migrations` agree on both.
"""

from __future__ import annotations

import configparser
import importlib
import io
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic.config import Config
from sqlalchemy import MetaData, Table

from dbnb.errors import MigrationError
from dbnb.migrations.drift import TargetMetadata
from dbnb.phrasing import command, option

__all__ = [
    "MODELS_OPTION",
    "ConfigArg",
    "TargetMetadata",
    "context_options",
    "find_config",
    "load_config",
    "require_models",
    "target_metadata",
]

#: The alembic.ini option naming the models module(s) autogenerate and check compare against.
MODELS_OPTION = "dbnb.models"
#: The module name under which a notebook's own variables are importable (``__main__:Base``).
NOTEBOOK = "__main__"
_PROJECT_MARKERS = ("pyproject.toml", ".git")

ConfigArg = str | os.PathLike[str] | Config | None


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
        f"no alembic.ini in {here} or above it up to {looked}; run "
        f"{command('init', 'dbnb.migrations.init()')} in the project root, or pass "
        f"{option('config', 'path/to/alembic.ini')}"
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
    try:
        location = cfg.get_main_option("script_location")
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise MigrationError(
            f"{path} is not an alembic.ini ({type(exc).__name__}); pass an ini file with an "
            "[alembic] section (dbnb init writes one)"
        ) from exc
    if not location:
        raise MigrationError(f"{path} sets no script_location; add one under [alembic]")
    if ":" not in location and not Path(location).is_absolute():
        absolute = str(path.resolve().parent / location)
        cfg.set_main_option("script_location", absolute.replace("%", "%%"))
    return cfg


def _base_metadata() -> MetaData:
    from dbnb.orm.models import Base

    return Base.metadata


@contextmanager
def _importable(directory: Path | None) -> Iterator[None]:
    """Let ``import`` find modules next to alembic.ini (``models.py`` beside it) meanwhile."""
    entry = str(directory) if directory is not None else None
    added = entry is not None and entry not in sys.path
    if added:
        sys.path.insert(0, str(entry))
    try:
        yield
    finally:
        if added:
            sys.path.remove(str(entry))


def _as_metadata(found: Any) -> MetaData | None:
    """A MetaData, or the ``metadata`` of a declarative Base (``Base`` in a notebook)."""
    if isinstance(found, MetaData):
        return found
    metadata = getattr(found, "metadata", None)
    return metadata if isinstance(metadata, MetaData) else None


def _import_models(spec: str, directory: Path | None = None) -> MetaData | None:
    module_name, _, attribute = spec.partition(":")
    try:
        with _importable(directory):
            module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MigrationError(
            f"cannot import the models module {module_name!r} ({type(exc).__name__}: {exc}); "
            f"fix {MODELS_OPTION} in alembic.ini or pass {option('models', 'myapp.models')}"
        ) from exc
    if attribute:
        found: Any = module
        for part in attribute.split("."):
            found = getattr(found, part, None)
        metadata = _as_metadata(found)
        if metadata is None and module_name == NOTEBOOK:
            raise MigrationError(
                f"{MODELS_OPTION} = {spec} names the notebook's {attribute}, which exists only "
                "while the notebook runs (and has run the cell defining it): run this from the "
                f"notebook, or point {MODELS_OPTION} in alembic.ini at a models module"
            )
        if metadata is None:
            raise MigrationError(
                f"{spec!r} is neither a sqlalchemy MetaData nor a declarative Base"
            )
        return metadata
    for name in ("target_metadata", "metadata", "Base"):
        metadata = _as_metadata(getattr(module, name, None))
        if metadata is not None:
            return metadata
    return None


def _notebook_metadata() -> MetaData | None:
    """Copy the tables of models defined in the notebook itself (``__main__``) on dbnb's Base.

    Models that library or test modules put on the same Base are left out: only what the
    notebook (or the script being run) declared joins a configured models module.
    """
    base = _base_metadata()
    from dbnb.orm.models import Base

    tables = [
        m.local_table
        for m in Base.registry.mappers
        if m.class_.__module__ == "__main__" and isinstance(m.local_table, Table)
    ]
    if not tables:
        return None
    copy = MetaData(naming_convention=base.naming_convention)
    for table in tables:
        table.to_metadata(copy)
    return copy


def target_metadata(
    config: Config, models: MetaData | Sequence[MetaData] | str | None = None
) -> TargetMetadata:
    """Choose what autogenerate and ``check`` compare the database against.

    In order: ``models`` (a MetaData or several, or a module path such as ``"myapp.models"`` or
    ``"myapp.models:metadata"``), then ``config.attributes["target_metadata"]``, then the
    modules named by ``dbnb.models`` in alembic.ini. A module's ``target_metadata`` or
    ``metadata`` attribute is used; a module with neither is imported for its models, which
    register on dbnb's ``Base``. With nothing configured the answer is
    dbnb's ``Base.metadata``, which holds every model defined in the notebook. With a
    configured module that has a MetaData of its own, the models the notebook itself
    (``__main__``) defined on dbnb's ``Base`` are compared too.
    """
    chosen = models if models is not None else config.attributes.get("target_metadata")
    if isinstance(chosen, MetaData):
        return chosen
    if isinstance(chosen, list | tuple):
        return tuple(chosen)
    spec = chosen if isinstance(chosen, str) else config.get_main_option(MODELS_OPTION) or ""
    here = Path(config.config_file_name).resolve().parent if config.config_file_name else None
    found = [
        m for m in (_import_models(s.strip(), here) for s in spec.split(",") if s.strip()) if m
    ]
    if not found:
        return _base_metadata()
    notebook = _notebook_metadata() if models is None else None
    if notebook is not None and _base_metadata() not in found:
        found.append(notebook)
    return found[0] if len(found) == 1 else tuple(found)


def require_models(metadata: TargetMetadata) -> None:
    """Refuse to compare against no models at all (autogenerate would write an empty revision).

    Raises:
        MigrationError: the chosen MetaData holds no table.
    """
    every = metadata if isinstance(metadata, tuple) else (metadata,)
    if not any(m.tables for m in every):
        raise MigrationError(
            "no models to compare with: define them on dbnb.Base in this notebook, or name "
            f"them with {option('models', 'Base')} (a notebook's Base or MetaData, or a module "
            f"such as myapp.models), or set {MODELS_OPTION} in alembic.ini ("
            f"{command('init --models myapp.models', 'dbnb.migrations.init(models=...)')} "
            "writes it)"
        )


def context_options(connection: Any = None) -> dict[str, Any]:
    """Options ``env.py`` passes to ``context.configure`` (shared with :func:`check`).

    One transaction per revision: a revision that fails rolls back alone and leaves the
    database at the revision before it. Types and server defaults are compared, and calling
    this registers dbnb's partial-index comparator with Alembic (so the plain ``alembic``
    command's ``check`` and autogenerate see a changed ``WHERE`` too). Given the connection,
    SQLite gets Alembic's batch mode (``render_as_batch``: it can alter a table only by
    rebuilding it), and MySQL's generated ``dbnb_alive`` columns (see
    :mod:`dbnb.orm.unique`) are not reported as columns the models lack.
    """
    from dbnb.dialects import capabilities
    from dbnb.migrations import comparators  # noqa: F401  (registers on import)

    options: dict[str, Any] = {
        "compare_type": True,
        "compare_server_default": True,
        "transaction_per_migration": True,
        "render_item": _render_item,
    }
    if connection is not None:
        caps = capabilities(getattr(connection, "dialect", connection))
        if not caps.partial_index:
            options["include_object"] = _without_alive_keys
        if caps.batch_migrations:
            options["render_as_batch"] = True
        if not caps.server_settings:
            # SQLite and MySQL keep defaults as text of their own; comparing them with the
            # models' expressions reports differences that are none.
            options["compare_server_default"] = False
    return options


def _without_alive_keys(
    obj: Any, name: str | None, kind: str, reflected: bool, other: Any
) -> bool:
    """Leave MySQL's unique-while-alive keys (a generated column and its index) out of autogenerate.

    They are built by :func:`dbnb.orm.unique.mysql_alive_sql`, which autogenerate cannot
    express; the models' partial index is their stand-in there.
    """
    from dbnb.orm.unique import ALIVE_COLUMN

    if kind == "column":
        return name != ALIVE_COLUMN
    if kind != "index":
        return True
    columns = [getattr(c, "name", None) for c in getattr(obj, "columns", [])]
    return ALIVE_COLUMN not in columns and not obj.info.get(ALIVE_COLUMN, False)


def _render_item(kind: str, obj: Any, autogen_context: Any) -> Any:
    """dbnb's column types render as the SQLAlchemy types they are stored as (no dbnb import)."""
    from dbnb.orm.types import UtcDateTime

    if kind == "type" and isinstance(obj, UtcDateTime):
        autogen_context.imports.add("import sqlalchemy as sa")
        return "sa.DateTime(timezone=True)"
    return False
