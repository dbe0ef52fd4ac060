"""Declarative ``Base`` with a constraint naming convention, and the model mixins.

``Base`` gives every model ``to_dict()``, a readable ``__repr__`` and ``_repr_html_`` (neither
loads anything). The mixins add a primary key (:class:`UUIDPrimaryKey`,
:class:`BigIntPrimaryKey`), timestamps (:class:`Timestamps`) and soft delete
(:class:`SoftDelete`)::

    class User(UUIDPrimaryKey, Timestamps, SoftDelete, Base):
        __tablename__ = "users"
        email: Mapped[str] = mapped_column(String(255))
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import BigInteger, Identity, Integer, MetaData, inspect
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column, registry
from sqlalchemy.orm.decl_base import _declarative_constructor
from sqlalchemy.sql.elements import ColumnElement

from dbnb.display.tables import Record, Table
from dbnb.display.values import plural
from dbnb.errors import AbstractModelError
from dbnb.orm import schemas
from dbnb.orm.types import UtcDateTime, random_uuid, utc_now

__all__ = [
    "NAMING_CONVENTION",
    "Base",
    "BigIntPrimaryKey",
    "ModelList",
    "SoftDelete",
    "Timestamps",
    "UUIDPrimaryKey",
    "new_registry",
]

# Stable, predictable constraint names, so Alembic revisions and error messages agree.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Timestamps are always timezone-aware, also where the backend keeps no zone (UTC there); a
# naive ``Mapped[datetime]`` is a bug waiting to happen.
TYPE_ANNOTATION_MAP: dict[Any, Any] = {datetime: UtcDateTime()}

_REPR_MAX_VALUE = 40
_REPR_MAX_FIELDS = 8

M = TypeVar("M")
S = TypeVar("S")


def new_registry() -> registry:
    """Create a registry with dbnb's naming convention and type map (for a separate Base)."""
    return registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map=TYPE_ANNOTATION_MAP,
    )


def _loaded_columns(obj: Any) -> dict[str, Any]:
    """Column values already in the instance's ``__dict__``: never triggers a load."""
    state = inspect(obj)
    loaded = state.dict
    return {
        attr.key: loaded[attr.key] for attr in state.mapper.column_attrs if attr.key in loaded
    }


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= _REPR_MAX_VALUE else text[: _REPR_MAX_VALUE - 1] + "…"


class Base(DeclarativeBase):
    """Declarative base for dbnb models: naming convention, ``to_dict()``, reprs.

    Server-generated values (``created_at``, ``updated_at``) are fetched with ``RETURNING``
    after each INSERT and UPDATE (``eager_defaults``), so instances stay usable after the session
    closes and on asyncio, where a lazy load is not possible.
    """

    registry = new_registry()
    metadata = registry.metadata

    def __init__(self, **kwargs: Any) -> None:
        if inspect(type(self), raiseerr=False) is None:
            raise AbstractModelError(
                f"{type(self).__name__} is a base for models, not a model: subclass it with a "
                "__tablename__ and columns, e.g. class User(UUIDPrimaryKey, Base): "
                "__tablename__ = 'users'"
            )
        _declarative_constructor(self, **kwargs)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        return {"eager_defaults": True}

    def to_dict(self, *, exclude: Iterable[str] = ()) -> dict[str, Any]:
        """Return the column values as a dict keyed by attribute name (relationships excluded)."""
        skip = set(exclude)
        return {
            attr.key: getattr(self, attr.key)
            for attr in inspect(self).mapper.column_attrs
            if attr.key not in skip
        }

    def to_schema(self, schema: type[S]) -> S:
        """Validate this row into a pydantic ``BaseModel`` or a ``msgspec.Struct`` (by attribute).

        Example::

            class UserOut(pydantic.BaseModel):
                id: uuid.UUID
                email: str

            users.get(uid).to_schema(UserOut)
        """
        return schemas.to_schema(self, schema)

    def __repr__(self) -> str:
        fields = list(_loaded_columns(self).items())
        shown = " ".join(f"{k}={_short(v)}" for k, v in fields[:_REPR_MAX_FIELDS])
        more = " …" if len(fields) > _REPR_MAX_FIELDS else ""
        return f"<{type(self).__name__} {shown}{more}>" if shown else f"<{type(self).__name__}>"

    def _repr_html_(self) -> str:
        return Record(type(self).__name__, _loaded_columns(self), names=True).html()


