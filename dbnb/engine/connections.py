"""Named connections: a user file and the project's ``pyproject.toml``, passwords kept out of both.

Where dbnb looks (a project's entry wins over a user's entry of the same name):

1. ``[tool.dbnb.connections.NAME]`` in the ``pyproject.toml`` of the current directory or the
   nearest parent that has one (shared with the project: never a secret in it);
2. ``[NAME]`` in the user file: ``$DBNB_CONNECTIONS`` if set, else
   ``$XDG_CONFIG_HOME/dbnb/connections.toml`` (``~/.config/dbnb/connections.toml``).
   ``DBNB_CONNECTIONS=""`` turns both off (the tutorials and the tests do).

An entry::

    [warehouse]
    url = "postgresql://ana@wh.internal:5432/sales"   # or host, port, user, database
    password_env = "WAREHOUSE_PASSWORD"    # where the password comes from (optional), or
    # keyring = "warehouse"                # the system keyring's entry (service, URL's user)
    statement_timeout = 30000              # any dbnb.Settings option

``url_env = "NAME"`` takes the whole URL from an environment variable instead. The password
comes from, in order: ``%db connect NAME --password`` (``connect(..., ask_password=True)``,
asked with ``getpass`` and never stored), ``password_env``, ``keyring`` (the operating
system's keyring through the ``keyring`` library, ``pip install 'dbnb[keyring]'``: stored
once with ``keyring set SERVICE USER``), else the driver itself: both
psycopg (libpq) and asyncpg read ``PGPASSWORD`` and the password file (``PGPASSFILE`` or
``~/.pgpass``, mode 0600). A password written in a file (``password = ...`` or inside ``url``)
is refused, and never shown. The entry called ``default`` is what :func:`dbnb.connect` uses
when no URL is given and neither ``DBNB_URL`` nor ``DATABASE_URL`` is set.
"""

from __future__ import annotations

import difflib
import getpass
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from dbnb.display.tables import Table
from dbnb.display.values import plural
from dbnb.errors import ConfigError, MissingExtra
from dbnb.settings import Settings, conceal, parse_url, safe_url

__all__ = [
    "DEFAULT",
    "ConnectionEntry",
    "ConnectionList",
    "connections",
    "find",
    "is_name",
    "load",
    "pgpass_file",
    "resolve",
    "user_file",
    "with_asked_password",
]

