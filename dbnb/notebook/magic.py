"""``%db`` and ``%%db``: parse, call the public function from :mod:`dbnb.notebook.commands`, render.

``%db <command> [args]`` runs one command of the shared table (``%db help`` lists them);
``%db SELECT ...`` (a line that starts with SQL rather than a command name) and ``%%db`` run
SQL as people write it: one statement or a script, in one transaction, the last statement's
rows coming back as a typed DataFrame, each ``:name`` bound to the notebook variable ``name``
as a query parameter — values are never pasted into the SQL text. Neither expands ``{x}`` or
``$x``. The first use connects (``DBNB_URL`` / ``DATABASE_URL``, else the embedded server).
Expected failures become ``UsageError`` s (one line, plus PostgreSQL's diagnostics for a
rejected statement); the current Database lives on the magics instance, not in a module global.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from sqlalchemy import MetaData

from dbnb.engine import connections
from dbnb.engine.async_database import AsyncDatabase
from dbnb.engine.database import Database
from dbnb.engine.registry import connect
from dbnb.engine.replicas import USES, check_use
from dbnb.errors import DbnbError, QueryError
from dbnb.frames.columns import Backend, options_of
from dbnb.notebook.commands import COMMANDS, CommandUsageError, find, help_for
from dbnb.notebook.config import MagicSettings
from dbnb.phrasing import speaking
from dbnb.redaction import mask_secrets
from dbnb.settings import conceal, safe_url
from dbnb.sqltext import split

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__all__ = ["DbMagics"]

_ENV_PREFIX = "env:"
_URL_VARIABLES = ("DBNB_URL", "DATABASE_URL")


def _message(exc: BaseException) -> str:
    """The UsageError text: the first line; for a rejected statement, psql's diagnostics too."""
    text = str(exc).strip()
    lines = text.splitlines() if isinstance(exc, QueryError) else text.splitlines()[:1]
    message = mask_secrets("\n".join(lines))
    if isinstance(exc, CommandUsageError):
        return message
    return f"{type(exc).__name__}: {message}"


@dataclass(frozen=True)
class _CellOptions:
    out: str | None = None
    sandbox: bool = False
    path: str | None = None
    db: str | None = None
    use: str | None = None
    frame: Backend | None = None


_FRAME_FLAGS: dict[str, Backend] = {"--pandas": "pandas", "--polars": "polars", "--arrow": "arrow"}


def _cell_options(line: str) -> _CellOptions:
    """Read the ``%%db`` line's options: -o, --sandbox, -f, --db, --use and --polars/--arrow."""
    words = shlex.split(line)
    found: dict[str, Any] = {}
    while words:
        word = words.pop(0)
        if word in _FRAME_FLAGS:
            if found.get("frame", _FRAME_FLAGS[word]) != _FRAME_FLAGS[word]:
                raise UsageError("%%db: choose one of --pandas, --polars and --arrow")
            found["frame"] = _FRAME_FLAGS[word]
        elif word in {"-o", "--out"} and words:
            found["out"] = out = words.pop(0)
            if not out.isidentifier():
                raise UsageError(f"%%db -o needs a variable name, got {out!r}")
        elif word == "--sandbox":
            found["sandbox"] = True
        elif word in {"-f", "--file"} and words:
            found["path"] = words.pop(0)
        elif word == "--db" and words:
            found["db"] = words.pop(0)
        elif word == "--use" and words and words[0] in USES:
            found["use"] = words.pop(0)
        else:
            raise UsageError(
                f"%%db: unexpected {word!r}; usage: %%db [-o NAME] [--sandbox] [-f FILE.sql] "
                "[--db CONNECTION] [--use primary|replica] [--polars | --arrow | --pandas], "
                "SQL on the next lines"
            )
    return _CellOptions(**found)


def _is_sql(line: str) -> bool:
    """A ``%db`` line that starts with SQL (``SELECT ...``) rather than a command name."""
    first = line.split(None, 1)[0] if line.strip() else ""
    if first in COMMANDS or any(first in c.aliases for c in COMMANDS.values()):
        return False
    try:
        statements = split(line)
    except QueryError:
        return False
    return bool(statements and statements[0].keyword)


