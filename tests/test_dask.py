"""dbnb.dask and Repository.to_dask on a real cluster: a dask.distributed LocalCluster of two
worker processes on loopback, against the test server (and Debian's PostgreSQL 15 where a
password is asked for). Results are compared with to_frame() / db.frame() of the same query."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import dask
import pandas as pd
import pytest
import sqlalchemy
from dask.distributed import Client, LocalCluster
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

import dbnb
import dbnb.dask
from dbnb.engine.remote import WorkerConnection
from dbnb.orm.dask_frames import PartitionReader, PartitionWriter
from tests.conftest import PASSWORD_SERVER_SECRET as SECRET


class Event(dbnb.BigIntPrimaryKey, dbnb.Timestamps, dbnb.SoftDelete, dbnb.Base):
    __tablename__ = "dask_events"
    kind: Mapped[str] = mapped_column(String(8))
    amount: Mapped[float | None]
    units: Mapped[int | None]


class Measure(dbnb.BigIntPrimaryKey, dbnb.Base):
    __tablename__ = "dask_measures"
    reading: Mapped[float] = mapped_column("reading_value")


def start_cluster(**options: Any) -> tuple[LocalCluster, Client]:
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=":0", **options,
    )
    return cluster, Client(cluster)


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    """Two worker processes, one thread each, on loopback; closed at the end of the module."""
    cluster, client = start_cluster()
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def events(db: dbnb.Database) -> dbnb.Repository[Event]:
    """3,000 events (NULLs in amount and units, every tenth soft-deleted), analyzed."""
    Event.__table__.create(db.engine)  # type: ignore[attr-defined]
    db.execute(
        "INSERT INTO dask_events (kind, amount, units) SELECT (ARRAY['a','b','c'])[g % 3 + 1], "
        "CASE WHEN g % 7 = 0 THEN NULL ELSE g * 0.5 END, "
        "CASE WHEN g % 11 = 0 THEN NULL ELSE g END FROM generate_series(1, 3000) g"
    )
    db.execute("UPDATE dask_events SET deleted_at = now() WHERE id % 10 = 0")
    db.execute("ANALYZE dask_events")
    return dbnb.Repository(Event, db)


def readers(ddf: Any) -> list[PartitionReader]:
    """The partition readers in a collection's task graph (what the workers will call)."""
    tasks = ddf.__dask_graph__().values()
    return [t.func for t in tasks if isinstance(getattr(t, "func", None), PartitionReader)]