#: The entry :func:`dbnb.connect` uses when nothing else names a database.
DEFAULT = "default"
_URL_KEYS = {"url", "url_env", "host", "port", "user", "database", "query"}
_PASSWORD_KEYS = {"password_env", "keyring"}
_OPTIONS = {f.name for f in fields(Settings)} - {"url"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def user_file() -> Path | None:
    """The user's connections file (``DBNB_CONNECTIONS``, else under XDG_CONFIG_HOME)."""
    given = os.environ.get("DBNB_CONNECTIONS")
    if given is not None:
        return Path(given).expanduser() if given.strip() else None
    base = os.environ.get("XDG_CONFIG_HOME", "").strip() or str(Path.home() / ".config")
    return Path(base) / "dbnb" / "connections.toml"


def _project_file() -> Path | None:
    if os.environ.get("DBNB_CONNECTIONS", None) == "":
        return None
    for folder in (Path.cwd(), *Path.cwd().parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def pgpass_file() -> Path:
    """The password file both drivers read: ``PGPASSFILE``, else ``~/.pgpass``."""
    return Path(os.environ.get("PGPASSFILE") or Path.home() / ".pgpass").expanduser()


@dataclass(frozen=True)
class ConnectionEntry:
    """One named connection as a file describes it (never with a password)."""

    name: str
    source: Path
    settings: dict[str, Any] = field(default_factory=dict)
    url: URL | None = None
    url_env: str | None = None
    password_env: str | None = None
    keyring: str | None = None  # the keyring service holding the password for the URL's user
    problem: str | None = None  # why it cannot be used (a password written in the file...)

    def check(self) -> None:
        """Raise :class:`~dbnb.ConfigError` when the entry cannot be used as it is."""
        if self.problem:
            raise ConfigError(f"connection {self.name!r} ({self.source}): {self.problem}")

    def base_url(self) -> URL:
        """The entry's URL, password not included (from ``url_env`` when it names one)."""
        self.check()
        if self.url_env is not None:
            value = os.environ.get(self.url_env, "").strip()
            if not value:
                raise ConfigError(
                    f"connection {self.name!r} takes its URL from {self.url_env}, which is not "
                    "set; set it before starting Jupyter"
                )
            return parse_url(conceal(value), source=self.url_env)
        assert self.url is not None
        return self.url

    def password_source(self) -> str:
        """Where the password will come from, for people (never the password)."""
        if self.password_env:
            state = "set" if os.environ.get(self.password_env) else "not set"
            return f"${self.password_env} ({state})"
        if self.keyring:
            return f"keyring {self.keyring!r}"
        if self.url_env:
            return f"${self.url_env}"
        if os.environ.get("PGPASSWORD"):
            return "$PGPASSWORD"
        url = self.url
        if url is not None and _pgpass_has(url):
            return f"{pgpass_file()}"
        return "none (or --password)"


def _pgpass_has(url: URL) -> bool:
    """Tell whether the password file has a line for ``url`` (libpq's matching rules)."""
    try:
        lines = pgpass_file().read_text().splitlines()
    except OSError:
        return False
    host = url.host or "localhost"
    wanted = [host, str(url.port or 5432), url.database or "", url.username or ""]
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = _pgpass_fields(line)
        if len(parts) >= 5 and all(p in ("*", w) for p, w in zip(parts[:4], wanted, strict=True)):
            return True
    return False


def _pgpass_fields(line: str) -> list[str]:
    parts, current, escaped = [], "", False
    for char in line:
        if escaped:
            current, escaped = current + char, False
        elif char == "\\":
            escaped = True
        elif char == ":":
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def _entry(name: str, raw: Any, source: Path) -> ConnectionEntry:
    where = f"[{name}] in {source}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} is not a table of settings")
    unknown = sorted(set(raw) - _URL_KEYS - _PASSWORD_KEYS - _OPTIONS - {"password"})
    if unknown:
        accepted = sorted(_URL_KEYS | _PASSWORD_KEYS | _OPTIONS)
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; accepted: "
                          f"{', '.join(accepted)}")
    problem = None
    if "password" in raw:
        problem = _WRITTEN
    url = None
    if "url" in raw:
        url = parse_url(conceal(str(raw["url"])), source=f"url of {where}")
        if url.password is not None:
            problem, url = _WRITTEN, url.set(password=None)
    elif "url_env" not in raw:
        query = raw.get("query", {})
        url = URL.create(
            "postgresql", username=raw.get("user"), host=raw.get("host"),
            port=int(raw["port"]) if "port" in raw else None, database=raw.get("database"),
            query={str(k): str(v) for k, v in query.items()},
        )
    if "password_env" in raw and "keyring" in raw:
        raise ConfigError(f"{where}: give password_env or keyring, not both")
    settings = {k: v for k, v in raw.items() if k in _OPTIONS}
    return ConnectionEntry(
        name, source, settings, url, raw.get("url_env"), raw.get("password_env"),
        raw.get("keyring"), problem,
    )


_WRITTEN = (
    "a password is written in the file, which dbnb refuses (files get shared and committed); "
    "remove it and use password_env = \"VARIABLE\", keyring = \"SERVICE\", the ~/.pgpass "
    "file, or %db connect NAME --password"
)


def _read(path: Path, *, project: bool) -> dict[str, ConnectionEntry]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix it or move it away") from exc
    if project:
        data = data.get("tool", {}).get("dbnb", {}).get("connections", {})
    return {str(name): _entry(str(name), raw, path) for name, raw in data.items()}


def load() -> dict[str, ConnectionEntry]:
    """Every named connection: the user file's, then the project's (which win)."""
    found: dict[str, ConnectionEntry] = {}
    user = user_file()
    if user is not None:
        found.update(_read(user, project=False))
    project = _project_file()
    if project is not None:
        found.update(_read(project, project=True))
    return found


def find(name: str) -> ConnectionEntry | None:
    """The entry called ``name``, or None."""
    return load().get(name)


