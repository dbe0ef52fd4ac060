"""Failed repository calls, logged with their context on the ``dbnb.orm`` logger.

Every public method of a repository class (both shells, and subclasses such as
``class UserRepo(Repository[User])``) is wrapped once, when the class is made: a dbnb error
leaving it is recorded at ERROR with the operation, the model, and, for database errors, the
SQLSTATE, constraint and table. The message is the error's own, which never holds a password
and holds quoted values only as ``redact_values`` (``DB_REDACT_VALUES``) allows; statements'
parameters are never logged. Expected outcomes are not errors: ``NotFound`` is logged at DEBUG.
Nothing is printed unless the application configures logging (dbnb's logger has a
``NullHandler``).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from dbnb.errors import DbnbError, NotFound, QueryError

__all__ = ["LOG", "observed"]

LOG = logging.getLogger("dbnb.orm")
_WRAPPED = "__dbnb_observed__"


def _record(self: Any, operation: str, exc: DbnbError) -> None:
    if getattr(exc, _WRAPPED, False):
        return  # already recorded by the method that called this one
    setattr(exc, _WRAPPED, True)
    model = getattr(getattr(self, "model", None), "__name__", "?")
    context: dict[str, Any] = {"operation": operation, "model": model,
                               "error": type(exc).__name__}
    if isinstance(exc, QueryError):
        context.update(sqlstate=exc.sqlstate, constraint=exc.constraint, table=exc.table)
    named = ", ".join(f"{k}={v}" for k, v in context.items() if v is not None)
    first = (str(exc).splitlines() or [""])[0]
    level = logging.DEBUG if isinstance(exc, NotFound) else logging.ERROR
    LOG.log(level, "%s.%s failed (%s): %s", model, operation, named, first, extra=context)


def _wrap(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def agen(self: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            try:
                async for item in method(self, *args, **kwargs):
                    yield item
            except DbnbError as exc:
                _record(self, name, exc)
                raise

        wrapped: Callable[..., Any] = agen
    elif inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def coro(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return await method(self, *args, **kwargs)
            except DbnbError as exc:
                _record(self, name, exc)
                raise

        wrapped = coro
    elif inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def gen(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from method(self, *args, **kwargs)
            except DbnbError as exc:
                _record(self, name, exc)
                raise

        wrapped = gen
    else:

        @functools.wraps(method)
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except DbnbError as exc:
                _record(self, name, exc)
                raise

        wrapped = call
    setattr(wrapped, _WRAPPED, True)
    return wrapped


def observed(cls: type) -> None:
    """Wrap the public methods of ``cls``, its mixins' included (each function once)."""
    for name in dir(cls):
        member = inspect.getattr_static(cls, name)
        if name.startswith("_") or not inspect.isfunction(member):
            continue
        if getattr(member, _WRAPPED, False):
            continue
        setattr(cls, name, _wrap(name, member))
