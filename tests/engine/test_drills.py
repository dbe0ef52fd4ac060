"""Reliability drills on a real server: restarts, killed backends, a stopped server, a starved
pool, and a connect cell re-run twenty times."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

import dbnb

pytestmark = pytest.mark.drill


@pytest.fixture
def server(embedded: dbnb.EmbeddedServer | None) -> Iterator[dbnb.EmbeddedServer]:
    if embedded is None:
        pytest.skip("stopping and restarting needs the embedded server (DBNB_TEST_URL is set)")
    yield embedded
    embedded.ensure_running()


def _backend_pid_sync(db: dbnb.Database) -> int:
    return int(db.execute("SELECT pg_backend_pid() AS pid")[0].pid)


async def _backend_pid_async(db: dbnb.Database) -> int:
    return int((await db.asyncio.execute("SELECT pg_backend_pid() AS pid"))[0].pid)


async def test_server_restart_between_queries(
    server: dbnb.EmbeddedServer, db: dbnb.Database
) -> None:
    before_sync, before_async = _backend_pid_sync(db), await _backend_pid_async(db)
    server.restart()
    # pool_pre_ping notices the dead connections and replaces them: no error reaches the user.
    after_sync, after_async = _backend_pid_sync(db), await _backend_pid_async(db)
    assert after_sync != before_sync and after_async != before_async
    assert db.health().ok and (await db.asyncio.health()).ok
    pools = db.pool_status()
    assert pools["sync"].checked_out == 0 and pools["async"].checked_out == 0


async def test_every_pooled_backend_killed(db: dbnb.Database) -> None:
    killer = dbnb.connect(db.url, pool_size=1, application_name="dbnb-killer")
    try:
        _backend_pid_sync(db)
        await _backend_pid_async(db)
        killed = killer.execute(
            "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity "
            "WHERE application_name = :app AND pid <> pg_backend_pid()",
            app=db.settings.application_name,
        )[0].n
        assert killed >= 2
        assert db.execute("SELECT 7 AS n")[0].n == 7
        assert (await db.asyncio.execute("SELECT 8 AS n"))[0].n == 8
        pools = db.pool_status()
        assert pools["sync"].checked_out == 0 and pools["async"].checked_out == 0
        live = killer.execute(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = :app",
            app=db.settings.application_name,
        )[0].n
        assert live <= 2 * db.settings.pool_size
    finally:
        killer.close()


async def test_stopped_server_fails_fast_then_recovers(
    server: dbnb.EmbeddedServer, db: dbnb.Database
) -> None:
    secret_url = db.url.set(password="hunter2")
    victim = dbnb.connect(secret_url, pool_size=1, application_name="dbnb-victim")
    try:
        assert victim.execute("SELECT 1 AS one")[0].one == 1
        await victim.asyncio.execute("SELECT 1")
        server.stop()
        for attempt in (lambda: victim.execute("SELECT 1"),):
            start = time.monotonic()
            with pytest.raises(dbnb.ConnectionFailed) as info:
                attempt()
            assert time.monotonic() - start < 5
            assert "hunter2" not in str(info.value)
            assert ".s.PGSQL" in str(info.value) or "socket" in str(info.value)
        start = time.monotonic()
        with pytest.raises(dbnb.ConnectionFailed) as ainfo:
            await victim.asyncio.execute("SELECT 1")
        assert time.monotonic() - start < 5 and "hunter2" not in str(ainfo.value)
        report = victim.health()
        assert not report.ok and "hunter2" not in repr(report)
        server.ensure_running()
        assert victim.execute("SELECT 2 AS two")[0].two == 2
        assert (await victim.asyncio.execute("SELECT 3 AS three"))[0].three == 3
        assert victim.health().ok
    finally:
        server.ensure_running()
        await victim.asyncio.close()


def test_pool_exhaustion_says_how_to_fix_it(db: dbnb.Database) -> None:
    tight = dbnb.connect(
        db.url, pool_size=1, max_overflow=0, pool_timeout=0.5, application_name="dbnb-tight"
    )
    try:
        with tight.session() as holder:
            holder.execute(text("SELECT 1"))
            start = time.monotonic()
            with pytest.raises(dbnb.PoolExhausted, match="pool_size") as info:
                tight.execute("SELECT 1")
            assert time.monotonic() - start < 3
            assert "max_overflow" in str(info.value)
        status = tight.pool_status()["sync"]
        assert status.checked_out == 0
        assert tight.execute("SELECT 1 AS one")[0].one == 1
    finally:
        tight.close()


async def test_async_pool_exhaustion(db: dbnb.Database) -> None:
    tight = dbnb.connect(
        db.url, pool_size=1, max_overflow=0, pool_timeout=0.5, application_name="dbnb-atight"
    )
    try:
        async with tight.async_session() as holder:
            await holder.execute(text("SELECT 1"))
            with pytest.raises(dbnb.PoolExhausted):
                await tight.asyncio.execute("SELECT 1")
        assert tight.pool_status()["async"].checked_out == 0
    finally:
        await tight.asyncio.close()


def test_connect_cell_rerun_twenty_times(server_url: URL) -> None:
    seen = set()
    for _ in range(20):
        db = dbnb.connect(
            server_url, database="t_rerun", pool_size=3, application_name="dbnb-rerun"
        )
        db.execute("SELECT 1")
        seen.add(id(db))
    assert len(seen) == 1
    n = db.execute(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'dbnb-rerun'"
    )[0].n
    assert 1 <= n <= 3
    db.close()


def test_connect_with_reset_rerun_twenty_times_keeps_one_pool(server_url: URL) -> None:
    seen = set()
    for _ in range(20):
        db = dbnb.connect(
            server_url, database="t_rerun_reset", reset=True, application_name="dbnb-rerun-reset"
        )
        db.execute("CREATE TABLE t (x int)")
        seen.add(id(db))
    assert len(seen) == 1
    n = db.execute(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'dbnb-rerun-reset'"
    )[0].n
    assert n <= db.settings.pool_size
    db.close()
