"""The one command table behind ``%db`` and the ``dbnb`` CLI: name -> public function.

Each command's argument parser is built from its function's signature (a parameter without a
default is positional, a keyword-only parameter is an ``--option``, a ``False`` default a flag)
and its help from the function's docstring (summary line and ``Args:`` section), the way
Alembic derives its CLI from ``alembic.command``. The magic and the CLI only parse, call and
render; they hold no other logic.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import html
import importlib
import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dbnb.display.tables import Table
from dbnb.engine import connections
from dbnb.engine.database import Database
from dbnb.engine.registry import connect
from dbnb.errors import DbnbError
from dbnb.notebook import catalog, persist, sandbox
from dbnb.notebook import config as magic_config
from dbnb.server import embedded

__all__ = ["COMMANDS", "Command", "CommandHelp", "CommandUsageError", "find", "help_for"]


class CommandUsageError(DbnbError, ValueError):
    """A command line that does not parse: unknown command, option or missing argument."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of printing and exiting."""

    def error(self, message: str) -> Any:  # argparse's signature is NoReturn
        usage = " ".join(self.format_usage().removeprefix("usage:").split())
        raise CommandUsageError(f"{self.prog}: {message} (usage: {usage})")


def _docstring_args(function: Callable[..., Any]) -> dict[str, str]:
    """Read ``name: text`` entries of a Google-style ``Args:`` section."""
    doc = inspect.getdoc(function) or ""
    section = re.search(r"^Args:\n((?:[ \t]+.*\n?|\n)+)", doc, re.MULTILINE)
    found: dict[str, str] = {}
    current = None
    for line in (section.group(1) if section else "").splitlines():
        entry = re.match(r"^\s{2,4}(\*{0,2}\w+)(?: \(.*?\))?:\s*(.*)$", line)
        if entry:
            current = entry.group(1).lstrip("*")
            found[current] = entry.group(2).strip()
        elif current and line.strip():
            found[current] += " " + line.strip()
    return found


@dataclass(frozen=True)
class Command:
    """One entry of the table: a public function and how its arguments are spelled.

    ``target`` is the function, or where it lives (``"module:name"``) when importing it early
    would slow every ``%load_ext dbnb`` down (the migration commands load Alembic).
    """

    name: str
    target: Callable[..., Any] | str
    uses_db: bool = True
    flags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ()
    # State that must outlive one call (a sandbox) only makes sense in a live kernel;
    # ``instead`` is what Python code does in its place (the CLI says so).
    magic_only: bool = False
    instead: str = ""
    # Parsers built so far, by prog: built once, since building one (signature, docstring,
    # argparse's translations) costs a hundred times the call of a cheap command.
    _parsers: dict[str, argparse.ArgumentParser] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @functools.cached_property
    def function(self) -> Callable[..., Any]:
        """The public function behind the command (imported on first use)."""
        if not isinstance(self.target, str):
            return self.target
        module, _, name = self.target.partition(":")
        found: Callable[..., Any] = getattr(importlib.import_module(module), name)
        return found

    @property
    def summary(self) -> str:
        """The first line of the function's docstring (without reST markup)."""
        first = (inspect.getdoc(self.function) or "").splitlines()[0].rstrip(".")
        return first.replace("``", "")

    def _parameters(self) -> list[inspect.Parameter]:
        params = list(inspect.signature(self.function).parameters.values())
        if self.uses_db:
            params = params[1:]
        skip = {inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL}
        return [p for p in params if p.kind not in skip and p.name not in self.hidden]

    def parser(self, prog: str) -> argparse.ArgumentParser:
        """The argument parser, built from the function's signature and docstring (once)."""
        built = self._parsers.get(prog)
        if built is None:
            built = self._parsers[prog] = self._build_parser(prog)
        return built

    def _build_parser(self, prog: str) -> argparse.ArgumentParser:
        parser = _Parser(
            prog=f"{prog} {self.name}", description=self.summary, add_help=False,
            allow_abbrev=False,
        )
        helps = {k: v.replace("``", "") for k, v in _docstring_args(self.function).items()}
        for p in self._parameters():
            help_text = helps.get(p.name, "")
            default = None if p.default is inspect.Parameter.empty else p.default
            if p.name in self.flags and isinstance(default, bool):
                parser.add_argument(
                    *self.flags[p.name], dest=p.name, action="store_true", help=help_text
                )
            elif p.name in self.flags:
                parser.add_argument(
                    *self.flags[p.name], dest=p.name, help=help_text, default=default,
                    required=p.default is inspect.Parameter.empty,
                )
            elif p.kind is inspect.Parameter.KEYWORD_ONLY:
                option = "--" + p.name.replace("_", "-")
                if isinstance(default, bool):
                    parser.add_argument(option, dest=p.name, action="store_true", help=help_text)
                else:
                    kind = type(default) if isinstance(default, int | float) else str
                    parser.add_argument(option, dest=p.name, type=kind, default=default,
                                        help=help_text, metavar=p.name.upper(),
                                        required=p.default is inspect.Parameter.empty)
            elif p.default is inspect.Parameter.empty:
                parser.add_argument(p.name, help=help_text)
            else:
                parser.add_argument(p.name, nargs="?", default=default, help=help_text)
        parser.add_argument("-h", "--help", action="store_true", help="show this help")
        return parser

    def usage(self, prog: str) -> str:
        """One line: the command and its arguments."""
        return " ".join(self.parser(prog).format_usage().removeprefix("usage:").split())

    def parse(self, argv: Sequence[str], prog: str = "dbnb") -> dict[str, Any] | None:
        """Parse ``argv`` into keyword arguments; ``None`` when ``--help`` was asked for."""
        if {"-h", "--help"} & set(argv):
            return None  # before parsing: a missing required argument must not hide the help
        values = vars(self.parser(prog).parse_args(list(argv)))
        values.pop("help")
        return values


