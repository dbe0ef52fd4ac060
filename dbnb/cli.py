"""The ``dbnb`` console script: the commands of :mod:`dbnb.notebook.commands`, plus ``demo``.

``dbnb [--url URL|env:NAME] [--database NAME] <command> [args]``. The database comes from
``--url``, else ``DBNB_URL`` / ``DATABASE_URL``, else the embedded server. Results print as a
text table or a one-line status on stdout (the reports' own text rendering, never a Python
repr); errors print one line on stderr. Bare ``dbnb`` prints the help, ``dbnb --version`` the
installed version. Exit codes: 0 success, 1 failure (a ``DbnbError``, an unhealthy ``health``
or a ``check`` that found drift), 2 bad usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from dbnb.engine.database import Database
from dbnb.engine.registry import connect
from dbnb.errors import DbnbError
from dbnb.notebook.commands import COMMANDS, CommandUsageError, find, help_for
from dbnb.phrasing import speaking
from dbnb.redaction import mask_secrets
from dbnb.settings import Concealed, safe_url

__all__ = ["main"]

_PROG = "dbnb"


def _top_parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {c.name:<10} {c.summary}" for c in COMMANDS.values())
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="dbnb command line (`dbnb help <command>` explains one command)",
        epilog=f"commands:\n{listing}\n  {'demo':<10} a short end-to-end tour on the embedded "
        f"PostgreSQL\n  {'tutorials':<10} execute the tutorial notebooks into HTML docs "
        "(make demo)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--url", help="database URL or env:NAME (default: DBNB_URL, "
                        "DATABASE_URL, else the embedded server)")
    parser.add_argument("--database", help="use this database on the same server")
    parser.add_argument("command", nargs="?", help="the command to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the command's arguments")
    return parser


def _version() -> str:
    """The installed distribution's version: pyproject.toml is the one place it is written."""
    try:
        return version("dbnb")
    except PackageNotFoundError:
        return "unknown (not installed)"


def render(result: Any) -> str:
    """The text a terminal shows for a command's result: its text table or one-line status."""
    if isinstance(result, str):
        return result
    if isinstance(result, Database):
        where = result.embedded.describe() if result.embedded else safe_url(result.url)
        return f"connected: database {result.database!r} on {where}"
    return str(result)


def _url(value: str | None) -> str | None:
    if value is None or not value.startswith("env:"):
        return value
    name = value.removeprefix("env:")
    resolved = os.environ.get(name, "").strip()
    if not resolved:
        raise CommandUsageError(f"environment variable {name} is not set (or empty)")
    return Concealed(resolved)  # never shown, even by a traceback of the frames holding it


def _failed(result: Any) -> bool:
    return getattr(result, "ok", True) is False


def _run(top: argparse.Namespace) -> int:
    if top.command == "demo":
        from dbnb.examples.demo import tour

        return tour(print)
    if top.command == "tutorials":
        from dbnb.notebook import tutorials

        return tutorials.main(top.args, print)
    command = find(top.command)
    if command.magic_only:
        raise CommandUsageError(
            f"{command.name} lasts across notebook cells; use %db {command.name} in a notebook "
            f"(in Python: {command.instead})"
        )
    kwargs = command.parse(top.args, prog=_PROG)
    if kwargs is None:
        print(help_for(command.name, prog=_PROG))
        return 0
    if command.name == "help":
        result: Any = help_for(prog=_PROG, **kwargs)
    elif command.uses_db:
        # No close() here: connect() may hand back a Database the caller's process shares;
        # the process exit closes the pools.
        db = connect(_url(top.url), database=top.database)
        result = command.function(db, **kwargs)
    else:
        if command.name == "connect":
            kwargs["url"] = _url(kwargs["url"] or top.url)
            kwargs["database"] = kwargs["database"] or top.database
        result = command.function(**kwargs)
    print(render(result))
    return 1 if _failed(result) else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run one command; return the process exit code."""
    parser = _top_parser()
    top = parser.parse_args(argv)
    if top.command is None:
        parser.print_help()
        return 0
    try:
        with speaking("cli"):
            return _run(top)
    except CommandUsageError as exc:
        print(f"{_PROG}: {exc}", file=sys.stderr)
        return 2
    except DbnbError as exc:
        message = (str(exc).strip().splitlines() or [""])[0]
        print(f"{_PROG}: {type(exc).__name__}: {mask_secrets(message)}", file=sys.stderr)
        # Bad input (a URL, a filter, a value: the ValueError branch of the tree) is bad usage,
        # like an unknown option; anything else is a failure of the operation itself.
        return 2 if isinstance(exc, ValueError) else 1
