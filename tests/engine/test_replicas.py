"""Read replicas: real PostgreSQL 18 streaming replicas of the test server, both drivers.

Two hot standbys are made with ``pg_basebackup -R`` (``EmbeddedServer.start_replica``) for the
module and stopped by pid at its end. Where a read went is told by the server itself
(``pg_is_in_recovery()``, its port), or by what it can see: with replay paused on the
replicas, a row just written on the primary is visible on the primary only.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import String, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import dbnb


class _Base(DeclarativeBase):
    pass


class Note(_Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(String(50))


WHERE = "SELECT current_setting('port')::int AS port, pg_is_in_recovery() AS standby"


def wait_until(check: Any, what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {seconds} s")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def replicas(replicated_server: dbnb.EmbeddedServer) -> Iterator[list[dbnb.LocalReplica]]:
    made = [replicated_server.start_replica(f"t-replicas-{i}") for i in (1, 2)]
    yield made
    for replica in made:
        replica.remove()


@pytest.fixture(scope="module")
def rdb(
    replicated_server: dbnb.EmbeddedServer, replicas: list[dbnb.LocalReplica]
) -> Iterator[dbnb.Database]:
    db = dbnb.connect(
        replicated_server.url(), database="t_replicas", reset=True,
        replicas=[r.url() for r in replicas], replica_recheck=0.05,
    )
    _Base.metadata.create_all(db.engine)
    db.execute("CREATE SEQUENCE note_numbers")
    db.wait_for_replicas()
    yield db
    db.close()


def direct(replica: dbnb.LocalReplica) -> dbnb.Database:
    """The module's database on one replica, connected to it alone (no routing)."""
    return dbnb.connect(replica.url("t_replicas"))


@pytest.fixture
def paused(rdb: dbnb.Database, replicas: list[dbnb.LocalReplica]) -> Iterator[None]:
    """Replay paused on both replicas (right after a replayed commit, so they are not late)."""
    rdb.execute("SELECT nextval('note_numbers')", use="primary")
    rdb.wait_for_replicas()
    for replica in replicas:
        direct(replica).execute("SELECT pg_wal_replay_pause()")
    try:
        yield
    finally:
        for replica in replicas:
            direct(replica).execute("SELECT pg_wal_replay_resume()")
        rdb.wait_for_replicas()


def where(db: dbnb.Database, **options: Any) -> tuple[int, bool]:
    row = db.frame(WHERE, **options).iloc[0]
    return int(row.port), bool(row.standby)


async def awhere(db: dbnb.Database, **options: Any) -> tuple[int, bool]:
    row = (await db.asyncio.frame(WHERE, **options)).iloc[0]
    return int(row.port), bool(row.standby)


# -- where reads and writes go --------------------------------------------------------------------


async def test_reads_take_turns_on_the_replicas_on_both_drivers(
    rdb: dbnb.Database, replicas: list[dbnb.LocalReplica]
) -> None:
    ports = sorted(r.port for r in replicas)
    seen = [where(rdb) for _ in range(4)]
    assert all(standby for _, standby in seen)
    assert sorted({p for p, _ in seen}) == ports
    assert seen[0][0] != seen[1][0] and seen[0][0] == seen[2][0]  # round robin
    aseen = [await awhere(rdb) for _ in range(4)]
    assert all(standby for _, standby in aseen)
    assert sorted({p for p, _ in aseen}) == ports
    assert (await rdb.asyncio.execute("SELECT pg_is_in_recovery()"))[0][0] is True
    await rdb.asyncio.refresh_pools()


async def test_arrow_and_polars_reads_are_routed_too(rdb: dbnb.Database) -> None:
    notes = dbnb.Repository(Note, rdb)
    assert rdb.arrow(WHERE).column("standby").to_pylist() == [True]
    assert rdb.arrow(WHERE, use="primary").column("standby").to_pylist() == [False]
    assert rdb.polars(WHERE)["standby"].to_list() == [True]
    assert rdb.polars(WHERE, use="primary")["standby"].to_list() == [False]
    assert (await rdb.asyncio.arrow(WHERE)).column("standby").to_pylist() == [True]
    assert (await rdb.asyncio.polars(WHERE, use="primary"))["standby"].to_list() == [False]
    reads = sum(node.reads for node in rdb.pool_status().nodes if node.role == "replica")
    notes.to_arrow(limit=1)
    notes.to_polars(limit=1)
    after = sum(node.reads for node in rdb.pool_status().nodes if node.role == "replica")
    assert after == reads + 2
    notes.to_arrow(limit=1, use="primary")
    assert sum(n.reads for n in rdb.pool_status().nodes if n.role == "replica") == after
    await rdb.asyncio.refresh_pools()