class ModelList(list[M]):
    """A list of model instances that renders as one table in Jupyter."""

    def _columns(self) -> list[str]:
        if not self:
            return []
        mapper = getattr(inspect(self[0], raiseerr=False), "mapper", None)
        if mapper is None:  # schema objects (page.to_schema(...))
            return list(schemas.fields_of(self[0]))
        return [attr.key for attr in mapper.column_attrs]

    def _rows(self, columns: Sequence[str]) -> list[list[Any]]:
        return [[schemas.fields_of(obj).get(c) for c in columns] for obj in self]

    def _title(self) -> str:
        if not self:
            return "no rows"
        return plural(len(self), f"{type(self[0]).__name__} row")

    def table(self, caption: str | None = None) -> Table:
        """The rows as a :class:`~dbnb.display.tables.Table` (column names as they are)."""
        columns = self._columns()
        title = self._title() if caption is None else caption
        return Table(columns, self._rows(columns), caption=title, empty="no rows", names=True)

    def _repr_html_(self) -> str:
        return self.table().html()

    def to_text(self) -> str:
        """Render the rows as a plain aligned text table."""
        return self.table().text()


class UUIDPrimaryKey:
    """``id`` UUID primary key: uuid4 on the client; a random one from the server by default.

    The server default (``gen_random_uuid()`` on PostgreSQL, see :func:`~dbnb.orm.types.random_uuid`
    for the others) serves rows inserted by plain SQL or loaded from a frame.
    """

    id: Mapped[uuid.UUID] = mapped_column(
        primary_key=True,
        default=uuid.uuid4,
        server_default=random_uuid(),
        sort_order=-100,
    )


class BigIntPrimaryKey:
    """``id`` BIGINT primary key generated by an identity column (``BY DEFAULT``).

    SQLite numbers rows only in an ``INTEGER PRIMARY KEY`` (its 64-bit rowid), so there the
    column is declared INTEGER; MySQL/MariaDB make it ``AUTO_INCREMENT``.
    """

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), Identity(), primary_key=True,
        sort_order=-100,
    )


class Timestamps:
    """``created_at`` and ``updated_at`` (timestamptz, server default ``now()``).

    ``updated_at`` moves on every ORM flush that changes the row and on bulk updates made
    through repositories (``onupdate=now()``). On SQLite and MySQL/MariaDB they are UTC
    timestamps with sub-second precision (:mod:`dbnb.orm.types`).
    """

    created_at: Mapped[datetime] = mapped_column(
        UtcDateTime(), server_default=utc_now(), sort_order=100
    )
    updated_at: Mapped[datetime] = mapped_column(
        UtcDateTime(), server_default=utc_now(), onupdate=utc_now(), sort_order=101
    )


class SoftDelete:
    """``deleted_at`` (timestamptz, NULL while alive): rows with a value are hidden from reads.

    The filter itself lives in :mod:`dbnb.orm.softdelete` and applies to every ORM SELECT.
    """

    deleted_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime(), default=None, sort_order=102
    )

    @hybrid_property
    def is_deleted(self) -> bool:
        """True once the row is soft-deleted (also usable in queries: ``User.is_deleted``)."""
        return self.deleted_at is not None

    @is_deleted.inplace.expression
    @classmethod
    def _is_deleted_expression(cls) -> ColumnElement[bool]:
        return cls.deleted_at.is_not(None)

    def soft_delete(self) -> None:
        """Mark the instance deleted now (client clock); the next flush writes it."""
        self.deleted_at = datetime.now(UTC)

    def restore(self) -> None:
        """Clear ``deleted_at``; the next flush writes it."""
        self.deleted_at = None
