"""Arrow and polars out: to_arrow / to_polars, db.arrow / db.polars, iter_frames(backend=...).

On both shells (psycopg and asyncpg COPY), against the real server: the exact types of the
table in dbnb.frames.dtypes, the values as the database holds them (decimals exact, time zones
kept, lists, JSON), filters and soft delete as in to_frame, partitioned reads, streams, and
the errors said before anything is sent.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from sqlalchemy import Numeric, String, Uuid
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

import dbnb
from dbnb import Base, BigIntPrimaryKey, SoftDelete, Timestamps


class Reading(BigIntPrimaryKey, Timestamps, SoftDelete, Base):
    __tablename__ = "readings_ap"
    sensor: Mapped[str] = mapped_column(String(20))
    value: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    ratio: Mapped[float | None]
    tags: Mapped[list[str] | None] = mapped_column(ARRAY(String))
    doc: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    uid: Mapped[uuid.UUID | None] = mapped_column(Uuid)


FIXED_UUID = uuid.UUID("0191a2b3-c4d5-7e6f-8a9b-0c1d2e3f4a5b")
EXPECTED_ARROW = {
    "id": pa.int64(), "created_at": pa.timestamp("us", tz="UTC"),
    "updated_at": pa.timestamp("us", tz="UTC"), "deleted_at": pa.timestamp("us", tz="UTC"),
    "sensor": pa.string(), "value": pa.decimal128(12, 2), "ratio": pa.float64(),
    "tags": pa.list_(pa.string()), "doc": pa.json_(pa.string()), "uid": pa.string(),
}
EXPECTED_POLARS = {
    "id": pl.Int64, "created_at": pl.Datetime("us", "UTC"), "updated_at": pl.Datetime("us", "UTC"),
    "deleted_at": pl.Datetime("us", "UTC"), "sensor": pl.String, "value": pl.Decimal(12, 2),
    "ratio": pl.Float64, "tags": pl.List(pl.String), "doc": pl.String, "uid": pl.String,
}


@pytest.fixture(scope="module", autouse=True)
def _readings(db: dbnb.Database) -> Iterator[None]:
    Base.metadata.create_all(db.engine, tables=[Reading.__table__])  # type: ignore[list-item]
    repo = dbnb.Repository(Reading, db)
    repo.create(sensor="a", value=Decimal("12345678.91"), ratio=0.5, tags=["x", "y, z"],
                doc={"k": [1, {"n": None}]}, uid=FIXED_UUID)
    repo.create(sensor="b", value=None, ratio=None, tags=None, doc=None, uid=None)
    repo.create(sensor="c", value=Decimal("-0.01"), ratio=2.25, tags=[], doc={"k": "text"})
    gone = repo.create(sensor="gone", value=Decimal("1.00"))
    repo.delete(gone.id)
    db.execute("INSERT INTO readings_ap (sensor, value) SELECT 's' || g, g / 100.0 "
               "FROM generate_series(1, 250) AS g")
    yield
    db.execute("DROP TABLE readings_ap")


async def call(shell: Any, db: dbnb.Database, method: str, *args: Any, **kwargs: Any) -> Any:
    repo = shell(Reading, db)
    result = getattr(repo, method)(*args, **kwargs)
    return await result if shell is dbnb.AsyncRepository else result


async def test_to_arrow_has_the_exact_types_and_values(shell: Any, db: dbnb.Database) -> None:
    table = await call(shell, db, "to_arrow", sensor__in=["a", "b", "c", "gone"],
                       order_by="sensor")
    assert isinstance(table, pa.Table)
    assert {f.name: f.type for f in table.schema} == EXPECTED_ARROW
    rows = table.to_pylist()
    assert [r["sensor"] for r in rows] == ["a", "b", "c"]  # soft-deleted row hidden
    a, b, c = rows
    assert a["value"] == Decimal("12345678.91") and c["value"] == Decimal("-0.01")
    assert b["value"] is None and b["tags"] is None
    assert b["doc"] == "null"  # SQLAlchemy stores None in a JSON column as JSON null
    assert a["tags"] == ["x", "y, z"] and c["tags"] == []
    assert json.loads(a["doc"]) == {"k": [1, {"n": None}]}
    assert a["uid"] == str(FIXED_UUID)
    assert a["created_at"].tzinfo is not None


async def test_to_polars_has_the_exact_types_and_values(shell: Any, db: dbnb.Database) -> None:
    frame = await call(shell, db, "to_polars", sensor__in=["a", "b", "c"], order_by="sensor")
    assert isinstance(frame, pl.DataFrame)
    assert dict(frame.schema) == EXPECTED_POLARS
    assert frame["value"].to_list() == [Decimal("12345678.91"), None, Decimal("-0.01")]
    assert frame["tags"].to_list() == [["x", "y, z"], None, []]
    # JSON of mixed shapes stays exact as its text (polars would need one struct type).
    assert [json.loads(d) for d in frame["doc"].to_list()] == [
        {"k": [1, {"n": None}]}, None, {"k": "text"}
    ]
    stamp = frame["created_at"][0]
    assert stamp.tzinfo is not None and abs(stamp - dt.datetime.now(dt.UTC)) < dt.timedelta(
        minutes=10
    )


async def test_arrow_and_pandas_reads_agree(shell: Any, db: dbnb.Database) -> None:
    table = await call(shell, db, "to_arrow", order_by="id", columns=["id", "value", "ratio"])
    frame = await call(shell, db, "to_frame", order_by="id", columns=["id", "value", "ratio"],
                       dtype_backend="pyarrow")
    assert table.num_rows == len(frame) == 253
    for name in ("id", "value", "ratio"):
        assert table.column(name).equals(pa.chunked_array(frame[name].array._pa_array)), name


async def test_uuid_as_uuid_gives_arrows_uuid_type(shell: Any, db: dbnb.Database) -> None:
    table = await call(shell, db, "to_arrow", sensor="a", columns=["uid"], uuid_as="uuid")
    assert table.schema.field("uid").type == pa.uuid()
    assert table.column("uid")[0].as_py() == FIXED_UUID


async def test_json_as_string_is_plain_text(shell: Any, db: dbnb.Database) -> None:
    table = await call(shell, db, "to_arrow", sensor="a", columns=["doc"], json_as="string")
    assert table.schema.field("doc").type == pa.string()


async def test_empty_results_keep_their_types(shell: Any, db: dbnb.Database) -> None:
    table = await call(shell, db, "to_arrow", sensor="nobody")
    assert table.num_rows == 0 and {f.name: f.type for f in table.schema} == EXPECTED_ARROW
    frame = await call(shell, db, "to_polars", sensor="nobody")
    assert frame.height == 0 and dict(frame.schema) == EXPECTED_POLARS


async def test_partitioned_arrow_read_is_the_one_stream_read(shell: Any, db: dbnb.Database) -> None:
    one = await call(shell, db, "to_arrow", order_by="id")
    two = await call(shell, db, "to_arrow", order_by="id", partitions=2)
    assert two.equals(one)
    polars_two = await call(shell, db, "to_polars", partitions=2)
    assert sorted(polars_two["id"].to_list()) == one.column("id").to_pylist()


async def collect(shell: Any, db: dbnb.Database, **kwargs: Any) -> list[Any]:
    repo = shell(Reading, db)
    if shell is dbnb.AsyncRepository:
        return [chunk async for chunk in repo.iter_frames(**kwargs)]
    return list(repo.iter_frames(**kwargs))


@pytest.mark.parametrize("backend", ["arrow", "polars"])
async def test_iter_frames_yields_the_backends_frames(
    shell: Any, db: dbnb.Database, backend: str
) -> None:
    chunks = await collect(shell, db, chunksize=100, order_by="id", backend=backend)
    kind = pa.Table if backend == "arrow" else pl.DataFrame
    assert all(isinstance(c, kind) for c in chunks)
    assert [len(c) for c in chunks] == [100, 100, 53]
    whole = await call(shell, db, "to_arrow", order_by="id")
    ids = [i for c in chunks for i in (c.column("id").to_pylist() if backend == "arrow"
                                       else c["id"].to_list())]
    assert ids == whole.column("id").to_pylist()
    empty = await collect(shell, db, sensor="nobody", backend=backend)
    assert len(empty) == 1 and len(empty[0]) == 0
    schema = empty[0].schema
    assert (schema.field("value").type == pa.decimal128(12, 2) if backend == "arrow"
            else schema["value"] == pl.Decimal(12, 2))


async def test_db_arrow_and_polars_take_sql_and_parameters(db: dbnb.Database) -> None:
    sql = "SELECT sensor, value, now() AS at FROM readings_ap WHERE sensor = :s"
    table = db.arrow(sql, s="a")
    assert table.to_pylist()[0]["value"] == Decimal("12345678.91")
    assert table.schema.field("at").type == pa.timestamp("us", tz="UTC")
    frame = db.polars(sql, s="a")
    assert frame["value"].to_list() == [Decimal("12345678.91")]
    atable = await db.asyncio.arrow(sql, s="a")
    assert atable.column_names == table.column_names
    assert atable.column("sensor").equals(table.column("sensor"))
    assert atable.schema.field("at").type == pa.timestamp("us", tz="UTC")
    aframe = await db.asyncio.polars(sql, s="a")
    assert aframe["sensor"].to_list() == ["a"]
    # asyncpg does not tell a numeric's precision for SQL text: exact values with decimal=True
    exact = await db.asyncio.arrow("SELECT value FROM readings_ap WHERE sensor = 'a'",
                                   decimal=True)
    assert [Decimal(v) for v in exact.column("value").to_pylist()] == [Decimal("12345678.91")]


async def test_scripts_and_returning_come_back_in_the_backend(db: dbnb.Database) -> None:
    script = ("INSERT INTO readings_ap (sensor, value) VALUES ('r', 3.5) RETURNING id, value; ")
    table = db.arrow("CREATE TEMP TABLE t_ap AS SELECT 1 AS x; " + script)
    assert table.column("value").to_pylist() == [Decimal("3.50")]
    frame = await db.asyncio.polars(script)
    assert frame["value"].to_list() == [Decimal("3.50")]
    db.execute("DELETE FROM readings_ap WHERE sensor = 'r'")
    shown = db.arrow("SHOW TimeZone")  # not COPY-able: rows fetched, then Arrow
    assert shown.column_names == ["TimeZone"]


async def test_types_beyond_the_model(db: dbnb.Database) -> None:
    sql = (
        "SELECT 1.5::real AS f4, '1 year 2 mons 3 days 00:00:01'::interval AS iv, "
        "'\\x00ff'::bytea AS b, '12:30'::time AS t, date '2024-02-29' AS d, "
        "ARRAY[[1, 2], [3, 4]] AS grid, 3.14159::numeric AS free, "
        "ARRAY[1.5]::numeric[] AS nums"
    )
    table = db.arrow(sql)
    types = {f.name: f.type for f in table.schema}
    assert types["f4"] == pa.float32() and types["b"] == pa.binary()
    assert types["iv"] == pa.month_day_nano_interval() and types["d"] == pa.date32()
    assert types["grid"] == pa.list_(pa.list_(pa.int32())) and types["free"] == pa.float64()
    row = table.to_pylist()[0]
    assert (row["iv"].months, row["iv"].days, row["iv"].nanoseconds) == (14, 3, 10**9)
    assert row["grid"] == [[1, 2], [3, 4]] and json.loads(row["nums"]) == [1.5]
    assert db.arrow("SELECT 3.14159::numeric AS free", decimal=True).to_pylist() == [
        {"free": "3.14159"}  # exact: the server's text
    ]
    frame = await db.asyncio.polars(sql)
    assert frame["iv"].to_list() == [{"months": 14, "days": 3, "nanoseconds": 10**9}]
    assert frame.schema["t"] == pl.Time and frame["b"].to_list() == [b"\x00\xff"]


async def test_refusals_before_anything_is_sent(db: dbnb.Database) -> None:
    repo = dbnb.Repository(Reading, db)
    with pytest.raises(dbnb.FrameError, match="dtype_backend"):
        list(repo.iter_frames(backend="arrow", dtype_backend="pyarrow"))
    with pytest.raises(dbnb.FrameError, match="backend='excel'"):
        list(repo.iter_frames(backend="excel"))  # type: ignore[arg-type]
    with pytest.raises(dbnb.FrameError, match="polars has no UUID"):
        list(repo.iter_frames(backend="polars", uuid_as="uuid"))
    with pytest.raises(dbnb.FrameError, match="distinct column names"):
        db.polars("SELECT 1 AS x, 2 AS x")
    assert db.arrow("SELECT 1 AS x, 2 AS x").column_names == ["x", "x"]


def test_without_polars_the_error_names_the_extra(
    db: dbnb.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "polars", None)  # as if it were not installed
    with pytest.raises(dbnb.MissingExtra, match=r"pip install 'dbnb\[polars\]'") as caught:
        dbnb.Repository(Reading, db).to_polars()
    assert isinstance(caught.value, ImportError) and caught.value.__cause__ is not None
