"""Arrow and polars in: from_frame (append and upsert) and create_table_from_frame, no pandas.

On both shells against the real server: what is stored is what the frame held (decimals,
time zones, lists, JSON, uuids, categories), the same as the pandas path stores for the same
data; defaults fill absent columns; the refusals are those of the pandas path, said before
anything is sent.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from sqlalchemy import Numeric, String
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

import dbnb
from dbnb import Base, Timestamps, UUIDPrimaryKey

UTC = dt.UTC


class Parcel(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "parcels_in"
    code: Mapped[str] = mapped_column(String(20), unique=True)
    weight: Mapped[Decimal | None] = mapped_column(Numeric(8, 3))
    count: Mapped[int | None]
    sent_at: Mapped[dt.datetime | None]
    day: Mapped[dt.date | None]
    tags: Mapped[list[str] | None] = mapped_column(ARRAY(String))
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    ref: Mapped[uuid.UUID | None]
    ratio: Mapped[float | None]
    ok: Mapped[bool | None]


REF = uuid.UUID("0191a2b3-c4d5-7e6f-8a9b-0c1d2e3f4a5b")
DATA: dict[str, list[Any]] = {
    "code": ["p1", "p2", "p3"],
    "weight": [Decimal("1.250"), None, Decimal("-99999.999")],
    "count": [3, None, 2_000_000_000],
    "sent_at": [dt.datetime(2024, 3, 1, 12, 30, tzinfo=UTC), None,
                dt.datetime(2024, 3, 2, 1, 2, 3, 456789, tzinfo=UTC)],
    "day": [dt.date(2024, 2, 29), None, dt.date(1999, 12, 31)],
    "tags": [["a", "b, c"], None, []],
    "meta": [{"k": 1}, None, {"k": 2}],
    "ref": [str(REF), None, str(REF)],
    "ratio": [0.5, None, float("inf")],
    "ok": [True, None, False],
}
COLUMNS = list(DATA)


def polars_frame() -> pl.DataFrame:
    return pl.DataFrame(DATA, schema_overrides={"weight": pl.Decimal(8, 3)})


def arrow_table() -> pa.Table:
    return polars_frame().to_arrow()


def pandas_frame() -> pd.DataFrame:
    frame = pd.DataFrame(DATA)
    frame["count"] = frame["count"].astype("Int64")
    return frame


@pytest.fixture(scope="module", autouse=True)
def _tables(db: dbnb.Database) -> Iterator[None]:
    Base.metadata.create_all(db.engine, tables=[Parcel.__table__])  # type: ignore[list-item]
    yield
    db.execute("DROP TABLE parcels_in")


@pytest.fixture(autouse=True)
def _empty(db: dbnb.Database) -> None:
    db.execute("DELETE FROM parcels_in")


def stored(db: dbnb.Database) -> list[tuple[Any, ...]]:
    cols = ", ".join(COLUMNS)
    return [tuple(r) for r in db.execute(f"SELECT {cols} FROM parcels_in ORDER BY code")]


async def load(shell: Any, db: dbnb.Database, frame: Any, **kwargs: Any) -> int:
    repo = shell(Parcel, db)
    done = repo.from_frame(frame, **kwargs)
    return int(await done if shell is dbnb.AsyncRepository else done)


@pytest.mark.parametrize("kind", ["polars", "arrow"])
async def test_polars_and_arrow_store_what_pandas_stores(
    shell: Any, db: dbnb.Database, kind: str
) -> None:
    assert await load(shell, db, pandas_frame()) == 3
    by_pandas = stored(db)
    db.execute("DELETE FROM parcels_in")
    frame = polars_frame() if kind == "polars" else arrow_table()
    assert await load(shell, db, frame) == 3
    rows = stored(db)
    assert rows == by_pandas
    p1 = rows[0]
    assert p1[1] == Decimal("1.250") and p1[3] == dt.datetime(2024, 3, 1, 12, 30, tzinfo=UTC)
    assert p1[5] == ["a", "b, c"] and p1[6] == {"k": 1} and p1[7] == REF
    assert rows[2][8] == float("inf") and rows[2][2] == 2_000_000_000
    ids = db.execute("SELECT count(DISTINCT id), min(created_at) > now() - interval '1 hour' "
                     "FROM parcels_in")
    assert ids == [(3, True)]  # client-side uuid4 default and server-side timestamps


async def test_upsert_from_polars(shell: Any, db: dbnb.Database) -> None:
    await load(shell, db, polars_frame())
    change = pl.DataFrame({"code": ["p1", "p9"], "count": [42, 7]})
    assert await load(shell, db, change, on_conflict="update", on=["code"]) == 2
    counts = dict(db.execute("SELECT code, count FROM parcels_in ORDER BY code"))
    assert counts == {"p1": 42, "p2": None, "p3": 2_000_000_000, "p9": 7}
    again = pa.table({"code": ["p1"], "count": [0]})
    assert await load(shell, db, again, on_conflict="ignore", on=["code"]) == 0


async def test_naive_datetimes_need_naive_as(shell: Any, db: dbnb.Database) -> None:
    naive = pl.DataFrame({"code": ["n1"], "sent_at": [dt.datetime(2024, 6, 1, 12, 0)]})
    with pytest.raises(dbnb.FrameError, match="naive datetimes cannot go into timestamptz"):
        await load(shell, db, naive)
    assert await load(shell, db, naive, naive_as="Europe/Paris") == 1
    assert db.execute("SELECT sent_at FROM parcels_in") == [
        (dt.datetime(2024, 6, 1, 10, 0, tzinfo=UTC),)
    ]
    other_zone = pl.DataFrame({"code": ["n2"], "sent_at": [dt.datetime(2024, 6, 1, 12, 0)]}
                              ).with_columns(pl.col("sent_at").dt.replace_time_zone("Asia/Tokyo"))
    await load(shell, db, other_zone)
    assert db.execute("SELECT sent_at FROM parcels_in WHERE code = 'n2'") == [
        (dt.datetime(2024, 6, 1, 3, 0, tzinfo=UTC),)
    ]


@pytest.mark.parametrize(("frame", "says"), [
    (pl.DataFrame({"code": ["x"], "colour": ["red"]}), "the frame has columns the table does not"),
    (pl.DataFrame({"code": [1]}), "(text): takes strings, got int64"),
    (pl.DataFrame({"code": ["x"], "count": [2**40]}), "out of range for integer"),
    (pl.DataFrame({"code": ["x"], "count": [1.5]}), "values with a fraction"),
    (pl.DataFrame({"code": ["x"], "tags": ["ab"]}), "(array): takes lists"),
    (pl.DataFrame({"code": ["x"], "ok": ["yes"]}), "(boolean): expected booleans"),
    (pl.DataFrame({"code": ["x"], "day": [dt.datetime(2024, 1, 1, 10)]}),
     "(date): datetimes with a time of day"),
    (pl.DataFrame({"code": ["x"]}).lazy(), "collect a LazyFrame first"),
    (pa.table({"weight": [Decimal(1)]}), "NOT NULL columns without a default are missing"),
])
async def test_refusals_name_the_column_and_write_nothing(
    shell: Any, db: dbnb.Database, frame: Any, says: str
) -> None:
    with pytest.raises(dbnb.FrameError) as caught:
        await load(shell, db, frame)
    assert says in str(caught.value)
    assert db.execute("SELECT count(*) FROM parcels_in") == [(0,)]


async def test_categories_and_string_views_are_text(shell: Any, db: dbnb.Database) -> None:
    frame = pl.DataFrame({"code": pl.Series(["c1", "c2"], dtype=pl.Categorical)})
    await load(shell, db, frame)
    viewed = pa.table({"code": pa.array(["c3"], pa.string_view())})
    await load(shell, db, viewed)
    assert [r[0] for r in db.execute("SELECT code FROM parcels_in ORDER BY code")] == [
        "c1", "c2", "c3"
    ]


def test_tables_from_polars_and_arrow(db: dbnb.Database) -> None:
    frame = polars_frame().with_columns(
        pl.Series("n", [1, None, 3], dtype=pl.Int32), pl.col("code").cast(pl.Categorical)
    ).drop("ref", "meta")
    done = db.create_table_from_frame("from_polars", frame, primary_key="code")
    types = {name: kind for name, kind, _ in done.columns}
    assert types == {
        "code": "text", "weight": "numeric(8, 3)", "count": "bigint",
        "sent_at": "timestamp with time zone", "day": "date", "tags": "text[]",
        "ratio": "double precision", "ok": "boolean", "n": "integer",
    }
    assert done.rows == 3 and done.primary_key == ("code",)
    assert db.execute("SELECT weight, n FROM from_polars ORDER BY code") == [
        (Decimal("1.250"), 1), (None, None), (Decimal("-99999.999"), 3)
    ]
    table = pa.table({"k": [1, 2], "doc": [{"a": 1}, {"a": None}],
                      "grid": [[[1, 2]], [[3, 4]]]})
    made = db.create_table_from_frame("from_arrow", table, if_exists="replace")
    assert {n: k for n, k, _ in made.columns} == {"k": "bigint", "doc": "jsonb", "grid": "jsonb"}
    assert db.execute("SELECT doc, grid FROM from_arrow ORDER BY k")[1] == (
        {"a": None}, [[3, 4]]
    )
    with pytest.raises(dbnb.FrameError, match="primary key column 'n' has missing values"):
        db.create_table_from_frame("bad_key", frame, primary_key="n")
    with pytest.raises(dbnb.FrameError, match="Arrow type duration"):
        db.create_table_from_frame("bad_type", pl.DataFrame({"d": [dt.timedelta(1)]}))
    assert db.execute("SELECT to_regclass('bad_key'), to_regclass('bad_type')") == [
        (None, None)
    ]


async def test_async_table_from_polars(db: dbnb.Database) -> None:
    done = await db.asyncio.create_table_from_frame(
        "from_polars_async", pl.DataFrame({"x": [1, 2]}), if_exists="replace"
    )
    assert done.rows == 2 and db.execute("SELECT sum(x) FROM from_polars_async") == [(3,)]


async def test_chunked_tables_and_arrow_extension_types(shell: Any, db: dbnb.Database) -> None:
    def batch(codes: list[str], refs: list[uuid.UUID | None], docs: list[str | None]) -> Any:
        return pa.RecordBatch.from_arrays([
            pa.array(codes).dictionary_encode(),
            pa.ExtensionArray.from_storage(
                pa.uuid(), pa.array([r.bytes if r else None for r in refs], pa.binary(16))),
            pa.ExtensionArray.from_storage(pa.json_(pa.string()), pa.array(docs)),
            pa.array([1, None] if len(codes) == 2 else [3], pa.int32()),
        ], names=["code", "ref", "meta", "count"])

    table = pa.Table.from_batches([batch(["k1", "k2"], [REF, None], ['{"a": [1]}', None]),
                                   batch(["k3"], [REF], ["null"])])
    assert table.column("code").num_chunks == 2
    assert await load(shell, db, table) == 3
    rows = db.execute("SELECT code, ref, meta, count FROM parcels_in ORDER BY code")
    assert rows == [("k1", REF, {"a": [1]}, 1), ("k2", None, None, None), ("k3", REF, None, 3)]
    chunked = pl.concat([polars_frame().slice(0, 1), polars_frame().slice(1, 2)], rechunk=False)
    assert chunked.n_chunks() == 2
    db.execute("DELETE FROM parcels_in")
    await load(shell, db, chunked)
    assert [r[0] for r in stored(db)] == ["p1", "p2", "p3"]