def by_id(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("id").reset_index(drop=True)


def same(computed: pd.DataFrame, expected: pd.DataFrame) -> None:
    """The same rows and the same dtypes (the order of rows across partitions aside)."""
    pd.testing.assert_frame_equal(by_id(computed), by_id(expected))


def test_to_dask_is_to_frame_in_partitions(client: Client, events: dbnb.Repository[Event]) -> None:
    whole = events.to_frame()
    ddf = events.to_dask(partitions=4)
    assert ddf.npartitions == 4
    assert ddf.dtypes.equals(whole.dtypes)  # meta: dbnb's dtypes (Int64 with NULLs, string...)
    computed = ddf.compute()
    assert len(computed) == 2700  # soft-deleted rows stay hidden
    same(computed, whole)
    sizes = ddf.map_partitions(len).compute()
    assert len(sizes) == 4 and all(n > 0 for n in sizes)  # ranges of pages, none empty


def test_filters_columns_and_visibility_apply(
    client: Client, events: dbnb.Repository[Event]
) -> None:
    filters = {"kind": "b", "amount__gt": 100}
    ddf = events.to_dask(partitions=3, partition_on="id", columns=["id", "amount", "units"],
                         **filters)
    expected = events.to_frame(columns=["id", "amount", "units"], **filters)
    same(ddf.compute(), expected)
    assert list(ddf.columns) == ["id", "amount", "units"]
    deleted = events.only_deleted().to_dask(partitions=2).compute()
    assert len(deleted) == 300 and deleted.deleted_at.notna().all()
    everything = events.with_deleted().to_dask(partitions=2, order_by="units").compute()
    assert len(everything) == 3000


async def test_the_async_shell_plans_on_asyncpg(
    client: Client, events: dbnb.Repository[Event], adb: dbnb.AsyncDatabase
) -> None:
    repo = dbnb.AsyncRepository(Event, adb)
    ddf = await repo.to_dask(partitions=3, kind__in=["a", "c"])
    assert ddf.npartitions == 3
    same(ddf.compute(), events.to_frame(kind__in=["a", "c"]))


def test_partitions_read_with_the_group_by_of_sql(client: Client, events: dbnb.Repository[Event],
                                                  db: dbnb.Database) -> None:
    sums = events.to_dask(partitions=4).groupby("kind").units.sum().compute().sort_index()
    expected = db.frame(
        "SELECT kind, sum(units) AS units FROM dask_events WHERE deleted_at IS NULL "
        "GROUP BY kind ORDER BY kind"
    )
    assert sums.tolist() == expected.units.tolist()
    assert sums.index.tolist() == ["a", "b", "c"]


def test_json_uuid_and_array_columns_keep_dbnb_dtypes(client: Client, db: dbnb.Database) -> None:
    db.execute("CREATE TABLE dask_docs (id int PRIMARY KEY, doc jsonb, ref uuid, tags text[])")
    db.execute("INSERT INTO dask_docs SELECT g, jsonb_build_object('n', g), gen_random_uuid(), "
               "ARRAY['x', 'y' || g] FROM generate_series(1, 500) g")
    expected = db.frame("SELECT * FROM dask_docs")
    ddf = dbnb.dask.read_frame(db, "dask_docs", partitions=2)
    assert ddf.dtypes.equals(expected.dtypes)  # JSON stays objects (dask would make strings)
    computed = by_id(ddf.compute())
    assert computed.doc[0] == {"n": 1}
    same(computed, expected)


def test_read_frame_cuts_sql_text_at_a_column(client: Client, events: dbnb.Repository[Event],
                                              db: dbnb.Database) -> None:
    sql = "SELECT id, kind, amount FROM dask_events WHERE units > :low -- a comment\n"
    ddf = dbnb.dask.read_frame(db, sql, {"low": 500}, partition_on="id", partitions=4)
    assert ddf.npartitions == 4
    expected = db.frame(sql, low=500)
    same(ddf.compute(), expected)
    by_kind = dbnb.dask.read_frame(db, sql, {"low": 500}, partition_on="kind", partitions=3)
    parts = dask.compute(*by_kind.to_delayed())
    kinds = [k for p in parts for k in set(p.kind)]
    assert sorted(kinds) == ["a", "b", "c"]  # cut at the text's quantiles: each kind in one range
    same(by_kind.compute(), expected)
    with pytest.raises(dbnb.FrameError, match="partition_on='id'"):
        dbnb.dask.read_frame(db, sql, {"low": 1}, partition_on=None)


def test_read_frame_takes_a_table_and_an_asyncpg_url(client: Client, events: dbnb.Repository[Event],
                                                     db: dbnb.Database) -> None:
    raw = db.frame("SELECT * FROM dask_events")  # a table read by name: every row
    url = db.url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    ddf = dbnb.dask.read_frame(url, "dask_events", partitions=3)
    same(ddf.compute(), raw)
    with pytest.raises(dbnb.FilterError, match="kind, amount"):
        dbnb.dask.read_frame(db, "dask_events", partition_on="nope")
    by_ctid = dbnb.dask.read_frame(db, "dask_events", partition_on=None, partitions=3)
    assert all(n > 0 for n in by_ctid.map_partitions(len).compute())
    same(by_ctid.compute(), raw)


def test_a_table_without_key_or_statistics_is_cut_into_pages(client: Client,
                                                             db: dbnb.Database) -> None:
    db.execute("CREATE TABLE dask_log (line text, at date)")
    db.execute("INSERT INTO dask_log SELECT 'line ' || g, DATE '2026-01-01' + g % 30 "
               "FROM generate_series(1, 5000) g")
    ddf = dbnb.dask.read_frame(db, "dask_log", partition_on=None, partitions=4)
    sizes = ddf.map_partitions(len).compute()
    assert len(sizes) == 4 and all(n > 0 for n in sizes) and sum(sizes) == 5000
    expected = db.frame("SELECT * FROM dask_log")
    pd.testing.assert_frame_equal(
        ddf.compute().sort_values("line").reset_index(drop=True),
        expected.sort_values("line").reset_index(drop=True),
    )
    by_day = dbnb.dask.read_frame(db, "dask_log", partition_on="at", partitions=3)  # no stats
    assert by_day.npartitions == 3 and sum(by_day.map_partitions(len).compute()) == 5000


def test_write_frame_loads_partition_by_partition(client: Client, events: dbnb.Repository[Event],
                                                  db: dbnb.Database) -> None:
    db.execute("CREATE TABLE dask_copy (LIKE dask_events INCLUDING ALL)")
    source = events.to_dask(partitions=3, columns=["id", "kind", "amount", "units"])
    assert dbnb.dask.write_frame(source, "dask_copy", db) == 2700
    copied = db.frame("SELECT id, kind, amount, units FROM dask_copy")
    same(copied, events.to_frame(columns=["id", "kind", "amount", "units"]))
    assert db.frame("SELECT count(*) AS n FROM dask_copy WHERE created_at IS NULL").n[0] == 0
    fresh = source[["kind", "amount", "units"]]
    assert dbnb.dask.write_frame(fresh, events, all_or_nothing=True) == 2700
    assert events.count() == 5400  # new ids from the sequence, timestamps from the defaults
    assert not staging_tables(db)


def test_write_frame_takes_a_model_and_its_attribute_names(client: Client,
                                                          db: dbnb.Database) -> None:
    import dask.dataframe as dd

    Measure.__table__.create(db.engine)  # type: ignore[attr-defined]
    ddf = dd.from_pandas(pd.DataFrame({"reading": [1.5, 2.5, 3.5, 4.5]}), npartitions=2)
    assert dbnb.dask.write_frame(ddf, dbnb.Repository(Measure, db)) == 4
    assert dbnb.dask.write_frame(ddf, Measure, db, all_or_nothing=True) == 4
    stored = db.frame("SELECT reading_value FROM dask_measures ORDER BY reading_value")
    assert stored.reading_value.tolist() == [1.5, 1.5, 2.5, 2.5, 3.5, 3.5, 4.5, 4.5]
    with pytest.raises(dbnb.FrameError, match="Session"), db.session() as s:
        dbnb.dask.write_frame(ddf, dbnb.Repository(Measure, s))


def staging_tables(db: dbnb.Database) -> list[str]:
    found = db.frame("SELECT tablename FROM pg_tables WHERE tablename LIKE 'dbnb_stage_%'")
    return list(found.tablename)


def test_all_or_nothing_leaves_the_target_untouched_when_a_partition_fails(
    client: Client, db: dbnb.Database
) -> None:
    import dask.dataframe as dd

    db.execute("CREATE TABLE dask_strict (id bigint PRIMARY KEY, code varchar(4) NOT NULL)")
    good = pd.DataFrame({"id": range(1, 301), "code": ["ok"] * 300})
    bad = good.copy()
    bad.loc[250, "code"] = "far too long"  # the third partition fails on the server
    ddf = dd.from_pandas(bad, npartitions=3, sort=False)
    with pytest.raises(dbnb.QueryError, match="too long"):
        dbnb.dask.write_frame(ddf, "dask_strict", db, all_or_nothing=True)
    assert db.frame("SELECT count(*) AS n FROM dask_strict").n[0] == 0
    assert not staging_tables(db)
    # Partition by partition, the partitions committed before the failure stay (as
    # documented), whole; the failing one wrote nothing.
    with pytest.raises(dbnb.QueryError, match="too long"):
        dbnb.dask.write_frame(ddf, "dask_strict", db)
    kept = db.frame("SELECT count(*) AS n FROM dask_strict").n[0]
    assert kept in (0, 100, 200)
    assert db.frame("SELECT count(*) AS n FROM dask_strict WHERE id > 200").n[0] == 0
    db.execute("TRUNCATE dask_strict")
    ok = dd.from_pandas(good, npartitions=3, sort=False)
    assert dbnb.dask.write_frame(ok, "dask_strict", db, all_or_nothing=True) == 300
    with pytest.raises(dbnb.UniqueViolation):  # the final INSERT checks the constraints
        dbnb.dask.write_frame(ok, "dask_strict", db, all_or_nothing=True)
    assert db.frame("SELECT count(*) AS n FROM dask_strict").n[0] == 300
    assert not staging_tables(db)
    with pytest.raises(dbnb.FrameError, match="nope"):  # checked before any task runs
        dbnb.dask.write_frame(ok.rename(columns={"code": "nope"}), "dask_strict", db)


def test_partitions_take_turns_on_the_replicas(
    client: Client, replicated_server: dbnb.EmbeddedServer
) -> None:
    replica = replicated_server.start_replica("t-dask-1")
    try:
        rdb = dbnb.connect(replicated_server.url(), database="t_dask_replicas", reset=True,
                           replicas=[replica.url()])
        rdb.execute("CREATE TABLE r (id bigint PRIMARY KEY, v text)")
        rdb.execute("INSERT INTO r SELECT g, 'v' || g FROM generate_series(1, 2000) g")
        rdb.wait_for_replicas()
        ddf = dbnb.dask.read_frame(rdb, "r", partitions=2)
        ports = {str(c.url.query.get("port") or c.url.port)
                 for r in readers(ddf) for c in r.connections}
        assert ports == {str(replica.port)}
        same(ddf.compute(), rdb.frame("SELECT * FROM r", use="primary"))
        rdb.close()
    finally:
        replica.remove()


# -- credentials stay on the workers -------------------------------------------------------------


def test_no_password_travels_and_workers_bring_their_own(
    client: Client, password_server: tuple[str, int], tmp_path: Path
) -> None:
    host, port = password_server
    db = dbnb.connect(f"postgresql://ana:{SECRET}@{host}:{port}/postgres")
    db.execute("DROP TABLE IF EXISTS guarded; CREATE TABLE guarded (id bigint PRIMARY KEY, v text)")
    db.execute("INSERT INTO guarded SELECT g, 'v' || g FROM generate_series(1, 1000) g")
    expected = db.frame("SELECT * FROM guarded")
    client.run(_set_env, {"PGPASSFILE": str(tmp_path / "none"), "PGPASSWORD": None})
    ddf = dbnb.dask.read_frame(db, "SELECT * FROM guarded", partition_on="id", partitions=3)
    assert ddf.dtypes.equals(expected.dtypes)  # meta without a worker reading anything
    graph = dict(ddf.__dask_graph__())
    for payload in (cloudpickle.dumps(graph), pickle.dumps(ddf), cloudpickle.dumps(ddf.optimize())):
        assert SECRET.encode() not in payload
    assert SECRET not in repr(graph)
    with pytest.raises(dbnb.ConnectionFailed) as caught:
        ddf.compute()
    message = str(caught.value)
    assert "PGPASSWORD" in message and "PGPASSFILE" in message and SECRET not in message
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"{host}:{port}:*:ana:{SECRET}\n")
    pgpass.chmod(0o600)
    client.run(_set_env, {"PGPASSFILE": str(pgpass)})
    same(ddf.compute(), expected)
    client.run(_set_env, {"PGPASSFILE": str(tmp_path / "none"), "PGPASSWORD": SECRET})
    same(ddf.compute(), expected)
    # Writes: the tasks carry what write_frame builds from the Database, without the password.
    db.execute("DROP TABLE IF EXISTS guarded_copy; CREATE TABLE guarded_copy (LIKE guarded)")
    table = sqlalchemy.Table("guarded_copy", sqlalchemy.MetaData(), autoload_with=db.engine)
    writer = PartitionWriter(WorkerConnection.of(db.url, db.settings), table)
    assert SECRET.encode() not in cloudpickle.dumps(writer) and SECRET not in repr(writer)
    assert dbnb.dask.write_frame(ddf, "guarded_copy", db, all_or_nothing=True) == 1000
    assert db.frame("SELECT count(*) AS n FROM guarded_copy").n[0] == 1000
    client.run(_set_env, {"PGPASSFILE": None, "PGPASSWORD": None})
    db.close()


