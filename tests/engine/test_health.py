"""health(), pool_status() and info(): typed snapshots for both engines, no I/O in reprs."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import text

import dbnb


def test_health_reports_latency_and_version(db: dbnb.Database) -> None:
    report = db.health()
    assert report.ok and report.driver == "psycopg"
    assert report.latency_ms is not None and report.latency_ms > 0
    server_major = db.execute("SHOW server_version_num")[0][0][:2]
    assert report.server_version is not None and report.server_version.startswith(server_major)
    assert "ok=True" in repr(report) and "<table" in report._repr_html_()
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.ok = False  # type: ignore[misc]


async def test_async_health(adb: dbnb.AsyncDatabase) -> None:
    report = await adb.health()
    assert report.ok and report.driver == "asyncpg" and report.server_version


def test_health_never_raises_for_a_down_server(tmp_path: object) -> None:
    down = dbnb.connect(
        "postgresql://ghost:hunter2@/nowhere?host=/nonexistent-dbnb-socket-dir", pool_size=1
    )
    report = down.health()
    assert not report.ok and report.error == "ConnectionFailed"
    assert report.message and "hunter2" not in report.message and "hunter2" not in repr(report)
    assert "ok=False" in repr(report) and "hunter2" not in report._repr_html_()
    down.close()


async def test_async_health_never_raises_for_a_down_server() -> None:
    down = dbnb.connect("postgresql://ghost:hunter2@/nowhere?host=/nonexistent-dbnb-socket-dir")
    report = await down.asyncio.health()
    assert not report.ok and report.error == "ConnectionFailed"
    assert "hunter2" not in repr(report)
    await down.asyncio.close()


def test_pool_status_counts_checkouts_on_both_engines(db: dbnb.Database) -> None:
    other = dbnb.connect(db.url, pool_size=2, max_overflow=1, application_name="dbnb-pools")
    try:
        before = other.pool_status()
        assert not before["sync"].started and not before["async"].started
        with (
            other.engine.connect() as c1,
            other.engine.connect() as c2,
            other.engine.connect() as c3,
        ):
            c1.execute(text("SELECT 1"))
            c2.execute(text("SELECT 1"))
            c3.execute(text("SELECT 1"))
            busy = other.pool_status()["sync"]
            assert (busy.checked_out, busy.overflow, busy.capacity) == (3, 1, 3)
            assert busy.utilization == 100.0 and not busy.healthy
        idle = other.pool_status()["sync"]
        assert idle.checked_out == 0 and idle.checked_in == 2 and idle.healthy
        assert "utilization" in repr(idle) and "<table" in other.pool_status()._repr_html_()
    finally:
        other.close()


async def test_async_pool_status(db: dbnb.Database) -> None:
    other = dbnb.connect(db.url, pool_size=1, max_overflow=0, application_name="dbnb-apools")
    try:
        async with other.async_session() as s:
            await s.execute(text("SELECT 1"))
            busy = other.asyncio.pool_status()["async"]
            assert busy.started and busy.checked_out == 1 and busy.utilization == 100.0
        assert other.pool_status()["async"].checked_out == 0
    finally:
        await other.asyncio.close()


def test_info_reports_connections_by_state_and_idle_transactions(db: dbnb.Database) -> None:
    with db.engine.connect() as held:
        held.execute(text("SELECT 1"))  # leaves this connection idle in a transaction
        info = db.info()
        assert info.database == db.database and info.size_bytes > 0
        assert info.application_name == db.settings.application_name
        assert info.connections.get("active", 0) >= 1
        assert info.idle_in_transaction_count >= 1
        assert any(t.last_query == "SELECT 1" for t in info.idle_in_transaction)
        assert "idle in transaction" in info._repr_html_()
    assert db.info().idle_in_transaction_count == 0


async def test_async_info(adb: dbnb.AsyncDatabase) -> None:
    info = await adb.info()
    assert info.database == adb.database and info.version


def test_reprs_do_no_io(db: dbnb.Database) -> None:
    snapshots = [db.health(), db.pool_status(), db.info()]
    db.engine.dispose()
    # With the pools gone and the engine unusable, reprs still work: they only format fields.
    closed = dbnb.connect(db.url, pool_size=3)
    closed.close()
    for snap in snapshots:
        assert repr(snap) and snap._repr_html_()
    assert repr(closed).endswith("closed>")
