"""dbnb — a Jupyter-friendly data access toolkit for PostgreSQL.

``%load_ext dbnb`` in a notebook, or in Python::

    import dbnb
    db = dbnb.connect()                 # embedded PostgreSQL when nothing is configured
    with db.session() as s: ...

``import dbnb`` stays cheap: the frame functions (pandas, pyarrow) and the migration reports
(Alembic) are imported the first time they are used (:data:`_LAZY`).
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING

from dbnb.dialects import Capabilities
from dbnb.display.progress import set_progress
from dbnb.engine.async_database import AsyncDatabase
from dbnb.engine.bridge import run
from dbnb.engine.database import Database
from dbnb.engine.health import HealthReport, PoolReport, PoolStatus
from dbnb.engine.nodes import NodeStatus
from dbnb.engine.registry import close_all, connect
from dbnb.engine.server_info import ServerInfo
from dbnb.engine.transactions import execute_in_transaction
from dbnb.errors import (
    AbstractModelError,
    CheckViolation,
    ConfigError,
    ConfigWarning,
    ConnectionFailed,
    DatabaseClosed,
    DbnbError,
    FilterError,
    ForeignKeyViolation,
    FrameError,
    IntegrityViolation,
    InvalidValue,
    LoopMismatch,
    MigrationBlocked,
    MigrationError,
    MissingExtra,
    NotFound,
    NotNullViolation,
    PaginationError,
    ParameterError,
    PoolExhausted,
    QueryCanceled,
    QueryError,
    QueryTimeout,
    ReplicasBehind,
    ReplicaWarning,
    SchemaChanged,
    SerializationFailure,
    ServerInUse,
    UniqueViolation,
    UnsupportedOnDialect,
)
from dbnb.notebook.catalog import TableDescription, TableList

# Importing the module installs the global soft-delete filter on every Session.
from dbnb.orm import softdelete as _softdelete  # noqa: F401
from dbnb.orm.async_repository import AsyncRepository
from dbnb.orm.models import (
    Base,
    BigIntPrimaryKey,
    ModelList,
    SoftDelete,
    Timestamps,
    UUIDPrimaryKey,
)
from dbnb.orm.pagination import KeysetPage, Page
from dbnb.orm.repository import Repository
from dbnb.orm.uuidv7 import UUIDv7PrimaryKey, ensure_uuidv7, uuid7
from dbnb.server.embedded import EmbeddedServer, embedded_server
from dbnb.server.replica import LocalReplica
from dbnb.settings import Settings

if TYPE_CHECKING:
    from typing import Any

    from IPython.core.interactiveshell import InteractiveShell

    from dbnb.frames.aread import aiter_frames, aread_frame
    from dbnb.frames.read import iter_frames, read_frame
    from dbnb.frames.write import awrite_frame, write_frame
    from dbnb.migrations.reports import (
        CurrentRevision,
        DriftReport,
        History,
        MigrationResult,
        RevisionResult,
    )

#: Public names imported on first use, and the module each comes from.
_LAZY = {
    "aiter_frames": "dbnb.frames.aread",
    "aread_frame": "dbnb.frames.aread",
    "iter_frames": "dbnb.frames.read",
    "read_frame": "dbnb.frames.read",
    "awrite_frame": "dbnb.frames.write",
    "write_frame": "dbnb.frames.write",
    "CurrentRevision": "dbnb.migrations.reports",
    "DriftReport": "dbnb.migrations.reports",
    "History": "dbnb.migrations.reports",
    "MigrationResult": "dbnb.migrations.reports",
    "RevisionResult": "dbnb.migrations.reports",
}


def __getattr__(name: str) -> Any:
    """Import a lazily exported name (see :data:`_LAZY`) the first time it is asked for."""
    if name == "dask":  # dbnb.dask, the Dask integration: only when asked for (an extra)
        return importlib.import_module("dbnb.dask")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dbnb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

__version__ = "0.1.0"

# Silent unless the application configures logging: logging.basicConfig(level=logging.INFO)
# (or a handler on the "dbnb" logger) shows connects, disposals, failed calls and migrations.
logging.getLogger("dbnb").addHandler(logging.NullHandler())

__all__ = [
    "AbstractModelError",
    "AsyncDatabase",
    "AsyncRepository",
    "Base",
    "BigIntPrimaryKey",
    "Capabilities",
    "CheckViolation",
    "ConfigError",
    "ConfigWarning",
    "ConnectionFailed",
    "CurrentRevision",
    "Database",
    "DatabaseClosed",
    "DbnbError",
    "DriftReport",
    "EmbeddedServer",
    "FilterError",
    "ForeignKeyViolation",
    "FrameError",
    "HealthReport",
    "History",
    "IntegrityViolation",
    "InvalidValue",
    "KeysetPage",
    "LocalReplica",
    "LoopMismatch",
    "MigrationBlocked",
    "MigrationError",
    "MigrationResult",
    "MissingExtra",
    "ModelList",
    "NodeStatus",
    "NotFound",
    "NotNullViolation",
    "Page",
    "PaginationError",
    "ParameterError",
    "PoolExhausted",
    "PoolReport",
    "PoolStatus",
    "QueryCanceled",
    "QueryError",
    "QueryTimeout",
    "ReplicaWarning",
    "ReplicasBehind",
    "Repository",
    "RevisionResult",
    "SchemaChanged",
    "SerializationFailure",
    "ServerInUse",
    "ServerInfo",
    "Settings",
    "SoftDelete",
    "TableDescription",
    "TableList",
    "Timestamps",
    "UUIDPrimaryKey",
    "UUIDv7PrimaryKey",
    "UniqueViolation",
    "UnsupportedOnDialect",
    "aiter_frames",
    "aread_frame",
    "awrite_frame",
    "close_all",
    "connect",
    "embedded_server",
    "ensure_uuidv7",
    "execute_in_transaction",
    "iter_frames",
    "load_ipython_extension",
    "read_frame",
    "run",
    "set_progress",
    "uuid7",
    "write_frame",
]


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """Register the ``%db`` / ``%%db`` magics and the compact display of dbnb errors."""
    magics = importlib.import_module("dbnb.notebook.magic").DbMagics
    ipython.register_magics(magics(ipython))
    importlib.import_module("dbnb.notebook.tracebacks").install(ipython)