def _set_env(values: dict[str, str | None]) -> None:
    """Run on each worker: its own environment, as an operator would set it up."""
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def test_a_missing_dask_names_the_extra() -> None:
    probe = (
        "import sys; sys.modules['dask'] = None; sys.modules['dask.dataframe'] = None\n"
        "import dbnb\n"
        "try:\n"
        "    dbnb.dask.read_frame('postgresql://u@h/d', 'SELECT 1 AS id')\n"
        "except dbnb.MissingExtra as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    assert "pip install 'dbnb[dask]'" in done.stdout


# -- larger than a worker's memory ---------------------------------------------------------------

#: Each worker's memory limit in the test below, and the rows of the table it aggregates.
#: A worker holds ~230 MiB before any data (pandas, pyarrow, SQLAlchemy, the drivers) and the
#: nanny restarts it at 95% of the limit: 480 MiB leaves room for a few partitions in flight,
#: and 8M rows (~710 MiB as a table, ~560 MiB as a frame) still fit in no single worker.
WORKER_LIMIT = 480 * 2**20
BIG_ROWS = 8_000_000


def test_a_table_larger_than_a_worker_groups_by_like_sql(db: dbnb.Database) -> None:
    db.execute("CREATE UNLOGGED TABLE dask_big (id bigint PRIMARY KEY, kind text, amount float8,"
               " units int, note text)")
    db.execute(
        "INSERT INTO dask_big SELECT g, 'kind-' || (g % 7), (g % 1000) * 0.25, g % 100, "
        f"'a note of event number ' || g FROM generate_series(1, {BIG_ROWS}) g"
    )
    db.execute("ANALYZE dask_big")
    size = db.frame("SELECT pg_table_size('dask_big') AS b").b[0]
    assert size > WORKER_LIMIT
    # Past the limit the nanny restarts a worker (a new address: checked below). Pausing is
    # off: a paused worker waits for memory that a process which imported pandas, pyarrow and
    # SQLAlchemy never gives back, and nothing here needs it to pause.
    with dask.config.set({"distributed.worker.memory.pause": False}):
        cluster, client = start_cluster(memory_limit=WORKER_LIMIT)
    try:
        started = set(client.scheduler_info()["workers"])
        ddf = dbnb.dask.read_frame(db, "dask_big", partitions=64)
        frame_bytes = ddf.memory_usage(deep=True).sum().compute()
        assert frame_bytes > WORKER_LIMIT  # as a frame too, it fits in no single worker
        sums = ddf.groupby("kind").agg({"amount": "sum", "units": "sum", "id": "count"},
                                       split_out=1)  # a tree of partial sums, no shuffle
        got = sums.compute()
        got = got.sort_index()
        workers = client.scheduler_info()["workers"]
        memory = [w["memory_limit"] for w in workers.values()]
    finally:
        client.close()
        cluster.close()
    assert memory == [WORKER_LIMIT, WORKER_LIMIT]
    assert set(workers) == started  # no worker went past its limit (and was restarted)
    expected = db.frame("SELECT kind, sum(amount) AS amount, sum(units) AS units, count(id) AS id "
                        "FROM dask_big GROUP BY kind ORDER BY kind").set_index("kind")
    assert got.index.tolist() == expected.index.tolist()
    assert got.id.tolist() == expected.id.tolist()
    assert got.units.tolist() == expected.units.tolist()
    assert got.amount.tolist() == pytest.approx(expected.amount.tolist())
    db.execute("DROP TABLE dask_big")


def test_other_backends_say_what_to_do_instead(tmp_path: Path) -> None:
    lite = dbnb.connect(f"sqlite:///{tmp_path / 'lite.db'}")
    with pytest.raises(dbnb.UnsupportedOnDialect, match="from_pandas"):
        dbnb.dask.read_frame(lite, "SELECT 1 AS id")
    with pytest.raises(dbnb.UnsupportedOnDialect, match="from_pandas"):
        dbnb.Repository(Event, lite).to_dask()
    lite.close()