async def test_writes_transactions_sandboxes_and_overrides_go_to_the_primary(
    rdb: dbnb.Database,
) -> None:
    primary = rdb.url.query["port"]
    rdb.execute("INSERT INTO notes (body) VALUES ('written')")  # a standby would refuse it
    assert rdb.execute("SELECT pg_is_in_recovery()")[0][0] is True  # a read: a replica
    assert where(rdb, use="primary") == (int(primary), False)
    assert await awhere(rdb, use="primary") == (int(primary), False)
    with rdb.use("primary"):
        assert where(rdb) == (int(primary), False)
        assert dbnb.Repository(Note, rdb).count() >= 1
    with rdb.session() as s:
        assert s.execute(text("SELECT pg_is_in_recovery()")).scalar() is False
    with rdb.session(read_only=True) as s:
        assert s.execute(text("SELECT pg_is_in_recovery()")).scalar() is True
    with rdb.transaction() as s:
        assert s.execute(text("SELECT pg_is_in_recovery()")).scalar() is False
    with rdb.sandbox() as s:
        s.execute(text("INSERT INTO notes (body) VALUES ('sandboxed')"))
        # a read of the Database inside the sandbox joins it: it sees the sandbox's row
        assert dbnb.Repository(Note, rdb).count(body="sandboxed") == 1
    async with rdb.asyncio.session() as asession:
        assert (await asession.execute(text("SELECT pg_is_in_recovery()"))).scalar() is False
    async with rdb.asyncio.transaction() as asession:
        assert (await asession.execute(text("SELECT pg_is_in_recovery()"))).scalar() is False
    await rdb.asyncio.refresh_pools()


def test_a_read_that_writes_after_all_runs_again_on_the_primary(rdb: dbnb.Database) -> None:
    # Classified as a read (a SELECT), refused by the standby (SQLSTATE 25006): the primary.
    first = rdb.frame("SELECT nextval('note_numbers') AS n").n[0]
    assert rdb.frame("SELECT nextval('note_numbers') AS n").n[0] == first + 1
    assert where(rdb, use="replica")[1] is True


def test_partitioned_frames_read_on_a_replica(rdb: dbnb.Database) -> None:
    rdb.execute("INSERT INTO notes (body) SELECT 'bulk ' || g FROM generate_series(1, 3000) g")
    rdb.execute("ANALYZE notes")
    rdb.wait_for_replicas()
    notes = dbnb.Repository(Note, rdb)
    whole = notes.to_frame(order_by="id", use="primary")
    parted = notes.to_frame(order_by="id", partitions=3)
    pd_testing = pytest.importorskip("pandas.testing")
    pd_testing.assert_frame_equal(parted, whole)
    assert notes.to_frame(partitions=2).sort_values("id").reset_index(drop=True).equals(whole)


# -- what a replica can see: stale reads prove where they went ------------------------------------


@pytest.mark.usefixtures("paused")
def test_read_your_writes_keeps_a_block_on_the_primary_after_it_wrote(rdb: dbnb.Database) -> None:
    notes = dbnb.Repository(Note, rdb)
    before = notes.count()
    fresh = notes.create(body="fresh")  # the primary; the replicas have not replayed it
    assert notes.get(fresh.id) is None
    assert notes.count() == before
    assert fresh.id not in set(notes.to_frame(columns=["id"]).id)
    assert fresh.id in set(notes.to_frame(columns=["id"], use="primary").id)
    with rdb.use("primary"):
        assert notes.get(fresh.id) is not None
    with rdb.session(read_your_writes=True):
        assert notes.get(fresh.id) is None  # nothing written in the block yet: a replica
        mine = notes.create(body="mine")
        assert notes.get(mine.id) is not None  # it wrote: the primary
        assert rdb.frame("SELECT count(*) AS n FROM notes").n[0] == before + 2
        with rdb.use("replica"):
            assert notes.get(mine.id) is None
    assert notes.get(mine.id) is None  # the block is over: a replica again
    with rdb.session(read_your_writes=True) as s:
        s.add(Note(body="through the session"))
        s.flush()
        assert notes.count(body="through the session") == 0  # not committed yet
    assert notes.count(body="through the session") == 0  # a replica after the block


@pytest.mark.usefixtures("paused")
async def test_async_reads_are_routed_and_read_their_writes(rdb: dbnb.Database) -> None:
    notes = dbnb.AsyncRepository(Note, rdb)
    fresh = await notes.create(body="async fresh")
    assert await notes.get(fresh.id) is None
    assert await notes.get(fresh.id) is None  # the other replica too
    assert fresh.id in set((await notes.to_frame(columns=["id"], use="primary")).id)
    async with rdb.asyncio.session(read_your_writes=True):
        mine = await notes.create(body="async mine")
        assert await notes.get(mine.id) is not None
    with rdb.asyncio.use("primary"):
        assert await notes.get(fresh.id) is not None
    await rdb.asyncio.refresh_pools()


