"""Shared fixtures: one real PostgreSQL for the whole run, a fresh database per test module.

The server is the embedded one, started in a temporary ``DBNB_HOME``, unless ``DBNB_TEST_URL``
points at another server (then no embedded server starts). Both drivers are exercised.

A test module that sets ``BACKENDS = ("postgresql", "sqlite", "mariadb")`` runs every test on
each backend's own ``db`` (a SQLite file in a temporary directory; a database on a throwaway
MariaDB server started from Debian's ``mariadb-server``); a test marked ``pg_only`` (a
PostgreSQL feature, whose refusal elsewhere is tested on its own) runs on PostgreSQL only;
one marked ``other_backends`` (what PostgreSQL-only features say elsewhere) on the others.
"""

from __future__ import annotations

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

# The suite sets what it tests: nothing from the machine's environment (or a .env) leaks in.
for _name in [n for n in os.environ if n.startswith(("DB_", "DATABASE_")) or n == "DBNB_URL"]:
    os.environ.pop(_name, None)
os.environ["DBNB_DOTENV"] = "0"
# The user's connections file (and its `default` entry) stays out of the tests; the tests of
# named connections write their own in a temporary HOME.
os.environ["DBNB_CONNECTIONS"] = ""

ALL_BACKENDS = ("postgresql", "sqlite", "mariadb")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    backends = getattr(metafunc.module, "BACKENDS", None)
    if backends and "db_backend" in metafunc.fixturenames:
        metafunc.parametrize("db_backend", backends, indirect=True, scope="module")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        other = params.get("db_backend", "postgresql") != "postgresql"
        pg_only = other and item.get_closest_marker("pg_only")
        elsewhere = not other and item.get_closest_marker("other_backends")
        (dropped if pg_only or elsewhere else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def require_component(program: str, package: str, *, where: tuple[str, ...] = ()) -> str:
    """Find a real component's program, or skip naming its Debian package.

    When ``CI`` is set a missing component fails the test instead: ``.ci/run`` installs it, so
    its absence there is a broken build, not a reason to test less.
    """
    found = shutil.which(program) or next(
        (str(Path(d) / program) for d in where if (Path(d) / program).exists()), None
    )
    if found is None:
        message = f"{program} is not installed: apt-get install {package}"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI must have it; .ci/run installs it)")
        pytest.skip(message)
    return found


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
            pytest.fail(f"the process exited early: {log.read_text() if log.exists() else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"nothing listened on port {port} within 15 s")


#: The password of :func:`password_server`'s user ``ana``.
PASSWORD_SERVER_SECRET = "s3cret-Pa55"


def _pg_as_owner(program: str, *args: str, check: bool = True) -> None:
    argv = [program, *args]
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    subprocess.run(argv, check=check, capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def password_server() -> Iterator[tuple[str, int]]:
    """A PostgreSQL 15 cluster (Debian's) on 127.0.0.1 that asks user `ana` for a password.

    scram-sha-256 over TCP, the password being :data:`PASSWORD_SERVER_SECRET`; yields
    (host, port). Stopped at the end of the session.
    """
    from dbnb.engine.registry import open_databases

    initdb = require_component("initdb", "postgresql-15", where=("/usr/lib/postgresql/15/bin",))
    pg_ctl = str(Path(initdb).with_name("pg_ctl"))
    home = Path(tempfile.mkdtemp(prefix="dbnb-pwd-"))
    pwfile = home / "pw"
    pwfile.write_text(PASSWORD_SERVER_SECRET + "\n")
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
        shutil.chown(pwfile, "postgres")
    data, port = str(home / "data"), free_port()
    _pg_as_owner(initdb, "-D", data, "-U", "ana", "-A", "scram-sha-256", f"--pwfile={pwfile}")
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1"
    _pg_as_owner(pg_ctl, "-D", data, "-o", options, "-l", str(home / "log"), "-w", "start")
    try:
        yield "127.0.0.1", port
    finally:
        for db in open_databases():
            if db.url.port == port:
                db.close()
        _pg_as_owner(pg_ctl, "-D", data, "-m", "fast", "-w", "stop", check=False)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def pgbouncer(server_url: URL) -> Iterator[URL]:
    """PgBouncer (Debian's package) in pool_mode=transaction in front of the test server.

    Yields the URL of the ``postgres`` database through it; any database name works (``*``).
    Stopped by pid at the end of the session.
    """
    program = require_component("pgbouncer", "pgbouncer", where=("/usr/sbin",))
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
        owner = pwd.getpwuid(os.stat(socket_dir).st_uid).pw_name if socket_dir else "postgres"
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


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[URL]:
    """A throwaway MariaDB server (Debian's mariadb-server) on a loopback port; its root URL.

    ``mariadb-install-db`` writes a fresh data directory into a temporary one; ``mariadbd``
    serves it on 127.0.0.1 without grant tables (nothing but this test run can reach it) and is
    stopped by pid at the end of the session.
    """
    program = require_component("mariadbd", "mariadb-server", where=("/usr/sbin",))
    installer = require_component("mariadb-install-db", "mariadb-server")
    home = Path(tempfile.mkdtemp(prefix="dbnb-mariadb-"))
    # As root (CI), mariadbd must be told to stay root; as anyone else it runs as them.
    user = ["--user=root"] if os.geteuid() == 0 else []
    subprocess.run(
        [installer, "--no-defaults", f"--datadir={home / 'data'}", *user,
         "--auth-root-authentication-method=normal", "--skip-test-db"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    port = free_port()
    process = subprocess.Popen(
        [program, "--no-defaults", f"--datadir={home / 'data'}", f"--socket={home / 'sock'}",
         f"--port={port}", "--bind-address=127.0.0.1", *user, "--skip-grant-tables",
         f"--pid-file={home / 'pid'}", f"--log-error={home / 'error.log'}",
         "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process, home / "error.log")
        yield URL.create("mariadb", username="root", host="127.0.0.1", port=port,
                         database="mysql")
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def sqlite_dir() -> Iterator[Path]:
    """A temporary directory for the SQLite database files of the run."""
    home = Path(tempfile.mkdtemp(prefix="dbnb-sqlite-"))
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def db_backend(request: pytest.FixtureRequest) -> str:
    """The backend of the module's ``db``: PostgreSQL unless the module sets ``BACKENDS``."""
    return str(getattr(request, "param", "postgresql"))


def backend_url(request: pytest.FixtureRequest, backend: str) -> URL:
    """The URL of a fresh database of the module on ``backend`` (one call per module)."""
    name = module_database_name(request)
    if backend == "sqlite":
        return URL.create("sqlite", database=str(request.getfixturevalue("sqlite_dir") /
                                                 f"{name}.db"))
    if backend == "mariadb":
        url: URL = request.getfixturevalue("mariadb_url")
        return url.set(database=name)
    server: URL = request.getfixturevalue("server_url")
    return server.set(database=name)


@pytest.fixture(scope="module")
def db(db_backend: str, request: pytest.FixtureRequest) -> Iterator[dbnb.Database]:
    """A Database on a fresh database of its own for this test module (on its backend)."""
    url = backend_url(request, db_backend)
    database = dbnb.connect(url, database=url.database, reset=True)
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
def need_program() -> Any:
    """:func:`require_component` for fixtures in sub-folders (``need_program("chromium", ...)``)."""
    return require_component


@pytest.fixture(scope="session")
def ipython() -> Any:
    """IPython's test shell (one per process) with ``%load_ext dbnb`` done."""
    from IPython.testing import globalipapp

    shell = globalipapp.start_ipython() or globalipapp.get_ipython()
    assert shell is not None
    shell.run_line_magic("load_ext", "dbnb")
    return shell


@pytest.fixture(scope="session")
def replicated_server(embedded: dbnb.EmbeddedServer | None) -> Iterator[dbnb.EmbeddedServer]:
    """The server the replica tests make streaming replicas of (the wheel's PostgreSQL 18).

    The embedded test server; with ``DBNB_TEST_URL`` (whose server cannot be copied from
    here) a private embedded one in a temporary home. Replicas are made by the tests' own
    fixtures (``start_replica``) and stopped by pid.
    """
    if embedded is not None:
        yield embedded
        return
    home = Path(tempfile.mkdtemp(prefix="dbnb-test-primary-"))
    server = dbnb.embedded_server(home, announce=False)
    yield server
    server.stop(force=True)
    shutil.rmtree(home, ignore_errors=True)
