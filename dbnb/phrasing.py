"""Spell a suggested command or option the way the caller types it: Python, ``%db`` or ``dbnb``.

A message that says what to run next names a dbnb command or an option. The ``%db`` magic and
the ``dbnb`` CLI mark each call with :func:`speaking`; a message built meanwhile spells its
suggestion in that caller's syntax, and Python callers (the default) read functions and keyword
arguments:

=======  =====================================  ==========================
caller   ``command("stamp <revision>", ...)``   ``option("config", "x")``
=======  =====================================  ==========================
python   ``dbnb.migrations.stamp(db, ...)``     ``config='x'``
magic    ``%db stamp <revision>``               ``--config x``
cli      ``dbnb stamp <revision>``              ``--config x``
=======  =====================================  ==========================

The bottom of the package: it imports nothing of dbnb.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Literal

__all__ = ["Caller", "caller", "command", "option", "speaking"]

Caller = Literal["python", "magic", "cli"]

_CALLER: contextvars.ContextVar[Caller] = contextvars.ContextVar("dbnb_caller", default="python")


@contextlib.contextmanager
def speaking(who: Caller) -> Iterator[None]:
    """Spell suggestions for ``who`` while the block runs (the magic and the CLI use it)."""
    token = _CALLER.set(who)
    try:
        yield
    finally:
        _CALLER.reset(token)


def caller() -> Caller:
    """Who is calling: ``"python"`` unless the magic or the CLI said otherwise."""
    return _CALLER.get()


def command(line: str, python: str) -> str:
    """A command to run next: ``line`` for ``%db`` / ``dbnb``, ``python`` for Python callers.

    Example::

        command("stamp <revision>", "dbnb.migrations.stamp(db, '<revision>')")
    """
    who = _CALLER.get()
    if who == "magic":
        return f"`%db {line}`"
    if who == "cli":
        return f"`dbnb {line}`"
    return f"`{python}`"


def option(name: str, value: str | None = None) -> str:
    """An option: ``--name value`` (or the flag ``--name``) for commands, ``name=...`` in Python."""
    if _CALLER.get() == "python":
        return f"{name}={value!r}" if value is not None else f"{name}=True"
    flag = "--" + name.replace("_", "-")
    return f"{flag} {value}" if value is not None else flag
