"""After DDL from anywhere, the next call succeeds on both engines.

Cached plans go stale when a column changes type or a table gains or loses columns: psycopg's
prepared statements (after 5 runs) and asyncpg's statement cache. dbnb retries a stale first
statement of a transaction once, and DDL run through dbnb refreshes both engines' caches.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

import dbnb
from dbnb.server.admin import psycopg_conninfo

ALTERS = {
    "alter type": "ALTER TABLE {t} ALTER COLUMN v TYPE bigint",
    "add column": "ALTER TABLE {t} ADD COLUMN w text DEFAULT 'w'",
    "drop column": "ALTER TABLE {t} DROP COLUMN v",
}
_names = itertools.count()


def _another_kernel(db: dbnb.Database, sql: str) -> None:
    with psycopg.connect(psycopg_conninfo(db.url), autocommit=True) as conn:
        conn.execute(sql)


async def _through_the_other_engine(db: dbnb.Database, sql: str) -> None:
    await db.asyncio.execute(sql)


def _sources(db: dbnb.Database) -> dict[str, Callable[[str], Awaitable[None] | None]]:
    return {
        "another kernel": lambda sql: _another_kernel(db, sql),
        "db.execute": lambda sql: (db.execute(sql), None)[1],
        "the async engine": lambda sql: _through_the_other_engine(db, sql),
    }


@pytest.mark.parametrize("source", ["another kernel", "db.execute", "the async engine"])
@pytest.mark.parametrize("alter", list(ALTERS))
async def test_the_next_call_after_ddl_succeeds_on_both_engines(
    db: dbnb.Database, adb: dbnb.AsyncDatabase, source: str, alter: str
) -> None:
    table = f"schema_t{next(_names)}"
    db.execute(f"CREATE TABLE {table} (id int, v int)")
    db.execute(f"INSERT INTO {table} VALUES (1, 2)")
    star = f"SELECT * FROM {table}"
    for _ in range(8):  # past psycopg's prepare threshold; asyncpg caches from the first run
        db.execute(star)
        await adb.execute(star)
    done = _sources(db)[source](ALTERS[alter].format(t=table))
    if done is not None:
        await done
    sync_rows = db.execute(star)
    async_rows = await adb.execute(star)
    expected = {"alter type": (1, 2), "add column": (1, 2, "w"), "drop column": (1,)}[alter]
    assert tuple(sync_rows[0]) == expected and tuple(async_rows[0]) == expected


def test_ddl_through_the_magic_refreshes_the_caches(db: dbnb.Database) -> None:
    from IPython import get_ipython
    from IPython.testing.globalipapp import start_ipython

    shell: Any = start_ipython() or get_ipython()
    shell.run_line_magic("load_ext", "dbnb")
    table = f"schema_t{next(_names)}"
    db.execute(f"CREATE TABLE {table} (id int, v int)")
    db.execute(f"INSERT INTO {table} VALUES (1, 2)")
    for _ in range(8):
        db.execute(f"SELECT * FROM {table}")
    before = db._engines.generation
    magics = shell.magics_manager.registry["DbMagics"]
    previous, magics.database = magics.database, db
    try:
        shell.run_cell_magic("db", "", f"ALTER TABLE {table} ALTER COLUMN v TYPE text")
    finally:
        magics.database = previous  # the shell is shared with the magic's own tests
    assert db._engines.generation > before
    assert tuple(db.execute(f"SELECT * FROM {table}")[0]) == (1, "2")


def test_a_stale_plan_that_cannot_be_retried_says_what_happened(db: dbnb.Database) -> None:
    single = dbnb.connect(db.url, pool_size=1, max_overflow=0, application_name="dbnb-stale")
    try:
        table = f"schema_t{next(_names)}"
        single.execute(f"CREATE TABLE {table} (id int, v int)")
        single.execute(f"INSERT INTO {table} VALUES (1, 2)")
        for _ in range(8):
            single.execute(f"SELECT * FROM {table}")
        _another_kernel(db, f"ALTER TABLE {table} ALTER COLUMN v TYPE bigint")
        with (
            pytest.raises(dbnb.SchemaChanged, match="run the call again") as info,
            single.session() as s,
        ):
            s.execute(text("SELECT 1"))  # the stale statement is not the first any more
            s.execute(text(f"SELECT * FROM {table}"))
        assert info.value.sqlstate == "0A000"
        assert tuple(single.execute(f"SELECT * FROM {table}")[0]) == (1, 2)  # and then it works
    finally:
        single.close()
