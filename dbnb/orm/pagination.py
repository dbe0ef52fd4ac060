"""Pages of rows: :class:`Page` (offset pagination) and :class:`KeysetPage` (cursor pagination).

Also the plans :class:`~dbnb.orm.statements.Statements` hands the repositories: the statements to
run and how to assemble their results. No I/O here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import Select

from dbnb.display.values import plural
from dbnb.errors import PaginationError
from dbnb.orm.models import ModelList

__all__ = ["DEFAULT_MAX_PAGE_SIZE", "KeysetPage", "KeysetPlan", "Page", "PagePlan", "check_size"]

M = TypeVar("M")
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
    """One window of a keyset (cursor) pagination; pass ``after=page.last`` for the next one."""

    items: ModelList[M]
    size: int
    has_more: bool
    keys: tuple[str, ...] = field(default=())

    @property
    def last(self) -> M | None:
        """The last row of this window: the ``after`` cursor of the next call."""
        return self.items[-1] if self.items else None

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
    """The two statements of :meth:`Statements.paginate` and how to assemble their results."""

    count: Select[Any]
    rows: Select[Any]
    page: int
    size: int

    def result(self, items: Iterable[M], total: int) -> Page[M]:
        """Assemble the :class:`Page` from the fetched rows and total."""
        pages = max(1, math.ceil(total / self.size))
        return Page(ModelList(items), total, self.page, self.size, pages)


@dataclass(frozen=True)
class KeysetPlan(Generic[M]):
    """The statement of :meth:`Statements.keyset` (it fetches one extra row to see ahead)."""

    rows: Select[Any]
    size: int
    keys: tuple[str, ...]

    def result(self, items: Sequence[M]) -> KeysetPage[M]:
        """Assemble the :class:`KeysetPage`, dropping the look-ahead row."""
        more = len(items) > self.size
        return KeysetPage(ModelList(items[: self.size]), self.size, more, self.keys)


def check_size(size: Any, max_size: int) -> None:
    """Raise :class:`~dbnb.PaginationError` unless ``1 <= size <= max_size``."""
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= max_size:
        raise PaginationError(f"size must be an integer from 1 to {max_size}, got {size!r}")
