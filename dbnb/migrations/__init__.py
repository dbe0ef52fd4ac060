"""Alembic through its Python API: upgrade, downgrade, revisions, history and drift checks.

``dbnb.migrations.upgrade(db)`` and friends (from ``api``) build the Alembic config
(``config``), hand it dbnb's live connection and return reports (``reports``); ``drift``
compares models with the database and ``scaffold`` writes a project's ``alembic.ini``. May
import ``orm``, ``engine`` and the layers below; imported by ``notebook`` and ``dbnb.cli``.
"""

from dbnb.migrations.api import (
    check,
    current,
    downgrade,
    heads,
    history,
    stamp,
    upgrade,
)
from dbnb.migrations.config import (
    MODELS_OPTION,
    context_options,
    find_config,
    load_config,
    target_metadata,
)
from dbnb.migrations.revisions import branches, merge, revision, show
from dbnb.migrations.scaffold import init

__all__ = [
    "MODELS_OPTION",
    "branches",
    "check",
    "context_options",
    "current",
    "downgrade",
    "find_config",
    "heads",
    "history",
    "init",
    "load_config",
    "merge",
    "revision",
    "show",
    "stamp",
    "target_metadata",
    "upgrade",
]