@dataclass(frozen=True)
class CommandHelp:
    """Every command with its arguments and summary, or one command's full help."""

    rows: tuple[tuple[str, str, str], ...]
    detail: str = ""
    notes: tuple[str, ...] = ()

    def _table(self) -> Table:
        return Table(("command", "usage", "what it does"), self.rows, caption="dbnb commands",
                     note="\n\n".join(self.notes))

    def __repr__(self) -> str:
        return self.detail or self._table().text()

    def _repr_html_(self) -> str:
        if self.detail:
            return f"<pre style='text-align:left'>{html.escape(self.detail)}</pre>"
        return self._table().html()


#: What ``%db help`` says besides the commands: SQL, scripts, one-liners, connecting.
MAGIC_NOTES = (
    "SQL: `%db SELECT ...` runs one line; a `%%db` cell runs SQL as you write it (comments, "
    "casts, a trailing ;). Several statements run in one transaction, each one's row count "
    "reported; the last one's rows come back as a DataFrame with the database's types. "
    "`:name` binds the notebook variable `name` as a parameter (never pasted into the SQL; "
    r"`\:` writes a literal colon). `%%db -o NAME` keeps the frame, `--sandbox` rolls "
    "everything back, `%db -f FILE.sql` runs a file. `--polars` / `--arrow` return a polars "
    "DataFrame / a pyarrow Table instead (`%db config frame=polars` for every cell).",
    "Connecting: the first %db that needs a database connects to DBNB_URL, else "
    "DATABASE_URL, else the connection named `default` in the connections file "
    "(~/.config/dbnb/connections.toml or [tool.dbnb.connections] in pyproject.toml), else "
    "the embedded PostgreSQL. `%db connect NAME` (or a URL, env:VAR, a Database or Engine "
    "variable) picks another, `--password` asks for its password; `%db connections` lists "
    "them; `%%db --db NAME` runs one cell elsewhere.",
    "Migrations of your project: `%db init --models Base` (or a module such as "
    "myapp.models), `%db revision -m MESSAGE --autogenerate`, `%db migrate` (`--sql` shows "
    "the SQL instead), `%db check`, `%db merge`, `%db branches`, `%db show head`.",
)


def help_for(command: str | None = None, *, prog: str = "%db") -> CommandHelp:
    """Show every command, or one command's arguments.

    Args:
        command: the command to explain; all of them when omitted.
    """
    if command is not None:
        return CommandHelp((), find(command).parser(prog).format_help().strip())
    rows = tuple((c.name, c.usage(prog), c.summary) for c in COMMANDS.values())
    return CommandHelp(rows, notes=MAGIC_NOTES if prog == "%db" else ())


def find(name: str) -> Command:
    """Look a command up by name or alias; an unknown one raises with the closest names."""
    for command in COMMANDS.values():
        if name == command.name or name in command.aliases:
            return command
    names = [n for c in COMMANDS.values() for n in (c.name, *c.aliases)]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise CommandUsageError(f"unknown command {name!r}; {hint}(help lists every command)")


def _table(*commands: Command) -> dict[str, Command]:
    return {c.name: c for c in commands}


COMMANDS: dict[str, Command] = _table(
    Command("connect", connect, uses_db=False, flags={"ask_password": ("--password",)}),
    Command("connections", connections.connections, uses_db=False, hidden=("current",)),
    Command("info", Database.info),
    Command("health", Database.health),
    Command("pool", Database.pool_status),
    Command("sessions", Database.sessions),
    Command("tables", catalog.tables),
    Command("describe", catalog.describe),
    Command("profile", Database.profile),
    Command("migrate", "dbnb.migrations:upgrade", aliases=("upgrade",)),
    Command("downgrade", "dbnb.migrations:downgrade"),
    Command("revision", "dbnb.migrations:revision", flags={"message": ("-m", "--message")}),
    Command(
        "merge", "dbnb.migrations:merge", uses_db=False, flags={"message": ("-m", "--message")}
    ),
    Command("branches", "dbnb.migrations:branches", uses_db=False),
    Command("show", "dbnb.migrations:show", uses_db=False),
    Command("current", "dbnb.migrations:current"),
    Command("heads", "dbnb.migrations:heads"),
    Command("history", "dbnb.migrations:history"),
    Command("check", "dbnb.migrations:check"),
    Command("stamp", "dbnb.migrations:stamp"),
    Command("sandbox", sandbox.sandbox, magic_only=True, instead="with db.sandbox(): ..."),
    Command("persist", persist.persist, magic_only=True,
            instead="db.create_table_from_frame(name, df)"),
    Command("config", magic_config.config, uses_db=False, magic_only=True, hidden=("state",),
            instead="db.polars(sql) / repo.to_polars(), db.arrow(sql) / repo.to_arrow()"),
    Command("init", "dbnb.migrations.scaffold:init", uses_db=False),
    Command("stop", embedded.stop, uses_db=False),
    Command("help", help_for, uses_db=False, hidden=("prog",)),
)
