"""Which read replicas a Database has, and how far behind one may fall: resolved once.

Argument > environment > default, as for :class:`~dbnb.Settings`:

============================  ==============================================  =======
variable                      meaning                                         default
============================  ==============================================  =======
``DBNB_REPLICA_URLS``         replica URLs, separated by commas or spaces     none
``DB_MAX_REPLICA_LAG``        seconds a replica may be behind and still read  10
``DB_REPLICA_RECHECK``        seconds between looks at a replica's lag, and   5
                              before a skipped replica is tried again
============================  ==============================================  =======

A replica of a streaming-replication set has the primary's databases and roles, so its URL
only needs to say where it is: the database is always the primary's, and a user or password
it leaves out are the primary's too (the password then comes from wherever the primary's
does: the URL, ``PGPASSWORD``, ``.pgpass``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import URL

from dbnb import environ as _environ
from dbnb.dialects import capabilities
from dbnb.errors import ConfigError
from dbnb.urls import conceal, parse_url, safe_url

__all__ = ["ReplicaSettings"]

_URLS = "DBNB_REPLICA_URLS"
_MAX_LAG = "DB_MAX_REPLICA_LAG"
_RECHECK = "DB_REPLICA_RECHECK"
# Where a server is: these never come from the primary's URL.
_ADDRESS = {"host", "hostaddr", "port"}
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _seconds(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not 0 < number <= 86_400:
        raise ConfigError(
            f"{name}={value!r} is invalid; use a number of seconds > 0 and <= 86400"
        ) from None
    return number


def _split(text: str) -> list[str]:
    """Split ``DBNB_REPLICA_URLS``: commas or spaces, keeping a multi-host URL's commas."""
    pieces: list[str] = []
    for part in re.split(r"[\s,]+", text.strip()):
        if not part:
            continue
        if pieces and not _SCHEME.match(part):
            pieces[-1] += "," + part  # postgresql://a,b/db: the hosts of one URL
        else:
            pieces.append(part)
    return pieces


@dataclass(frozen=True)
class ReplicaSettings:
    """The replicas' URLs (completed from the primary's) and the routing bounds.

    ``max_lag``: seconds a replica may be behind the primary and still serve reads.
    ``recheck``: seconds between looks at a replica's lag, and before a skipped one is tried
    again.
    """

    urls: tuple[URL, ...] = ()
    max_lag: float = 10.0
    recheck: float = 5.0

    @classmethod
    def resolve(
        cls,
        replicas: Sequence[str | URL] | str | URL | None,
        primary: URL,
        *,
        max_replica_lag: float | None = None,
        replica_recheck: float | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> ReplicaSettings:
        """Resolve the replicas of ``primary``: arguments, else the environment, else none.

        ``environ`` defaults to the process environment and its ``.env`` file.

        Raises:
            UnsupportedOnDialect: replicas for a database other than PostgreSQL.
            ConfigError: a malformed replica URL (described, never echoed), one that does not
                say where the replica is, or a bound that is not a positive number of seconds.
        """
        env = _environ.read() if environ is None else environ
        given: list[Any]
        source = "replicas"
        if replicas is None:
            given, source = _split(conceal(env.get(_URLS, ""))), _URLS
        elif isinstance(replicas, str):
            given = _split(conceal(replicas))  # one URL, or several (``%db connect --replicas``)
        elif isinstance(replicas, URL):
            given = [replicas]
        else:
            given = list(replicas)
        max_lag = max_replica_lag if max_replica_lag is not None else env.get(_MAX_LAG)
        recheck = replica_recheck if replica_recheck is not None else env.get(_RECHECK)
        if given:
            capabilities(primary).require(
                "read replicas",
                f"they are PostgreSQL streaming replicas; connect without replicas= "
                f"(and with {_URLS} unset)",
            )
        urls = tuple(
            _completed(parse_url(conceal(u), source=f"{source}[{i}]"), primary, f"{source}[{i}]")
            for i, u in enumerate(given)
        )
        return cls(
            urls,
            _seconds("max_replica_lag", max_lag) if max_lag not in (None, "") else cls.max_lag,
            _seconds("replica_recheck", recheck) if recheck not in (None, "") else cls.recheck,
        )

    def key(self) -> tuple[Any, ...]:
        """What tells two configurations apart (passwords included: for the registry only)."""
        return (
            tuple(u.render_as_string(hide_password=False) for u in self.urls),
            self.max_lag,
            self.recheck,
        )

    def __repr__(self) -> str:
        shown = ", ".join(safe_url(u) for u in self.urls)
        return f"ReplicaSettings(urls=[{shown}], max_lag={self.max_lag}, recheck={self.recheck})"


def _completed(url: URL, primary: URL, source: str) -> URL:
    """The replica's URL with the primary's database, and its user and password if it has none."""
    if not (url.host or url.query.get("host")):
        raise ConfigError(
            f"{source}: a replica URL must say where the replica is (a host, or ?host=/socket/dir)"
        )
    query = {k: v for k, v in primary.query.items() if k not in _ADDRESS}
    query.update(url.query)
    return url.set(
        database=primary.database,
        username=url.username or primary.username,
        password=url.password if url.username else primary.password,
        query=query,
    )