def test_waiting_for_the_replicas_names_one_that_does_not_replay(
    rdb: dbnb.Database, replicas: list[dbnb.LocalReplica], paused: None
) -> None:
    dbnb.Repository(Note, rdb).create(body="unreplayed")
    with pytest.raises(dbnb.ReplicasBehind, match=r"not replayed .*replica 1 .*replay_resume"):
        rdb.wait_for_replicas(max_wait=0.3)


# -- lag, failures, health ------------------------------------------------------------------------


def _received_not_replayed(replica: dbnb.LocalReplica, seconds: float) -> bool:
    row = direct(replica).execute(
        "SELECT pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn() AS waiting, "
        "extract(epoch FROM now() - pg_last_xact_replay_timestamp()) AS age"
    )[0]
    return bool(row.waiting) and float(row.age) > seconds


async def test_a_replica_that_falls_behind_is_skipped_then_taken_back(
    replicated_server: dbnb.EmbeddedServer, rdb: dbnb.Database,
    replicas: list[dbnb.LocalReplica],
) -> None:
    first, second = replicas
    db = dbnb.connect(
        replicated_server.url("t_replicas"), replicas=[r.url() for r in replicas],
        max_replica_lag=0.5, replica_recheck=0.05,
    )
    assert {where(db)[0] for _ in range(2)} == {first.port, second.port}
    direct(first).execute("SELECT pg_wal_replay_pause()")
    try:
        db.execute("INSERT INTO notes (body) VALUES ('lagging')")
        wait_until(lambda: _received_not_replayed(first, 0.6), "replica 1 falling 0.6 s behind")
        with pytest.warns(dbnb.ReplicaWarning, match=r"replica 1 .* s behind the primary"):
            seen = {where(db)[0] for _ in range(4)}
        assert seen == {second.port}
        report = db.health()
        lagging = next(n for n in report.nodes if n.name == "replica 1")
        assert not lagging.ok and lagging.state.startswith("skipped")
        assert lagging.lag_seconds is not None and lagging.lag_seconds > 0.5
        assert lagging.behind_bytes is not None and lagging.behind_bytes > 0  # the primary's view
        assert "behind" in lagging.state
        assert next(n for n in report.nodes if n.name == "replica 2").ok
    finally:
        direct(first).execute("SELECT pg_wal_replay_resume()")
    db.wait_for_replicas()
    report = await db.asyncio.health()  # looks again: caught up, so back in rotation
    assert [n.ok for n in report.nodes] == [True, True, True]
    assert {where(db)[0] for _ in range(2)} == {first.port, second.port}
    db.close()


async def test_replicas_stopped_mid_run_lose_nothing_and_reads_fall_back(
    replicated_server: dbnb.EmbeddedServer, replicas: list[dbnb.LocalReplica]
) -> None:
    first, second = replicas
    db = dbnb.connect(
        replicated_server.url("t_replicas"), replicas=[r.url() for r in replicas],
        replica_recheck=0.05, application_name="dbnb-stopping",
    )
    notes = dbnb.Repository(Note, db)
    written: list[int] = []
    served: list[tuple[int, bool]] = []
    counted: list[int] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", dbnb.ReplicaWarning)
        for i in range(18):
            if i == 6:
                second.stop()
            if i == 12:
                first.stop()
            written.append(notes.create(body=f"run {i}").id)
            served.append(where(db))
            counted.append(notes.count(body=f"run {i}"))  # a read on whatever is left
        assert (await awhere(db))[1] is False  # asyncpg falls back too
    said = [str(w.message) for w in caught if issubclass(w.category, dbnb.ReplicaWarning)]
    assert any("replica 2" in m and "ConnectionFailed" in m for m in said)
    assert any("no replica is usable" in m for m in said)
    assert {p for p, _ in served[7:12]} == {first.port}
    assert all(not standby for _, standby in served[13:])
    assert counted[12:] == [1] * 6  # the primary has each row as soon as it is written
    with db.use("primary"):
        assert set(notes.to_frame(columns=["id"]).id) >= set(written)  # nothing lost
    report = db.health()
    assert report.ok and [n.ok for n in report.nodes] == [True, False, False]
    first.start()
    second.start()
    report = db.health()  # looks again: both back in rotation
    assert [n.ok for n in report.nodes] == [True, True, True]
    db.wait_for_replicas()
    assert {where(db)[1] for _ in range(2)} == {True}
    assert notes.count(body="run 17") == 1  # replayed, now read on a replica
    await db.asyncio.close()


