"""Shared fixtures: one real PostgreSQL for the whole run, a fresh database per test module.

The server is the embedded one, started in a temporary ``DBNB_HOME``, unless ``DBNB_TEST_URL``
points at another server (then no embedded server starts). Both drivers are exercised.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
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
):
    os.environ.pop(_name, None)


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
