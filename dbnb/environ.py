"""The environment dbnb reads its settings from: variables, their aliases, and a ``.env`` file.

- **Aliases.** Apps built on SQLAlchemy spell pool settings ``DATABASE_POOL_SIZE`` and so on;
  each of those is accepted for dbnb's own name (table below). Both set to different values is
  a :class:`~dbnb.ConfigError`: dbnb will not guess which one you meant.
- **.env.** A ``.env`` file in the working directory, else in the project root (the first
  directory upwards holding ``pyproject.toml`` or ``.git``; never above it), is read with
  python-dotenv. Real environment variables win over it. ``DBNB_DOTENV=0`` (a real variable)
  or ``dbnb.connect(..., dotenv=False)`` turns it off.
- **Typos.** A ``DB_*`` or ``DATABASE_*`` variable dbnb does not know gives a
  :class:`~dbnb.ConfigWarning` naming the closest one it does (once per name and process).

=============================  ==========================
alias                          dbnb's name
=============================  ==========================
``DATABASE_POOL_SIZE``         ``DB_POOL_SIZE``
``DATABASE_MAX_OVERFLOW``      ``DB_MAX_OVERFLOW``
``DATABASE_POOL_TIMEOUT``      ``DB_POOL_TIMEOUT``
``DATABASE_POOL_RECYCLE``      ``DB_POOL_RECYCLE``
``DATABASE_POOL_PRE_PING``     ``DB_POOL_PRE_PING``
``DATABASE_ECHO``              ``DB_ECHO``
``DATABASE_ECHO_POOL``         ``DB_ECHO_POOL``
=============================  ==========================
"""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

from dbnb.errors import ConfigError, ConfigWarning

__all__ = ["ALIASES", "KNOWN", "Environment", "dotenv_path", "read", "setting"]

#: dbnb's own variables (besides the URL ones) and what they set.
KNOWN = (
    "DB_POOL_SIZE", "DB_MAX_OVERFLOW", "DB_POOL_TIMEOUT", "DB_POOL_RECYCLE", "DB_POOL_PRE_PING",
    "DB_ECHO", "DB_ECHO_POOL", "DB_STATEMENT_TIMEOUT", "DB_POOLER", "DB_CONNECT_TIMEOUT",
    "DB_PING_TIMEOUT", "DB_COMMAND_TIMEOUT", "DB_IDLE_IN_TRANSACTION_TIMEOUT",
    "DB_MIGRATION_LOCK_TIMEOUT", "DB_REDACT_VALUES", "DB_SLOW_QUERY_MS", "DB_MAX_REPLICA_LAG",
    "DB_REPLICA_RECHECK",
)  # fmt: skip
#: The names apps use -> dbnb's.
ALIASES = {
    "DATABASE_POOL_SIZE": "DB_POOL_SIZE",
    "DATABASE_MAX_OVERFLOW": "DB_MAX_OVERFLOW",
    "DATABASE_POOL_TIMEOUT": "DB_POOL_TIMEOUT",
    "DATABASE_POOL_RECYCLE": "DB_POOL_RECYCLE",
    "DATABASE_POOL_PRE_PING": "DB_POOL_PRE_PING",
    "DATABASE_ECHO": "DB_ECHO",
    "DATABASE_ECHO_POOL": "DB_ECHO_POOL",
}
_URLS = ("DATABASE_URL",)
_PREFIXES = ("DB_", "DATABASE_")
_PROJECT_MARKERS = ("pyproject.toml", ".git")
_warned: set[str] = set()


class Environment(Mapping[str, str]):
    """A read-only view of the environment (and ``.env``) whose repr lists nothing.

    IPython's ``%xmode Verbose`` prints every frame's variables: the environment may hold
    secrets, so its repr names no variable.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def __getitem__(self, key: str) -> str:
        return self._environ[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._environ)

    def __len__(self) -> int:
        return len(self._environ)

    def __repr__(self) -> str:
        return "<environment>"


def dotenv_path(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The ``.env`` dbnb reads: in ``start`` (the working directory), else the project root.

    The search never goes above the project root (the first directory upwards holding
    ``pyproject.toml`` or ``.git``), nor anywhere when ``start`` is inside no project.
    """
    here = Path(start if start is not None else Path.cwd()).resolve()
    if (here / ".env").is_file():
        return here / ".env"
    for directory in here.parents:
        if any((directory / marker).exists() for marker in _PROJECT_MARKERS):
            found = directory / ".env"
            return found if found.is_file() else None
    return None


def _off(value: str | None) -> bool:
    return value is not None and value.strip().lower() in {"0", "false", "no", "off"}


def read(
    environ: Mapping[str, str] | None = None,
    *,
    dotenv: bool | str | os.PathLike[str] | None = None,
) -> Environment:
    """The variables dbnb reads: ``environ`` (default ``os.environ``) over the ``.env`` file.

    Args:
        environ: the environment; when given, no ``.env`` is read unless ``dotenv`` names it.
        dotenv: ``False`` reads no ``.env``; a directory to look for one from; ``None``
            (default) reads the working directory's or project root's ``.env`` when
            ``environ`` is the process environment and ``DBNB_DOTENV`` does not say 0.
    """
    real = os.environ if environ is None else environ
    path: Path | None = None
    if dotenv is not False and not _off(real.get("DBNB_DOTENV")):
        if dotenv is None or dotenv is True:
            path = dotenv_path() if environ is None or dotenv is True else None
        else:
            path = dotenv_path(dotenv)
    merged: dict[str, str] = {}
    if path is not None:
        from dotenv import dotenv_values

        merged.update({k: v for k, v in dotenv_values(path).items() if v is not None})
    merged.update(real)
    _warn_unknown(merged)
    return Environment(merged)


def _warn_unknown(env: Mapping[str, str]) -> None:
    known = {*KNOWN, *ALIASES, *_URLS}
    for name in env:
        if not name.startswith(_PREFIXES) or name in known or name in _warned:
            continue
        _warned.add(name)
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else f"; dbnb reads {', '.join(KNOWN)}"
        warnings.warn(f"dbnb does not know the variable {name}{hint}", ConfigWarning,
                      stacklevel=4)


def setting(env: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """The value of dbnb's variable ``name`` or of its alias, and which name gave it.

    Raises:
        ConfigError: both names are set, to different values.
    """
    aliases = [a for a, target in ALIASES.items() if target == name]
    given = [(n, env[n]) for n in (name, *aliases) if env.get(n, "").strip() != ""]
    if not given:
        return None
    values = {value.strip().lower() for _, value in given}
    if len(values) > 1:
        shown = " and ".join(f"{n}={v!r}" for n, v in given)
        raise ConfigError(
            f"{shown} disagree; they set the same thing: keep one of them"
        )
    return given[0][1], given[0][0]