@magics_class
class DbMagics(Magics):
    """The ``%db`` line magic and ``%%db`` cell magic (``%load_ext dbnb`` registers them)."""

    def __init__(self, shell: InteractiveShell | None = None) -> None:
        super().__init__(shell)
        self.database: Database | None = None
        # Which named connection self.database is, and every Database connected by name here
        # (one connected with a typed password is found again by name, never asked twice).
        self.connection_name: str | None = None
        self.named: dict[str, Database] = {}
        self.settings = MagicSettings()  # %db config
        self._connect_default()

    def _connect_default(self) -> None:
        """On ``%load_ext dbnb``: connect the ``default`` entry (unless a URL is in the env)."""
        if any(os.environ.get(n, "").strip() for n in _URL_VARIABLES):
            return
        try:
            if connections.find(connections.DEFAULT) is not None:
                self._current()
        except DbnbError as exc:
            print(f"dbnb: the default connection is not usable: {_message(exc)}", file=sys.stderr)

    @no_var_expand
    @line_cell_magic
    def db(self, line: str, cell: str | None = None) -> Any:
        """Run a dbnb command (``%db help`` lists them) or, as ``%%db``, the cell's SQL.

        ``%db connect [URL | env:NAME] [--database NAME] [--reset]``, ``%db migrate``,
        ``%db check``, ``%db describe users``... each calls one public function and returns
        its result. ``%db SELECT ...`` runs one line of SQL. ``%%db [-o NAME] [--sandbox]
        [-f FILE]`` runs the cell's SQL (``%db -f FILE`` a file's): several statements run in one
        transaction, each reported; the last one's rows come back as a DataFrame; ``:name``
        is bound from the notebook variable ``name`` as a parameter (``\\:`` for a literal
        colon). ``--sandbox`` rolls it all back. ``--polars`` / ``--arrow`` return a polars
        DataFrame / a ``pyarrow.Table`` (``%db config frame=polars``: every cell). With read
        replicas, a cell that only reads runs on one; ``--use primary`` keeps it on the primary.
        """
        try:
            with speaking("magic"):
                if cell is None:
                    if line.lstrip().startswith(("-f ", "--file ")):
                        return self._query(line, "")  # %db -f FILE [-o NAME] [--sandbox]
                    if _is_sql(line):
                        return self._sql(line, out=None, sandbox=False)
                    return self._command(line)
                return self._query(line, cell)
        except DbnbError as exc:
            raise UsageError(_message(exc)) from exc

    # -- %db <command> ---------------------------------------------------------------------------

    def _command(self, line: str) -> Any:
        try:
            argv = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"%db: cannot read the arguments ({exc})") from exc
        if not argv:
            return help_for()
        command = find(argv[0])
        kwargs = command.parse(argv[1:], prog="%db")
        if kwargs is None:
            return help_for(command.name)
        if command.name == "connect":
            return self._connect(**kwargs)
        if command.name == "connections":
            return command.function(current=self.connection_name)
        if command.name == "config":
            return command.function(state=self.settings, **kwargs)
        if command.name == "stop":
            return self._stop(**kwargs)
        if command.name == "persist":
            kwargs["frame"] = self._frame(str(kwargs["frame"]))
        if kwargs.get("models") is not None:
            from dbnb.migrations.config import NOTEBOOK

            found = self._models(str(kwargs["models"]))
            # init records where the models are: the notebook's own variable, by name.
            named = command.name == "init" and not isinstance(found, str)
            kwargs["models"] = f"{NOTEBOOK}:{kwargs['models']}" if named else found
        args = [self._current()] if command.uses_db else []
        return command.function(*args, **kwargs)

    def _stop(self, **kwargs: Any) -> Any:
        """Stop the embedded server; the current Database on it is closed (its pools are dead)."""
        from dbnb.server.embedded import home_dir, stop

        result = stop(**kwargs)
        current = self.database
        if current is not None and current.embedded is not None and (
            current.embedded.home == home_dir()
        ):
            current.close()
            self.database = None
        return result

    def _current(self) -> Database:
        """The Database in use; on first use, the configured one (or the embedded server)."""
        if self.database is None or self.database.closed:
            source = next((n for n in _URL_VARIABLES if os.environ.get(n, "").strip()), None)
            entry = None if source else connections.find(connections.DEFAULT)
            self.database = connect()
            self.connection_name = entry.name if entry is not None else None
            if entry is not None:
                source = f"connection {entry.name!r} in {entry.source}"
            if source is not None:  # the embedded server says where it is by itself
                print(f"dbnb: connected to {safe_url(self.database.url)} ({source})",
                      file=sys.stderr)
        return self.database

    def _object(self, name: str | None) -> Database | None:
        """A Database (or an Engine, made one) held by the notebook variable ``name``."""
        from sqlalchemy.engine import Engine
        from sqlalchemy.ext.asyncio import AsyncEngine

        if name is None or not name.isidentifier() or self.shell is None:
            return None
        found = self.shell.user_ns.get(name)
        if isinstance(found, Database | AsyncDatabase):
            db = found if isinstance(found, Database) else found.sync
            return db if isinstance(db, Database) else None
        if isinstance(found, Engine | AsyncEngine):
            return connect(found.url)  # the same server, through dbnb's two engines
        return None

    def _connect(self, url: str | None = None, **kwargs: Any) -> Database:
        given = self._object(url)
        if given is not None:
            if kwargs.get("database") or kwargs.get("ask_password"):
                given = connect(given.url, **kwargs)
            self.database, self.connection_name = given, None
            return given
        if url is not None and url.startswith(_ENV_PREFIX):
            name = url.removeprefix(_ENV_PREFIX)
            value = os.environ.get(name, "").strip()
            if not value:
                raise UsageError(f"environment variable {name} is not set (or empty); set it "
                                 "before starting Jupyter, or in a .env file your launcher loads")
            url = conceal(value)  # its repr stays hidden in %xmode Verbose tracebacks
        elif url is not None and mask_secrets(url) != url:
            raise UsageError(
                "%db connect: this URL contains a password, which would be saved with the "
                "notebook; put the URL in an environment variable and use "
                "%db connect env:NAME (for example env:DATABASE_URL)"
            )
        self.database = connect(url, **kwargs)
        named = url is not None and connections.is_name(url)
        self.connection_name = url if named else None
        if named and url is not None:
            self.named[url] = self.database
        return self.database

    def _database_named(self, name: str) -> Database:
        """The Database of ``%%db --db NAME``: connected before, a variable, or a connection."""
        known = self.named.get(name)
        if known is not None and not known.closed:
            return known
        found = self._object(name)
        if found is not None:
            return found
        if not connections.is_name(name):
            raise UsageError(f"%%db --db takes a connection name or a variable, got {name!r}")
        self.named[name] = connect(name)
        return self.named[name]

    def _models(self, name: str) -> MetaData | str:
        """Resolve ``--models`` against the notebook first (``Base``, ``my_metadata``)."""
        head, *rest = name.split(".")
        namespace = self._namespace()
        if head not in namespace:
            return name  # a module path such as myapp.models
        obj = namespace[head]
        for attribute in rest:
            obj = getattr(obj, attribute, None)
        found = obj if isinstance(obj, MetaData) else getattr(obj, "metadata", None)
        if not isinstance(found, MetaData):
            raise UsageError(f"--models {name}: neither a MetaData nor a declarative Base")
        return found

    def _frame(self, name: str) -> Any:
        """The notebook's DataFrame called ``name`` (``%db persist df ...``)."""
        frame = self._namespace().get(name)
        if frame is None or not hasattr(frame, "columns"):
            what = "is not defined" if frame is None else f"is a {type(frame).__name__}"
            raise UsageError(f"%db persist: {name} {what}; give the name of a DataFrame variable")
        return frame

    def _namespace(self) -> dict[str, Any]:
        if self.shell is None:
            raise UsageError("%db needs an IPython shell")
        namespace: dict[str, Any] = self.shell.user_ns
        return namespace

    # -- %%db ------------------------------------------------------------------------------------

    def _query(self, line: str, cell: str) -> Any:
        options = _cell_options(line)
        out, sandbox, path = options.out, options.sandbox, options.path
        sql = cell
        if path is not None:
            if split(cell):
                raise UsageError("%%db -f FILE runs the file: leave SQL out of the cell")
            try:
                sql = Path(path).expanduser().read_text(encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"%%db -f: cannot read {path} ({exc.strerror})") from exc
        if not sql.strip():
            raise UsageError("%%db: the cell has no SQL")
        db = self._database_named(options.db) if options.db else None
        return self._sql(
            sql, out=out, sandbox=sandbox, db=db, use=options.use, frame=options.frame
        )

    def _sql(
        self,
        sql: str,
        *,
        out: str | None,
        sandbox: bool,
        db: Database | None = None,
        use: str | None = None,
        frame: Backend | None = None,
    ) -> Any:
        from dbnb.engine.routing import run_routed
        from dbnb.engine.scripts import run_script, targets_of

        statements = split(sql)
        if not statements:
            raise UsageError("%%db: the cell has only comments, no SQL")
        namespace = self._namespace()
        names = dict.fromkeys(n for s in statements for n in s.names)
        missing = [n for n in names if n not in namespace]
        if missing:
            raise UsageError(
                f":{missing[0]} is not defined in the notebook; assign it first, e.g. "
                f"{missing[0]} = ... (each :name is bound from the variable of that name; "
                "write \\: for a literal colon)"
            )
        targets = targets_of(sql, {n: namespace[n] for n in names}, what="%%db")
        backend = options_of(backend=frame or self.settings.frame)["backend"]
        db = db or self._current()
        if sandbox:
            with db.sandbox() as session:
                result, _ = run_script(session, targets, last="run", backend=backend)
        else:  # a cell that only reads goes to a replica when the Database has one
            result, _ = run_routed(
                db.session, targets, use=check_use(use), last="run", backend=backend
            )
        if len(result.steps) > 1:
            print(result.report() + ("\n(rolled back: --sandbox)" if sandbox else ""))
        elif result.frame is None:
            count = result.steps[0].rows
            verb = "would be affected (rolled back)" if sandbox else "affected"
            print(f"{count} row{'s' if count != 1 else ''} {verb}")
        if out is not None and result.frame is not None:
            namespace[out] = result.frame
        return result.frame