def resolve(name: str, *, ask_password: bool = False) -> tuple[URL, dict[str, Any]]:
    """The URL (with the password, if dbnb supplies one) and the settings of entry ``name``.

    Raises:
        ConfigError: no such entry (naming the ones there are), a password written in the
            file, or a ``password_env`` / ``url_env`` variable that is not set.
    """
    entries = load()
    entry = entries.get(name)
    if entry is None:
        # The text is not echoed: a password pasted by mistake must not end up in the output.
        close = difflib.get_close_matches(name, list(entries), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        known = ", ".join(sorted(entries)) or "none yet"
        where = " or ".join(str(p) for p in (user_file(), _project_file()) if p) or "nowhere"
        raise ConfigError(
            f"no connection by that name; {hint}known: {known} (add a [NAME] table to "
            f"{where}, or give a URL)"
        )
    url = entry.base_url()
    if ask_password:
        url = with_asked_password(url, name)
    elif entry.password_env:
        password = os.environ.get(entry.password_env)
        if not password:
            raise ConfigError(
                f"connection {name!r} takes its password from {entry.password_env}, which is "
                f"not set; set it, or use %db connect {name} --password"
            )
        url = url.set(password=password)
    elif entry.keyring:
        url = url.set(password=_from_keyring(entry.keyring, url, name))
    return url, dict(entry.settings)


def _from_keyring(service: str, url: URL, name: str) -> str:
    """The password stored in the system keyring under ``service`` for the URL's user."""
    try:
        import keyring
        from keyring.errors import KeyringError
    except ImportError as exc:
        raise MissingExtra(
            f"connection {name!r} takes its password from the keyring, and the keyring "
            "library is not installed; install it with pip install 'dbnb[keyring]'"
        ) from exc
    user = url.username
    if not user:
        raise ConfigError(
            f"connection {name!r} takes its password from the keyring, which stores it by "
            "user name; give the entry a user (user = \"...\" or in its url)"
        )
    try:
        password = keyring.get_password(service, user)
    except KeyringError as exc:
        # The backend's own words say what is wrong (no keyring daemon, a locked keyring...).
        raise ConfigError(
            f"connection {name!r}: the keyring could not be read ({exc}); see "
            "https://pypi.org/project/keyring/ for configuring a backend, or use password_env"
        ) from exc
    if password is None:
        raise ConfigError(
            f"connection {name!r}: the keyring has no password for {user!r} under "
            f"{service!r}; store it once in a terminal with: keyring set {service} {user}"
        )
    return password


def with_asked_password(url: URL, label: str = "") -> URL:
    """``url`` with a password typed at a ``getpass`` prompt (kept in memory only)."""
    shown = f"{url.username or 'you'}@{url.host or 'localhost'}/{url.database or ''}"
    suffix = f" ({label})" if label else ""
    return url.set(password=getpass.getpass(f"Password for {shown}{suffix}: "))


def is_name(text: str) -> bool:
    """Tell a connection name (``warehouse``, ``dev-db``) from URL text (which has a colon)."""
    return _NAME.fullmatch(text) is not None


@dataclass(frozen=True)
class ConnectionList:
    """The named connections dbnb knows, their URLs (no password) and where each comes from."""

    entries: tuple[ConnectionEntry, ...]
    current: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """The connection names."""
        return tuple(e.name for e in self.entries)

    def _row(self, entry: ConnectionEntry) -> tuple[str, ...]:
        if entry.url_env:
            where = f"${entry.url_env}"
        else:
            assert entry.url is not None
            where = safe_url(entry.url)  # never a password: the next column says where it is
        mark = " (in use)" if entry.name == self.current else ""
        password = entry.problem and "refused: written in the file"
        return (entry.name + mark, where, password or entry.password_source(), str(entry.source))

    def _table(self) -> Table:
        rows = [self._row(e) for e in self.entries]
        file = user_file()
        return Table(
            ("name", "url", "password", "from"), rows,
            caption=plural(len(rows), "connection"),
            empty=f"no named connections (add them to {file or 'a connections file'})",
            names=True,
        )

    def __repr__(self) -> str:
        return self._table().text()

    def _repr_html_(self) -> str:
        return self._table().html()


def connections(current: str | None = None) -> ConnectionList:
    """List the named connections (``%db connections``): name, URL, password source, file."""
    return ConnectionList(tuple(load().values()), current)
