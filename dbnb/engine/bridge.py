"""``dbnb.run``: the single, opt-in bridge from sync code to a coroutine.

dbnb's core never starts or drives an event loop. This function does, only when called:

- outside a running loop (a script, a test), it runs the coroutine on a long-lived loop kept
  for the calling thread, so async engines created by one ``run`` call still work in the next;
- inside a running loop (a Jupyter cell that cannot ``await``), it applies ``nest-asyncio2``
  (the maintained fork ipykernel itself uses) to that loop on first need, never at import.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["close_runners", "run"]

T = TypeVar("T")
_local = threading.local()
_runners: list[asyncio.Runner] = []


def _runner() -> asyncio.Runner:
    runner: asyncio.Runner | None = getattr(_local, "runner", None)
    if runner is None:
        runner = asyncio.Runner()
        _local.runner = runner
        _runners.append(runner)
    return runner


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from sync code and return its result.

    In a notebook prefer top-level ``await``; use ``run`` where ``await`` is not possible
    (inside a sync function called from a cell).

    Example::

        rows = dbnb.run(ausers.list(age__gt=30))
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return _runner().run(coro)
    import nest_asyncio2

    nest_asyncio2.apply(loop)
    return loop.run_until_complete(coro)


def close_runners(before_close: Callable[[], Coroutine[Any, Any, None]] | None = None) -> None:
    """Close the loops kept by :func:`run`.

    Args:
        before_close: a coroutine function run on each loop before it closes: the registry
            passes one that closes the asyncpg connections made on that loop gracefully.
    """
    while _runners:
        runner = _runners.pop()
        if before_close is not None:
            runner.run(before_close())
        runner.close()
    _local.__dict__.clear()
