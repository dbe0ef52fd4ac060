"""Behind PgBouncer (Debian's package) in pool_mode=transaction: the pooler profile, both drivers.

What hosted PostgreSQL usually puts in front of the server: each transaction may run on another
server connection, so nothing may outlive a transaction (prepared statements, session settings,
session-level advisory locks).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import String, text
from sqlalchemy.engine import URL
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import dbnb
from dbnb import migrations

INI = Path(__file__).resolve().parents[2] / "alembic.ini"


class _Base(DeclarativeBase):
    pass


class PooledItem(_Base):
    __tablename__ = "pooled_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    qty: Mapped[int]


@pytest.fixture(scope="module")
def pooled(pgbouncer: URL, db: dbnb.Database) -> Iterator[dbnb.Database]:
    _Base.metadata.create_all(db.engine)
    database = dbnb.connect(
        pgbouncer.set(database=db.database), pooler="transaction", statement_timeout=5000,
        application_name="dbnb-pooled", pool_size=4,
    )
    yield database
    database.close()


def _advisory_locks(db: dbnb.Database) -> int:
    return int(db.execute("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory'")[0].n)


async def test_session_settings_are_set_in_every_transaction(pooled: dbnb.Database) -> None:
    # Startup parameters would be refused by PgBouncer: the settings travel per transaction.
    for _ in range(5):
        assert pooled.execute("SHOW statement_timeout")[0][0] == "5s"
        assert (await pooled.asyncio.execute("SHOW statement_timeout"))[0][0] == "5s"
    assert pooled.execute("SHOW idle_in_transaction_session_timeout")[0][0] == "10min"
    assert pooled.execute("SHOW client_connection_check_interval")[0][0] == "2s"
    await pooled.asyncio.refresh_pools()


async def test_no_statement_caches_on_either_driver(pooled: dbnb.Database) -> None:
    with pooled.engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None and raw.prepare_threshold is None
    async with pooled.async_engine.connect() as aconn:
        araw = (await aconn.get_raw_connection()).driver_connection
        assert araw is not None and araw._stmt_cache.get_max_size() == 0
    await pooled.asyncio.refresh_pools()


async def test_a_startup_parameter_the_pooler_refuses_is_named(
    pgbouncer: URL, db: dbnb.Database
) -> None:
    url = pgbouncer.set(database=db.database).update_query_dict(
        {"options": "-c search_path=public"}
    )
    bad = dbnb.connect(url, application_name="dbnb-refused", pool_size=1)
    try:
        with pytest.raises(dbnb.ConnectionFailed, match=r"'options'.*pooler") as info:
            bad.execute("SELECT 1")
        assert "DB_POOLER=transaction" in str(info.value)
        with pytest.raises(dbnb.ConnectionFailed, match="'options'"):
            await bad.asyncio.execute("SELECT 1")
    finally:
        await bad.asyncio.close()


def test_migrations_hold_a_transaction_level_lock(pooled: dbnb.Database, db: dbnb.Database) -> None:
    result = migrations.upgrade(pooled, config=INI)
    assert result.to_revisions == ("0002",)
    assert _advisory_locks(db) == 0
    back = migrations.downgrade(pooled, "base", config=INI)
    assert back.to_revisions == ()
    assert _advisory_locks(db) == 0


async def test_mixed_load_through_the_pooler_has_no_failures(
    pooled: dbnb.Database, db: dbnb.Database
) -> None:
    """CRUD, frames, async with concurrency 4 and migrations up and down, all at once."""
    counts = {"ops": 0}
    failures: list[BaseException] = []
    items = dbnb.Repository(PooledItem, pooled)
    aitems = dbnb.AsyncRepository(PooledItem, pooled)
    stop = threading.Event()

    def migrate() -> None:
        while not stop.is_set():
            try:
                migrations.upgrade(pooled, config=INI)
                migrations.downgrade(pooled, "base", config=INI)
                counts["ops"] += 2
            except BaseException as exc:
                failures.append(exc)
                return

    async def async_worker(worker: int, rounds: int) -> None:
        for i in range(rounds):
            key = 1_000_000 + worker * 10_000 + i
            await aitems.create(id=key, name=f"a{worker}-{i}", qty=i)
            assert (await aitems.get_or_raise(key)).qty == i
            await aitems.update(key, qty=i + 1)
            assert await aitems.count(qty__gte=0) >= 1
            await aitems.delete(key)
            counts["ops"] += 5

    migrator = threading.Thread(target=migrate)
    migrator.start()
    try:
        base = 0
        while counts["ops"] < 3_000:
            for i in range(20):
                key = base + i
                items.create(id=key, name=f"s{key}", qty=key)
                assert items.get_or_raise(key).name == f"s{key}"
                items.update(key, qty=key + 1)
                items.list(qty__gt=-1, limit=5)
                counts["ops"] += 4
            frame = items.to_frame(columns=["id", "name", "qty"])
            new = pd.DataFrame(
                {"id": range(500_000 + base, 500_000 + base + 50), "name": "f", "qty": 1}
            )
            items.from_frame(new)
            assert (await aitems.to_frame()).shape[0] >= frame.shape[0] + 50
            counts["ops"] += 3
            await asyncio.gather(*(async_worker(w + base, 5) for w in range(4)))
            base += 100
    except BaseException as exc:
        failures.append(exc)
    finally:
        stop.set()
        migrator.join(timeout=120)
    assert failures == [], failures[:3]
    assert counts["ops"] >= 3_000
    assert _advisory_locks(db) == 0
    assert not db.execute(
        "SELECT count(*) AS n FROM pg_prepared_statements"
    )[0].n  # nothing prepared on the server's own side either
    await pooled.asyncio.refresh_pools()


async def test_binary_loads_and_upserts_through_the_pooler(
    pooled: dbnb.Database, db: dbnb.Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Big enough for binary COPY: the type lookup, the COPY and the upsert in one transaction."""
    items, aitems = dbnb.Repository(PooledItem, pooled), dbnb.AsyncRepository(PooledItem, pooled)
    ids = range(2_000_000, 2_005_000)
    frame = pd.DataFrame({"id": ids, "name": [f"b{i}" for i in ids], "qty": 1})
    with caplog.at_level("DEBUG", logger="dbnb.frames"):
        for _ in range(6):  # past psycopg's prepare threshold (5): still nothing prepared
            assert items.from_frame(frame, on_conflict="update") == len(frame)
            assert await aitems.from_frame(frame.assign(qty=2), on_conflict="update") == len(frame)
    assert caplog.text.count("as binary COPY") == 12
    assert db.execute("SELECT count(*), min(qty), max(qty) FROM pooled_items "
                      "WHERE id >= 2000000") == [(5_000, 2, 2)]
    db.execute("DELETE FROM pooled_items WHERE id >= 2000000")
    await pooled.asyncio.refresh_pools()


def test_an_unlock_that_returns_false_discards_the_connection(db: dbnb.Database) -> None:
    """A session lock not held any more (a pooler moved the session): the connection goes."""
    from dbnb.migrations.locking import release

    with db.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        release(conn, lock=True)  # this session never took the lock: unlock returns false
        assert conn.invalidated


def test_a_fresh_database_through_the_pooler_leaves_no_lock(
    pgbouncer: URL, db: dbnb.Database
) -> None:
    for _ in range(2):
        fresh = dbnb.connect(pgbouncer, database="t_pooler_fresh", reset=True,
                             pooler="transaction", application_name="dbnb-fresh")
        assert fresh.execute("SELECT current_database() AS d")[0].d == "t_pooler_fresh"
        fresh.close()
    assert _advisory_locks(db) == 0
