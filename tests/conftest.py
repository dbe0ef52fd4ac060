"""Shared fixtures: one real PostgreSQL for the whole run, a fresh database per test module.

The server is the embedded one, started in a temporary ``DBNB_HOME``, unless ``DBNB_TEST_URL``
points at another server (then no embedded server starts). Both drivers are exercised.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL

import dbnb
from dbnb.settings import parse_url

for _name in (
    "DBNB_URL",
    "DATABASE_URL",
    "DB_POOL_SIZE",
    "DB_MAX_OVERFLOW",
    "DB_POOL_TIMEOUT",
    "DB_POOL_RECYCLE",
    "DB_ECHO",
    "DB_STATEMENT_TIMEOUT",
    "DB_POOLER",
    "DB_CONNECT_TIMEOUT",
    "DB_PING_TIMEOUT",
    "DB_COMMAND_TIMEOUT",
    "DB_IDLE_IN_TRANSACTION_TIMEOUT",
    "DB_MIGRATION_LOCK_TIMEOUT",
    "DB_REDACT_VALUES",
):
    os.environ.pop(_name, None)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until ``process`` listens on 127.0.0.1:``port`` (fail with its log if it dies)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited early: {log.read_text() if log.exists() else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listened on port {port} within 15 s")


@contextlib.contextmanager
def running_pgbouncer(program: str, server_url: URL) -> Iterator[URL]:
    """Run PgBouncer (pool_mode=transaction) in front of ``server_url``; yield its URL.

    Any database name works through it (``*``); it listens on a free port of 127.0.0.1 and
    is stopped by pid when the block ends.
    """
    home = Path(tempfile.mkdtemp(prefix="dbnb-pgbouncer-"))
    socket_dir = server_url.query.get("host")
    upstream = (
        f"host={socket_dir} port={server_url.query.get('port', 5432)}"
        if socket_dir
        else f"host={server_url.host} port={server_url.port or 5432}"
    )
    user = server_url.username or "postgres"
    port = free_port()
    (home / "users.txt").write_text(f'"{user}" ""\n')
    ini = home / "pgbouncer.ini"
    ini.write_text(
        f"[databases]\n* = {upstream} user={user}\n\n[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir = {home}\n"
        f"auth_type = trust\nauth_file = {home / 'users.txt'}\npool_mode = transaction\n"
        "max_client_conn = 400\ndefault_pool_size = 8\nserver_reset_query =\n"
        f"logfile = {home / 'pgbouncer.log'}\npidfile = {home / 'pgbouncer.pid'}\n"
    )
    argv = [program, str(ini)]
    if os.geteuid() == 0:
        # PgBouncer refuses to run as root; run it as the owner of the server's socket
        # directory, who can reach the socket.
        owner = pwd.getpwuid(os.stat(str(socket_dir)).st_uid).pw_name if socket_dir else "postgres"
        shutil.chown(home, owner)
        for child in home.iterdir():
            shutil.chown(child, owner)
        argv = [program, "-u", owner, str(ini)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process, home / "pgbouncer.log")
        yield URL.create("postgresql", username=user, host="127.0.0.1", port=port,
                         database="postgres")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def pgbouncer(server_url: URL) -> Iterator[URL]:
    """PgBouncer (Debian's package) in pool_mode=transaction in front of the test server."""
    program = system_program("pgbouncer", "pgbouncer")
    with running_pgbouncer(program, server_url) as url:
        yield url


@pytest.fixture(scope="session")
def embedded() -> Iterator[dbnb.EmbeddedServer | None]:
    """The embedded server in a temporary DBNB_HOME, or None when DBNB_TEST_URL is set."""
    if os.environ.get("DBNB_TEST_URL"):
        yield None
        return
    # Not under pytest's basetemp: pytest prunes old basetemps, and a concurrent run on the same
    # machine could delete the data directory of a server that is still running.
    home = Path(tempfile.mkdtemp(prefix="dbnb-test-home-"))
    os.environ["DBNB_HOME"] = str(home)
    server = dbnb.embedded_server(home, announce=False)
    yield server
    dbnb.close_all()
    server.stop()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def server_url(embedded: dbnb.EmbeddedServer | None) -> URL:
    """The URL of the test server's maintenance database."""
    if embedded is None:
        return parse_url(os.environ["DBNB_TEST_URL"], source="DBNB_TEST_URL")
    return embedded.url("postgres")


def module_database_name(request: pytest.FixtureRequest) -> str:
    name = re.sub(r"[^a-z0-9_]", "_", request.module.__name__.rsplit(".", 1)[-1].lower())
    return f"t_{name}"[:63]


@pytest.fixture(scope="module")
def db(server_url: URL, request: pytest.FixtureRequest) -> Iterator[dbnb.Database]:
    """A Database on a fresh database of its own for this test module."""
    database = dbnb.connect(server_url, database=module_database_name(request), reset=True)
    yield database
    database.close()


@pytest.fixture(scope="module")
async def adb(db: dbnb.Database) -> AsyncIterator[dbnb.AsyncDatabase]:
    """The async face of the module's Database; its asyncpg pool is closed on the test loop."""
    yield db.asyncio
    await db.asyncio.refresh_pools()


@pytest.fixture(scope="module")
def seeded(db: dbnb.Database) -> dbnb.Database:
    """The module's Database with the shop example's tables and fixed seed rows."""
    from dbnb.examples import shop

    shop.seed(db)
    return db


@pytest.fixture(params=["sync", "async"])
def shell(request: pytest.FixtureRequest, seeded: dbnb.Database, adb: dbnb.AsyncDatabase) -> Any:
    """Each test runs twice: with Repository (psycopg) and with AsyncRepository (asyncpg)."""
    return dbnb.Repository if request.param == "sync" else dbnb.AsyncRepository


@pytest.fixture(scope="session")
def ipython() -> Any:
    """IPython's test shell (one per process) with ``%load_ext dbnb`` done."""
    from IPython.testing import globalipapp

    shell = globalipapp.start_ipython() or globalipapp.get_ipython()
    assert shell is not None
    shell.run_line_magic("load_ext", "dbnb")
    return shell


def system_program(program: str, package: str) -> str:
    """Find a program a real-component test needs (e.g. ``chromium``), else skip or fail.

    The skip names the Debian package to install; when ``CI`` is set a missing program is a
    failure (``.ci/run`` installs the package), so CI never passes by skipping. Daemons such
    as ``pgbouncer`` live in /usr/sbin, often off a non-root PATH: it is searched too.
    """
    found = shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin")
    if found:
        return found
    message = f"{program} is not installed: apt-get install {package}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set, and .ci/run installs it when missing)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def need_program() -> Any:
    """:func:`system_program` for fixtures in sub-folders (``need_program("chromium", ...)``)."""
    return system_program
