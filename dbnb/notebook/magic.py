"""``%db`` and ``%%db``: parse, call the public function from :mod:`dbnb.notebook.commands`, render.

``%db <command> [args]`` runs one command of the shared table (``%db help`` lists them);
``%%db`` runs the cell's SQL and returns a DataFrame, binding each ``:name`` to the notebook
variable ``name`` as a query parameter — values are never pasted into the SQL text. Neither
expands ``{x}`` or ``$x``. Expected failures become one-line ``UsageError`` s; the current
Database lives on the magics instance, not in a module global.
"""

from __future__ import annotations

import os
import shlex
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from sqlalchemy import MetaData, text
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from dbnb.engine.database import Database
from dbnb.engine.registry import connect
from dbnb.errors import DbnbError, mask_secrets, translate
from dbnb.notebook.commands import CommandUsageError, find, help_for
from dbnb.settings import conceal

if TYPE_CHECKING:
    import pandas as pd
    from IPython.core.interactiveshell import InteractiveShell

__all__ = ["DbMagics"]

_ENV_PREFIX = "env:"


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    message = mask_secrets(lines[0] if lines else "")
    if isinstance(exc, CommandUsageError):
        return message
    return f"{type(exc).__name__}: {message}"


def _cell_options(line: str) -> tuple[str | None, bool]:
    """Read ``-o NAME`` / ``--out NAME`` and ``--sandbox`` from the ``%%db`` line."""
    words = shlex.split(line)
    out, sandbox = None, False
    while words:
        word = words.pop(0)
        if word in {"-o", "--out"} and words:
            out = words.pop(0)
            if not out.isidentifier():
                raise UsageError(f"%%db -o needs a variable name, got {out!r}")
        elif word == "--sandbox":
            sandbox = True
        else:
            raise UsageError(
                f"%%db: unexpected {word!r}; usage: %%db [-o NAME] [--sandbox], SQL on the next "
                "lines"
            )
    return out, sandbox


@magics_class
class DbMagics(Magics):
    """The ``%db`` line magic and ``%%db`` cell magic (``%load_ext dbnb`` registers them)."""

    def __init__(self, shell: InteractiveShell | None = None) -> None:
        super().__init__(shell)
        self.database: Database | None = None

    @no_var_expand
    @line_cell_magic
    def db(self, line: str, cell: str | None = None) -> Any:
        """Run a dbnb command (``%db help`` lists them) or, as ``%%db``, the cell's SQL.

        ``%db connect [URL | env:NAME] [--database NAME] [--reset]``, ``%db migrate``,
        ``%db check``, ``%db describe users``... each calls one public function and returns
        its result. ``%%db [-o NAME] [--sandbox]`` runs one SQL statement from the cell and
        returns a DataFrame (or prints the affected row count); ``:name`` is bound from the
        notebook variable ``name`` as a parameter. ``--sandbox`` rolls the statement back.
        """
        try:
            if cell is None:
                return self._command(line)
            return self._query(line, cell)
        except DbnbError as exc:
            raise UsageError(_one_line(exc)) from exc

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
        if kwargs.get("models") is not None:
            kwargs["models"] = self._models(str(kwargs["models"]))
        args = [self._current()] if command.uses_db else []
        return command.function(*args, **kwargs)

    def _current(self) -> Database:
        if self.database is None or self.database.closed:
            raise UsageError(
                "not connected: run %db connect first (DBNB_URL / DATABASE_URL, else the "
                "embedded server), or %db connect env:NAME"
            )
        return self.database

    def _connect(self, url: str | None = None, **kwargs: Any) -> Database:
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
        return self.database

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

    def _namespace(self) -> dict[str, Any]:
        if self.shell is None:
            raise UsageError("%db needs an IPython shell")
        namespace: dict[str, Any] = self.shell.user_ns
        return namespace

    # -- %%db ------------------------------------------------------------------------------------

    def _query(self, line: str, cell: str) -> pd.DataFrame | None:
        out, sandbox = _cell_options(line)
        sql = cell.strip()
        if not sql:
            raise UsageError("%%db: the cell has no SQL")
        try:
            statement = text(sql)
        except ArgumentError as exc:
            raise UsageError(f"%%db: {exc}") from exc
        names = list(statement.compile().params)
        namespace = self._namespace()
        missing = [n for n in names if n not in namespace]
        if missing:
            raise UsageError(
                f"%%db: :{missing[0]} is not defined in the notebook; assign it first, e.g. "
                f"{missing[0]} = ... (each :name is bound from the variable of that name)"
            )
        params = {n: namespace[n] for n in names}
        frame = self._run(sql, params, sandbox=sandbox)
        if out is not None:
            namespace[out] = frame
        return frame

    def _run(self, sql: str, params: dict[str, Any], *, sandbox: bool) -> pd.DataFrame | None:
        import pandas as pd

        from dbnb.frames.query import is_query
        from dbnb.frames.read import read_frame

        db = self._current()
        scope = db.sandbox() if sandbox else db.session()
        try:
            with scope as session:
                if is_query(sql):
                    # The typed, COPY-based reader: the same dtypes as db.frame() and to_frame().
                    return read_frame(session, sql, params)
                result = session.execute(text(sql), params)
                if getattr(result, "returns_rows", False):  # DML ... RETURNING
                    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
                count = getattr(result, "rowcount", -1)
        except SQLAlchemyError as exc:
            raise translate(exc) from exc
        verb = "would be affected (rolled back)" if sandbox else "affected"
        print(f"{count} row{'s' if count != 1 else ''} {verb}")
        return None
