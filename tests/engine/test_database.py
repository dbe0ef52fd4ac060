"""Database: URLs, engines, session scopes, idempotent connect, lifecycle."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

import dbnb
from dbnb.engine.engines import async_url as _async_url
from dbnb.settings import safe_url


def test_every_accepted_scheme_reaches_the_same_database(
    server_url: URL, db: dbnb.Database
) -> None:
    for scheme in ("postgresql", "postgres", "postgresql+psycopg", "postgresql+asyncpg"):
        url = server_url.set(drivername=scheme, database=db.database)
        other = dbnb.connect(url.render_as_string(hide_password=False), pool_size=1)
        try:
            assert other.execute("SELECT current_database() AS d")[0].d == db.database
        finally:
            other.close()


def test_session_commits_on_success_and_rolls_back_on_error(db: dbnb.Database) -> None:
    db.execute("CREATE TABLE scope_t (x int PRIMARY KEY)")
    with db.session() as s:
        s.execute(text("INSERT INTO scope_t VALUES (1)"))
    with pytest.raises(ZeroDivisionError), db.session() as s:
        s.execute(text("INSERT INTO scope_t VALUES (2)"))
        1 / 0  # noqa: B018
    assert [r.x for r in db.execute("SELECT x FROM scope_t ORDER BY x")] == [1]


def test_session_translates_driver_errors(db: dbnb.Database) -> None:
    db.execute("CREATE TABLE uniq_t (x int CONSTRAINT uq_uniq_t_x UNIQUE)")
    db.execute("INSERT INTO uniq_t VALUES (1)")
    with pytest.raises(dbnb.UniqueViolation) as info, db.session() as s:
        s.execute(text("INSERT INTO uniq_t VALUES (1)"))
    assert info.value.constraint == "uq_uniq_t_x" and info.value.sqlstate == "23505"
    assert "uq_uniq_t_x" in str(info.value)
    assert isinstance(info.value.__cause__, Exception)  # chained, never swallowed


async def test_async_session_same_errors_same_classes(
    db: dbnb.Database, adb: dbnb.AsyncDatabase
) -> None:
    db.execute("CREATE TABLE uniq_a (x int CONSTRAINT uq_uniq_a_x UNIQUE)")
    await adb.execute("INSERT INTO uniq_a VALUES (1)")
    with pytest.raises(dbnb.UniqueViolation) as info:
        async with db.async_session() as s:
            await s.execute(text("INSERT INTO uniq_a VALUES (1)"))
    assert info.value.constraint == "uq_uniq_a_x"
    await adb.execute("CREATE TABLE fk_parent (id int PRIMARY KEY)")
    await adb.execute("CREATE TABLE fk_child (p int REFERENCES fk_parent)")
    with pytest.raises(dbnb.ForeignKeyViolation):
        await adb.execute("INSERT INTO fk_child VALUES (42)")
    await adb.execute("CREATE TABLE ck_t (n int CHECK (n >= 0))")
    with pytest.raises(dbnb.CheckViolation):
        await adb.execute("INSERT INTO ck_t VALUES (-1)")


def test_transaction_commits_and_nested_is_a_savepoint(db: dbnb.Database) -> None:
    db.execute("CREATE TABLE tx_t (x int)")
    with db.transaction() as s:
        s.execute(text("INSERT INTO tx_t VALUES (1)"))
        with pytest.raises(RuntimeError), db.transaction(s) as inner:
            inner.execute(text("INSERT INTO tx_t VALUES (2)"))
            raise RuntimeError("inner fails")
        s.execute(text("INSERT INTO tx_t VALUES (3)"))
    assert [r.x for r in db.execute("SELECT x FROM tx_t ORDER BY x")] == [1, 3]
    with pytest.raises(KeyError), db.transaction() as s:
        s.execute(text("INSERT INTO tx_t VALUES (4)"))
        raise KeyError("outer fails")
    assert [r.x for r in db.execute("SELECT x FROM tx_t ORDER BY x")] == [1, 3]


async def test_async_transaction_and_savepoint(db: dbnb.Database, adb: dbnb.AsyncDatabase) -> None:
    await adb.execute("CREATE TABLE atx_t (x int)")
    async with db.transaction() as s:
        await s.execute(text("INSERT INTO atx_t VALUES (1)"))
        with pytest.raises(RuntimeError):
            async with db.transaction(s) as inner:
                await inner.execute(text("INSERT INTO atx_t VALUES (2)"))
                raise RuntimeError("inner fails")
    rows = await adb.execute("SELECT x FROM atx_t ORDER BY x")
    assert [r.x for r in rows] == [1]


def test_sandbox_rolls_back_everything_even_committed_sessions(db: dbnb.Database) -> None:
    db.execute("CREATE TABLE sand_t (x int)")
    with db.sandbox() as s:
        s.execute(text("INSERT INTO sand_t VALUES (1)"))
        db.execute("INSERT INTO sand_t VALUES (2)")  # commits... into the sandbox
        with db.session() as inner:
            inner.execute(text("INSERT INTO sand_t VALUES (3)"))
        assert len(db.execute("SELECT x FROM sand_t")) == 3
    assert db.execute("SELECT count(*) AS n FROM sand_t")[0].n == 0


async def test_async_sandbox(db: dbnb.Database, adb: dbnb.AsyncDatabase) -> None:
    await adb.execute("CREATE TABLE asand_t (x int)")
    async with adb.sandbox() as s:
        await s.execute(text("INSERT INTO asand_t VALUES (1)"))
        await adb.execute("INSERT INTO asand_t VALUES (2)")
        assert len(await adb.execute("SELECT x FROM asand_t")) == 2
    assert (await adb.execute("SELECT count(*) AS n FROM asand_t"))[0].n == 0


def test_connect_is_idempotent_and_reset_gives_a_fresh_database(server_url: URL) -> None:
    first = dbnb.connect(server_url, database="t_idem", reset=True)
    first.execute("CREATE TABLE leftover (x int)")
    again = dbnb.connect(server_url, database="t_idem")
    assert again is first
    fresh = dbnb.connect(server_url, database="t_idem", reset=True)
    assert fresh is first and not fresh.closed
    assert fresh.execute("SELECT to_regclass('leftover') AS found")[0].found is None
    different = dbnb.connect(server_url, database="t_idem", pool_size=2)
    assert different is not first
    different.close()
    first.close()


def test_reset_needs_a_database_name(server_url: URL) -> None:
    with pytest.raises(dbnb.ConfigError, match=r"database=\.\.\."):
        dbnb.connect(server_url, reset=True)


def test_use_after_close_is_a_clear_error(server_url: URL) -> None:
    with dbnb.connect(server_url, database="t_closing", reset=True) as db:
        assert db.execute("SELECT 1 AS one")[0].one == 1
    assert db.closed and "closed" in repr(db)
    with pytest.raises(dbnb.DatabaseClosed, match=r"dbnb\.connect"):
        db.execute("SELECT 1")
    with pytest.raises(dbnb.DatabaseClosed):
        _ = db.engine
    db.close()  # twice is fine
    reopened = dbnb.connect(server_url, database="t_closing")
    assert reopened is not db and reopened.execute("SELECT 1 AS one")[0].one == 1
    reopened.close()


def test_async_engine_refuses_another_live_loop(db: dbnb.Database) -> None:
    other = dbnb.connect(db.url, pool_size=1, application_name="dbnb-loops")
    loop_a = asyncio.new_event_loop()
    try:
        rows = loop_a.run_until_complete(other.asyncio.execute("SELECT 1 AS one"))
        assert rows[0].one == 1
        errors: list[BaseException] = []

        def in_thread() -> None:
            try:
                asyncio.run(other.asyncio.execute("SELECT 1"))
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=in_thread)
        t.start()
        t.join(timeout=10)
        assert not t.is_alive(), "using the engine from another loop must not hang"
        assert len(errors) == 1 and isinstance(errors[0], dbnb.LoopMismatch)
        loop_a.run_until_complete(other.asyncio.close())
    finally:
        loop_a.close()
        other.close()


def test_run_bridge_keeps_the_async_engine_between_calls(db: dbnb.Database) -> None:
    other = dbnb.connect(db.url, pool_size=1, application_name="dbnb-bridge")
    try:
        assert dbnb.run(other.asyncio.execute("SELECT 1 AS one"))[0].one == 1
        engine = other._engines._async
        assert dbnb.run(other.asyncio.execute("SELECT 2 AS two"))[0].two == 2
        assert other._engines._async is engine  # same loop, same pool
    finally:
        dbnb.run(other.asyncio.close())


async def test_run_bridge_inside_a_running_loop(db: dbnb.Database) -> None:
    other = dbnb.connect(db.url, pool_size=1, application_name="dbnb-nested")
    try:
        # As in a notebook: sync code, inside the kernel's running loop, needs a result now.
        assert dbnb.run(other.asyncio.execute("SELECT 3 AS three"))[0].three == 3
    finally:
        await other.asyncio.close()


def test_get_session_is_a_dependency_generator(db: dbnb.Database) -> None:
    gen = db.get_session()
    session = next(gen)
    assert session.execute(text("SELECT 41 + 1")).scalar_one() == 42
    with pytest.raises(StopIteration):
        next(gen)


async def test_get_async_session_is_a_dependency_generator(db: dbnb.Database) -> None:
    gen = db.get_async_session()
    session = await gen.__anext__()
    assert (await session.execute(text("SELECT 42"))).scalar_one() == 42
    with pytest.raises(StopAsyncIteration):
        await gen.__anext__()


def test_unix_socket_urls_work_for_both_drivers(db: dbnb.Database) -> None:
    if "host" not in db.url.query:
        pytest.skip("DBNB_TEST_URL is a TCP URL; the embedded default covers sockets")
    url, _ = _async_url(db.url)
    assert url.query["host"] == db.url.query["host"]
    assert safe_url(db.url).startswith("postgresql://postgres@/")


def test_application_name_identifies_dbnb_and_process(db: dbnb.Database) -> None:
    name = db.execute("SELECT current_setting('application_name') AS a")[0].a
    assert name == db.settings.application_name and name.startswith("dbnb:")