def test_health_and_pools_show_one_row_per_node(rdb: dbnb.Database) -> None:
    where(rdb)
    report = rdb.health()
    assert [(n.name, n.role) for n in report.nodes] == [
        ("primary", "primary"), ("replica 1", "replica"), ("replica 2", "replica"),
    ]
    assert all(n.ok and n.latency_ms is not None for n in report.nodes)
    assert all(n.lag_seconds is not None and n.lag_seconds < 10 for n in report.nodes[1:])
    assert "streams to 2 standby(s)" in report.nodes[0].state
    assert "replica set: 2 of 2 replicas serve reads" in str(report)
    assert "replica 2" in report._repr_html_() and "in rotation" in report._repr_html_()
    pools = rdb.pool_status()
    assert [n.name for n in pools.nodes] == ["primary", "replica 1", "replica 2"]
    assert sum(n.reads for n in pools.nodes[1:]) > 0
    assert "sync" in pools.nodes[1].pools and "reads" in str(pools)
    assert report.as_dict()["nodes"][1]["role"] == "replica"


def test_the_magic_routes_cells_and_shows_the_nodes(
    rdb: dbnb.Database, ipython: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    magics = ipython.magics_manager.registry["DbMagics"]
    saved = (magics.database, magics.connection_name)
    ipython.user_ns["rdb"] = rdb
    try:
        ipython.run_line_magic("db", "connect rdb")
        assert bool(ipython.run_cell_magic("db", "", WHERE).standby[0]) is True
        assert bool(ipython.run_cell_magic("db", "--use primary", WHERE).standby[0]) is False
        ipython.run_cell_magic("db", "", "INSERT INTO notes (body) VALUES ('from a cell')")
        assert "1 row affected" in capsys.readouterr().out
        assert "replica 1" in str(ipython.run_line_magic("db", "pool"))
        assert "replica 2" in str(ipython.run_line_magic("db", "health"))
    finally:
        magics.database, magics.connection_name = saved


def test_replica_settings_come_from_arguments_or_the_environment() -> None:
    from sqlalchemy.engine import make_url

    from dbnb.engine.replica_settings import ReplicaSettings

    primary = make_url("postgresql://ana:s3cret@primary:5432/shop?sslmode=require")
    found = ReplicaSettings.resolve(
        None, primary, environ={
            "DBNB_REPLICA_URLS": "postgresql://r1:5433, postgresql://bo@r2/other,"
                                 "postgresql://h1,h2/x",
            "DB_MAX_REPLICA_LAG": "2.5",
        },
    )
    assert [u.host for u in found.urls] == ["r1", "r2", "h1,h2"]
    assert [u.database for u in found.urls] == ["shop"] * 3
    assert found.urls[0].username == "ana" and found.urls[0].password == "s3cret"
    assert found.urls[1].username == "bo" and found.urls[1].password is None
    assert found.urls[0].query["sslmode"] == "require"
    assert found.max_lag == 2.5 and found.recheck == 5.0
    assert "s3cret" not in repr(found)
    socket = make_url("postgresql://postgres@/db?host=/run/pg&port=5432")
    local = ReplicaSettings.resolve(["postgresql://@/x?host=/tmp/r&port=5433"], socket)
    assert local.urls[0].query["host"] == "/tmp/r" and local.urls[0].query["port"] == "5433"
    with pytest.raises(dbnb.ConfigError, match="must say where the replica is"):
        ReplicaSettings.resolve(["postgresql:///x"], primary)
    with pytest.raises(dbnb.ConfigError, match="max_replica_lag"):
        ReplicaSettings.resolve(["postgresql://r"], primary, max_replica_lag=0)
    with pytest.raises(dbnb.ConfigError) as bad:
        ReplicaSettings.resolve(["postgresql//r:pw@x"], primary)
    assert "pw" not in str(bad.value)
    with pytest.raises(dbnb.ConfigError, match="use 'primary', 'replica'"):
        dbnb.Database(dbnb.Settings.resolve(primary)).frame("SELECT 1", use="replicas")  # type: ignore[arg-type]


def test_replicas_are_refused_on_other_backends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    with pytest.raises(dbnb.UnsupportedOnDialect, match="connect without replicas=") as refused:
        dbnb.connect(url, replicas=["postgresql://replica/shop"], dotenv=False)
    assert refused.value.feature == "read replicas" and refused.value.backend == "SQLite"
    monkeypatch.setenv("DBNB_REPLICA_URLS", "postgresql://replica")
    with pytest.raises(dbnb.UnsupportedOnDialect, match="DBNB_REPLICA_URLS unset"):
        dbnb.connect(url, dotenv=False)
