"""Pages of rows: :class:`Page` (offset pagination) and :class:`KeysetPage` (cursor pagination).

Also the plans :class:`~dbnb.orm.statements.Statements` hands the repositories: the statements to
run and how to assemble their results. No I/O here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import Select

from dbnb.display.values import plural
from dbnb.errors import PaginationError
from dbnb.orm import cursors
from dbnb.orm.models import ModelList
from dbnb.orm.schemas import Mode, dump, to_schema

__all__ = ["DEFAULT_MAX_PAGE_SIZE", "KeysetPage", "KeysetPlan", "Page", "PagePlan", "check_size"]

M = TypeVar("M")
S = TypeVar("S")
DEFAULT_MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class Page(Generic[M]):
    """One page of an offset pagination: the rows and where they sit in the whole result."""

    items: ModelList[M]
    total: int
    page: int
    size: int
    pages: int

    @property
    def has_next(self) -> bool:
        """True when a later page exists."""
        return self.page < self.pages

    @property
    def has_previous(self) -> bool:
        """True when an earlier page exists."""
        return self.page > 1

    def to_dict(self, *, mode: Mode = "python") -> dict[str, Any]:
        """The page as a dict: ``items`` (each row's columns), ``total``, ``page``, ``size``,
        ``pages``, ``has_next``, ``has_previous``; ``mode="json"`` makes every value JSON-ready.

        Example::

            return users.paginate(page=2).to_dict(mode="json")    # a web handler's answer
        """
        return {
            "items": [dump(item, mode) for item in self.items],
            "total": self.total, "page": self.page, "size": self.size, "pages": self.pages,
            "has_next": self.has_next, "has_previous": self.has_previous,
        }

    def to_schema(self, schema: type[S]) -> Page[S]:
        """The same page with each row validated into ``schema`` (pydantic or msgspec)."""
        items = ModelList(to_schema(item, schema) for item in self.items)
        return Page(items, self.total, self.page, self.size, self.pages)

    def __repr__(self) -> str:
        return (
            f"Page(page={self.page}, size={self.size}, total={self.total}, "
            f"pages={self.pages}, items=<{len(self.items)} rows>)"
        )

    def _repr_html_(self) -> str:
        caption = f"page {self.page} of {self.pages} ({plural(self.total, 'row')} in all)"
        return self.items.table(caption).html()


@dataclass(frozen=True)
class KeysetPage(Generic[M]):
    """One window of a keyset pagination; ``after=page.cursor`` (or ``page.last``) gets the next.

    ``cursor`` is an opaque, signed string (see :mod:`dbnb.orm.cursors`), None on the last
    window: what an API hands its clients.
    """

    items: ModelList[M]
    size: int
    has_more: bool
    keys: tuple[str, ...] = field(default=())
    cursor: str | None = None

    @property
    def last(self) -> M | None:
        """The last row of this window: the ``after`` of the next call."""
        return self.items[-1] if self.items else None

    def to_dict(self, *, mode: Mode = "python") -> dict[str, Any]:
        """The window as a dict: ``items``, ``size``, ``has_more``, ``cursor`` (the next one)."""
        return {
            "items": [dump(item, mode) for item in self.items], "size": self.size,
            "has_more": self.has_more, "cursor": self.cursor,
        }

    def to_schema(self, schema: type[S]) -> KeysetPage[S]:
        """The same window with each row validated into ``schema`` (pydantic or msgspec)."""
        items = ModelList(to_schema(item, schema) for item in self.items)
        return KeysetPage(items, self.size, self.has_more, self.keys, self.cursor)

    def __repr__(self) -> str:
        return (
            f"KeysetPage(size={self.size}, has_more={self.has_more}, "
            f"keys={self.keys}, items=<{len(self.items)} rows>)"
        )

    def _repr_html_(self) -> str:
        more = "more after this" if self.has_more else "last window"
        caption = f"{plural(len(self.items), 'row')} by {', '.join(self.keys)} ({more})"
        return self.items.table(caption).html()


@dataclass(frozen=True)
class PagePlan(Generic[M]):
    """The statements of :meth:`Statements.paginate` and how to assemble their results.

    ``rows`` fetches the page and, in each row, the total (``count(*) OVER ()``): one query.
    A page past the end has no row to carry the total; only then does ``count`` run.
    """

    count: Select[Any]
    rows: Select[Any]
    page: int
    size: int

    def needs_count(self, rows: Sequence[Any]) -> bool:
        """True when the page came back empty past page 1, so the total is still unknown."""
        return not rows and self.page > 1

    def result(self, rows: Sequence[Any], total: int | None = None) -> Page[M]:
        """Assemble the :class:`Page` from ``(row, total)`` pairs (and the count, if it ran)."""
        items = [row[0] for row in rows]
        if total is None:
            total = int(rows[0][1]) if rows else 0
        pages = max(1, math.ceil(total / self.size))
        return Page(ModelList(items), total, self.page, self.size, pages)


@dataclass(frozen=True)
class KeysetPlan(Generic[M]):
    """The statement of :meth:`Statements.keyset` (it fetches one extra row to see ahead)."""

    rows: Select[Any]
    size: int
    shown: tuple[str, ...]  # the ordering, as order_by spells it (primary key included)
    keys: tuple[str, ...] = ()  # the attribute of each key
    scope: str = ""  # what a cursor is bound to: the model and the ordering
    key: bytes | str | None = None  # the HMAC key of cursors (None: this process' own)

    def result(self, items: Sequence[M]) -> KeysetPage[M]:
        """Assemble the :class:`KeysetPage`, dropping the look-ahead row, and its cursor."""
        more = len(items) > self.size
        window = items[: self.size]
        cursor = None
        if more and window:
            values = [getattr(window[-1], k) for k in self.keys]
            cursor = cursors.encode(values, self.scope, self.key)
        return KeysetPage(ModelList(window), self.size, more, self.shown, cursor)


def check_size(size: Any, max_size: int) -> None:
    """Raise :class:`~dbnb.PaginationError` unless ``1 <= size <= max_size``."""
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= max_size:
        raise PaginationError(f"size must be an integer from 1 to {max_size}, got {size!r}")
