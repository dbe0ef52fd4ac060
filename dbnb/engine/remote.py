"""Connections made elsewhere: where a worker process connects, with everything but a password.

A task that reads or writes a partition on a Dask worker carries a :class:`WorkerConnection`:
the server's address, database and user, and the settings that shape a session (timeouts, the
pooler profile). Never the password: tasks are pickled, shipped, logged and kept by the
scheduler, so the worker finds credentials where libpq looks on that machine —
``PGPASSWORD``, a password file (``PGPASSFILE`` or ``~/.pgpass``), a libpq service file, or
trust / peer / certificate authentication. On the worker each connection is a
:class:`~dbnb.Database` from :func:`dbnb.connect` (one per process and connection: the
registry hands the same one to every task there), so dbnb's session settings apply too.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from dbnb.driver_errors import translate
from dbnb.errors import ConnectionFailed
from dbnb.urls import safe_url

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from dbnb.engine.database import Database
    from dbnb.settings import Settings

__all__ = ["WorkerConnection"]

# The settings a worker's sessions keep from the client's Database (none of them a secret);
# pools stay small: a worker runs one task per thread.
_CARRIED = ("statement_timeout", "connect_timeout", "pooler", "command_timeout",
            "idle_in_transaction_timeout")
_NO_PASSWORD = ("no password supplied", "password authentication failed", "password is required",
                "passfile")


@dataclass(frozen=True)
class WorkerConnection:
    """The server, database and user a worker connects to, and the session settings; no password.

    Picklable (it travels in task graphs); its repr shows the URL as :func:`~dbnb.urls.safe_url`
    does. Build it with :meth:`of`.
    """

    url: URL
    options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, url: URL, settings: Settings | None = None) -> WorkerConnection:
        """The worker's view of ``url`` (its password dropped) with the settings to carry."""
        options = () if settings is None else tuple(
            (name, getattr(settings, name)) for name in _CARRIED
        )
        # URL.set(password=None) would keep it (None means "unchanged" there): built anew.
        plain = URL.create(
            "postgresql", username=url.username, host=url.host, port=url.port,
            database=url.database,
            query={k: v for k, v in url.query.items() if k.lower() != "password"},
        )
        return cls(plain, options)

    def __repr__(self) -> str:
        return f"WorkerConnection({safe_url(self.url)})"

    def database(self) -> Database:
        """This process's Database for the connection (made on first use, then shared)."""
        from dbnb.engine.registry import connect

        return connect(self.url, pool_size=1, max_overflow=4, **dict(self.options))

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction on this process's Database: committed at the end.

        Raises:
            ConnectionFailed: the worker has no credentials for the server (the message says
                what to set on the worker), or cannot reach it.
        """
        with self.checked(), self.database().transaction() as session:
            yield session

    @contextmanager
    def raw(self) -> Iterator[Any]:
        """A checked-out psycopg connection with no transaction open (returned at the end).

        Raises:
            ConnectionFailed: as :meth:`session`.
        """
        with self.checked():
            conn = self.database().engine.connect()
        try:
            yield conn.connection.driver_connection
        finally:
            conn.close()

    @contextmanager
    def checked(self) -> Iterator[None]:
        """Turn a refused login inside the block into an error that says what to set here."""
        try:
            yield
        except (ConnectionFailed, SQLAlchemyError) as exc:
            error = exc if isinstance(exc, ConnectionFailed) else translate(exc)
            if any(sign in str(error).lower() for sign in _NO_PASSWORD):
                raise ConnectionFailed(self.no_credentials()) from exc
            if error is exc:
                raise
            raise error  # noqa: B904 (translate() chains it)

    def no_credentials(self) -> str:
        """What a worker without credentials is told (naming this machine and the server)."""
        where = f"{socket.gethostname()} (pid {os.getpid()})"
        return (
            f"the worker on {where} has no password for {safe_url(self.url)}: dbnb never puts "
            "a password in a task, so give each worker its own: PGPASSWORD in the worker's "
            "environment, or a password file (PGPASSFILE, or ~/.pgpass of the user the worker "
            "runs as, mode 0600) with a line host:port:database:user:password"
        )
