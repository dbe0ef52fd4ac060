"""Database URLs: parse the spellings people use, render them for humans, never echo a secret.

Any of ``postgresql://``, ``postgres://``, ``+psycopg`` or ``+asyncpg``; ``sqlite://``
(``sqlite:///file.db``, ``sqlite:///:memory:``, ``+pysqlite``, ``+aiosqlite``); ``mysql://`` or
``mariadb://`` (``+pymysql``, ``+aiomysql``) comes in; a driver-neutral SQLAlchemy ``URL``
(``postgresql://``, ``sqlite://``, ``mysql://``, ``mariadb://``) comes out (its repr hides the
password).
Malformed text is described by its shape, never repeated, and URL text travels as
:class:`Concealed` so that tracebacks printed with their variables (``%xmode Verbose``) do not
show it either.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from dbnb.dialects import BACKENDS, backend_of, capabilities
from dbnb.errors import ConfigError
from dbnb.redaction import mask_secrets

__all__ = ["Concealed", "conceal", "parse_url", "safe_url"]

_SCHEMES = {
    "postgresql",
    "postgres",
    "postgresql+psycopg",
    "postgresql+psycopg2",
    "postgresql+asyncpg",
    "sqlite",
    "sqlite+pysqlite",
    "sqlite+aiosqlite",
    "mysql",
    "mysql+pymysql",
    "mysql+aiomysql",
    "mariadb",
    "mariadb+pymysql",
    "mariadb+aiomysql",
}
_ACCEPTED = (
    "postgresql://, postgres://, postgresql+psycopg://, postgresql+asyncpg://, sqlite:///FILE, "
    "sqlite:///:memory:, mysql:// or mariadb://"
)
_SCHEME_SHAPE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(/*)")


class Concealed(str):
    """A string that may hold a password: its repr never shows it.

    IPython's ``%xmode Verbose`` prints the variables of every frame of a traceback; URL text
    travels through dbnb as ``Concealed`` so those frames show ``<URL text hidden>`` instead.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "<URL text hidden>"


def conceal(value: Any) -> Any:
    """Wrap a ``str`` in :class:`Concealed` (other values are returned as they are)."""
    if isinstance(value, str) and not isinstance(value, Concealed):
        return Concealed(value)
    return value


def _shape(text: str) -> str:
    """Describe malformed URL text without echoing it: its scheme and slashes at most."""
    match = _SCHEME_SHAPE.match(text)
    if match is None:
        return "it does not start with a scheme such as postgresql://"
    scheme, slashes = match.group(1), match.group(2)
    if len(slashes) == 2:
        return f"it starts with {scheme}:// but the rest does not parse"
    count = {0: "no slash", 1: "one slash"}.get(len(slashes), f"{len(slashes)} slashes")
    if scheme.lower() in {s.split("+")[0] for s in _SCHEMES} or "+" in scheme:
        return f"it starts with {scheme}: followed by {count} instead of two"
    return "it does not start with a scheme such as postgresql:// (user:password@host needs one)"


def parse_url(value: str | URL, *, source: str = "url") -> URL:
    """Parse a database URL into a driver-neutral SQLAlchemy URL.

    Args:
        value: any of ``postgresql://``, ``postgres://``, ``+psycopg`` or ``+asyncpg`` URLs
            (unix sockets as ``?host=/run/postgresql``), ``sqlite:///shop.db`` or
            ``sqlite:///:memory:``, ``mysql://`` or ``mariadb://`` URLs.
        source: what to name in the error message (an argument or an environment variable).

    Raises:
        ConfigError: the scheme is none dbnb speaks, or the URL is malformed.
    """
    if isinstance(value, URL):
        url = value
    elif not isinstance(value, str):
        raise ConfigError(f"{source} must be a URL string or a sqlalchemy URL, not "
                          f"{type(value).__name__}")
    else:
        # The rejected text is never echoed (it may hold a password): its shape is named.
        text = Concealed(value.strip())
        problem = _shape(text) if not _SCHEME_SHAPE.match(text) or "://" not in text else ""
        if problem:
            message = (
                f"{source} is not a URL: {problem}; expected {_ACCEPTED}, for example "
                "postgresql://user@localhost:5432/dbname"
            )
            raise ConfigError(message)
        try:
            url = make_url(text)
        except (ArgumentError, ValueError):
            message = f"{source} is malformed ({_shape(text)}); expected {_ACCEPTED}"
            raise ConfigError(message) from None
    if url.drivername not in _SCHEMES:
        raise ConfigError(
            f"{source} uses the scheme {url.drivername!r}; dbnb speaks PostgreSQL, SQLite and "
            f"MySQL/MariaDB: use {_ACCEPTED}"
        )
    backend = backend_of(url.drivername)
    if BACKENDS[backend].in_process:
        return url.set(drivername=backend)
    try:
        port = url.port
    except ValueError:  # make_url defers port parsing in some versions
        raise ConfigError(f"{source} has a port that is not a number") from None
    if backend != "postgresql" and not url.database:
        raise ConfigError(
            f"{source} names no database; write {backend}://user@host:3306/dbname"
        )
    if url.database and "@" in url.database:
        # postgresql:///user:pw@host/db parses with everything as the database name.
        raise ConfigError(
            f"{source} has '@' in its database name, so its credentials are misplaced; write "
            "postgresql://user:password@host:5432/dbname"
        )
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"{source} has port {port}; use a port between 1 and 65535")
    if "password" in url.query:
        # Keep the password where URL's repr hides it, not in the query string where it shows.
        password = url.query["password"]
        url = url.difference_update_query(["password"]).set(
            password=password if isinstance(password, str) else password[0]
        )
    assert backend in BACKENDS
    return url.set(drivername=backend)


def safe_url(url: URL) -> str:
    """Render a URL for humans: password hidden, socket directories and options kept."""
    if capabilities(url).in_process:
        memory = not url.database or url.query.get("mode") == "memory"
        return f"{backend_of(url.drivername)}:///{':memory:' if memory else url.database}"
    query = {k: ("***" if k.lower() == "password" else v) for k, v in url.query.items()}
    return mask_secrets(url.set(query=query).render_as_string(hide_password=True))
