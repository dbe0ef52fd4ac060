"""What :class:`~dbnb.Repository` and :class:`~dbnb.AsyncRepository` share, I/O aside.

Binding checks, model inference for ``class UserRepo(Repository[User])``, the backend's
capabilities (from the bind, no I/O), the soft-delete views (``with_deleted()``,
``only_deleted()``), the ``NotFound`` messages and ``missing_ok``, and the logging of failed
calls (:mod:`dbnb.orm.observe`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar, get_args, get_origin

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from dbnb.dialects import Capabilities, capabilities
from dbnb.errors import NotFound
from dbnb.orm.observe import observed
from dbnb.orm.pagination import DEFAULT_MAX_PAGE_SIZE
from dbnb.orm.statements import Statements

if TYPE_CHECKING:
    from sqlalchemy import Result

__all__ = ["RepositoryBase", "detached"]

M = TypeVar("M")
T = TypeVar("T")


def detached(result: Result[Any]) -> Result[Any]:
    """Return a copy of ``result`` that stays readable after its session has closed."""
    return result.freeze()() if getattr(result, "returns_rows", True) else result


class RepositoryBase(Generic[M]):
    """What both shells share: binding, model inference, visibility, messages."""

    model: type[M]
    max_page_size: int = DEFAULT_MAX_PAGE_SIZE
    #: The HMAC key of keyset cursors; None: a random key of this process (see
    #: :mod:`dbnb.orm.cursors` for when an application must set one).
    cursor_key: ClassVar[bytes | str | None] = None
    _binds: tuple[type, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        observed(cls)
        for base in getattr(cls, "__orig_bases__", ()):
            args = get_args(base)
            origin = get_origin(base)
            shell = isinstance(origin, type) and issubclass(origin, RepositoryBase)
            if shell and args and isinstance(args[0], type):
                cls.model = args[0]

    def __init__(self, *args: Any) -> None:
        if len(args) == 1 and hasattr(type(self), "model"):
            model, bind = type(self).model, args[0]
        elif len(args) == 2:
            model, bind = args
        else:
            raise TypeError(
                f"{type(self).__name__}(Model, bind) takes a model and a bind; a subclass of "
                f"{type(self).__name__}[Model] takes only the bind"
            )
        if not isinstance(bind, self._binds):
            names = ", ".join(t.__name__ for t in self._binds)
            raise TypeError(f"{type(self).__name__} binds to {names}, got {type(bind).__name__}")
        self.model: type[M] = model
        self.bind = bind
        self._q: Statements[M] = Statements(model, caps=self._capabilities())

    def _capabilities(self) -> Capabilities:
        bind: Any = self.bind
        if isinstance(bind, Session | AsyncSession):
            return capabilities(bind.get_bind(mapper=self.model))
        database = getattr(bind, "sync", bind)  # an AsyncDatabase answers for its Database
        caps: Capabilities = database.capabilities
        return caps

    def __repr__(self) -> str:
        where = "session" if isinstance(self.bind, Session | AsyncSession) else "database"
        shown = "" if self._q.visibility == "alive" else f", {self._q.visibility}"
        return f"<{type(self).__name__}[{self.model.__name__}] on {where}{shown}>"

    def _with_visibility(self, visibility: Any) -> Self:
        clone = copy.copy(self)
        clone._q = Statements(self.model, visibility, self._q.caps)
        return clone

    def with_deleted(self) -> Self:
        """Return a view of this repository whose reads include soft-deleted rows."""
        return self._with_visibility("all")

    def only_deleted(self) -> Self:
        """Return a view of this repository whose reads see only soft-deleted rows."""
        return self._with_visibility("deleted")

    def _found_or(self, row: M | None, ident: Any, missing_ok: bool, missing: T) -> M | T:
        """``row``; when there is none, ``missing`` if ``missing_ok`` else NotFound."""
        if row is None and missing_ok:
            return missing
        return self._found(row, ident)

    def _found(
        self, row: M | None, ident: Any = None, where: Sequence[Any] = (), **lookups: Any
    ) -> M:
        if row is None:
            hidden = " or soft-deleted" if self._q.soft and self._q.visibility == "alive" else ""
            what = self._q.describe(ident, where, **lookups)
            raise NotFound(f"{what} not found (missing{hidden})")
        return row
