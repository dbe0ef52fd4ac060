"""Loading frames: write_frame / awrite_frame through COPY, every from_frame rule, both shells."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Double,
    Identity,
    Index,
    MetaData,
    Numeric,
    SmallInteger,
    Table,
    Text,
    Uuid,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import dbnb

metadata = MetaData()
products = Table(
    "products",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("sku", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("qty", SmallInteger),
    Column("price", Numeric(12, 2)),
    Column("weight", Double),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), onupdate=func.now()),
    Column("made", DateTime(timezone=False)),
    Column("day", Date),
    Column("token", Uuid, nullable=False, default=uuid.uuid4),
    Column("ext", Uuid, nullable=False, server_default=text("gen_random_uuid()")),
    Column("code", Text, nullable=False, default="X"),
    Column("doc", JSONB),
    Column("tags", ARRAY(Text)),
)


gadgets = Table(
    "gadgets",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("sku", Text, nullable=False),
    Column("name", Text),
    Column("deleted_at", DateTime(timezone=True)),
    Index("uq_gadgets_sku", "sku", unique=True, postgresql_where=text("deleted_at IS NULL")),
)
labels = Table(
    "labels",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("label", Text, nullable=False, default=func.upper("auto")),  # a client SQL default
    Column("token", Uuid, default=uuid.uuid4, server_default=text("gen_random_uuid()")),
)


class Base(DeclarativeBase):
    pass


class Reading(Base):
    __tablename__ = "readings"
    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[float] = mapped_column("reading_value")
    taken_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


@pytest.fixture(scope="module", autouse=True)
def _tables(db: dbnb.Database) -> Iterator[None]:
    metadata.create_all(db.engine)
    Base.metadata.create_all(db.engine)
    yield
    Base.metadata.drop_all(db.engine)
    metadata.drop_all(db.engine)


@pytest.fixture(autouse=True)
def _empty(db: dbnb.Database) -> None:
    db.execute("TRUNCATE products, readings, labels, gadgets RESTART IDENTITY")


@pytest.fixture(params=["sync", "async"])
def shell(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def load(db: dbnb.Database, shell: str, frame: pd.DataFrame, target: Any = products,
               **options: Any) -> int:
    """Load through the chosen shell in its own committed transaction."""
    if shell == "sync":
        with db.session() as s:
            return dbnb.write_frame(s, target, frame, **options)
    async with db.asyncio.session() as s:
        return await dbnb.awrite_frame(s, target, frame, **options)


def rows(db: dbnb.Database) -> list[Any]:
    with db.session() as s:
        return list(s.execute(select(products).order_by(products.c.sku)).mappings())


def basic(n: int = 3) -> pd.DataFrame:
    return pd.DataFrame({"sku": [f"s{i}" for i in range(n)], "name": [f"n{i}" for i in range(n)]})


async def test_append_converts_nulls_and_numpy_scalars(db: dbnb.Database, shell: str) -> None:
    frame = pd.DataFrame({
        "sku": ["a", "b", "c", "d"],
        "name": ['comma, "quote"\nline', "", "x", "y"],
        "qty": pd.array([1, None, -32768, 32767], dtype="Int16"),
        "price": [1.5, np.nan, 2.25, None],
        "weight": pd.Series([np.float32(0.5), None, np.int64(3), pd.NA], dtype=object),
        "made": [pd.Timestamp("2024-01-02 03:04:05.123456"), pd.NaT, None, pd.NaT],
        "day": [dt.date(2024, 2, 29), None, pd.NaT, dt.date(1970, 1, 1)],
        "doc": [{"k": [1, None]}, None, "text", 3],
        "tags": [["a", 'b"c', None], None, [], ["x,y"]],
        "active": pd.array([True, None, False, True], dtype="boolean"),
    })
    frame.loc[1, "active"] = False
    assert await load(db, shell, frame) == 4
    a, b, c, d = rows(db)
    assert a["name"] == 'comma, "quote"\nline'
    assert b["name"] == ""
    assert (a["qty"], b["qty"], c["qty"], d["qty"]) == (1, None, -32768, 32767)
    assert (a["price"], b["price"], c["price"], d["price"]) == (Decimal("1.50"), None,
                                                                Decimal("2.25"), None)
    assert (a["weight"], b["weight"], c["weight"], d["weight"]) == (0.5, None, 3.0, None)
    assert a["made"] == dt.datetime(2024, 1, 2, 3, 4, 5, 123456)
    assert b["made"] is None
    assert c["made"] is None
    assert (a["day"], b["day"], c["day"]) == (dt.date(2024, 2, 29), None, None)
    assert (a["doc"], b["doc"], c["doc"], d["doc"]) == ({"k": [1, None]}, None, "text", 3)
    assert (a["tags"], b["tags"], c["tags"], d["tags"]) == (["a", 'b"c', None], None, [],
                                                            ["x,y"])
    assert (a["active"], b["active"]) == (True, False)


async def test_absent_columns_get_their_defaults(db: dbnb.Database, shell: str) -> None:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    assert await load(db, shell, basic()) == 3
    loaded = rows(db)
    assert sorted(r["id"] for r in loaded) == [1, 2, 3]  # identity, from the server
    assert all(r["active"] is True and r["created_at"] > before for r in loaded)
    assert len({r["ext"] for r in loaded}) == 3  # gen_random_uuid() per row
    assert len({r["token"] for r in loaded}) == 3  # client-side uuid4 per row
    assert {r["code"] for r in loaded} == {"X"}


async def test_unknown_columns_are_named_with_the_table_columns(
    db: dbnb.Database, shell: str
) -> None:
    frame = basic().assign(colour="red", size=1)
    with pytest.raises(dbnb.FrameError) as info:
        await load(db, shell, frame)
    message = str(info.value)
    assert "colour, size" in message
    assert "sku, name, qty" in message
    assert rows(db) == []


async def test_missing_not_null_columns_fail_before_sending(
    db: dbnb.Database, shell: str
) -> None:
    with pytest.raises(dbnb.FrameError, match=r"NOT NULL.*: name;"):
        await load(db, shell, pd.DataFrame({"sku": ["a"]}))
    assert rows(db) == []


@pytest.mark.parametrize(
    ("column", "values", "pattern"),
    [
        ("qty", [1, 40_000], r"'qty': value 40000 is out of range for smallint"),
        ("qty", [1.0, 2.5], r"'qty' \(smallint\): values with a fraction"),
        ("qty", ["1", "2"], r"'qty' \(smallint\): expected integers"),
        ("active", ["yes", "no"], r"'active' \(boolean\): expected booleans"),
        ("day", [pd.Timestamp("2024-01-01 10:00"), None], r"'day' \(date\)"),
    ],
)
async def test_values_that_do_not_fit_name_the_column(
    db: dbnb.Database, shell: str, column: str, values: list[Any], pattern: str
) -> None:
    frame = basic(2).assign(**{column: values})
    with pytest.raises(dbnb.FrameError, match=pattern):
        await load(db, shell, frame)
    assert rows(db) == []


async def test_integral_floats_load_into_integer_columns(db: dbnb.Database, shell: str) -> None:
    frame = basic(3).assign(qty=[1.0, np.nan, 3.0])  # what pandas makes of ints with a gap
    await load(db, shell, frame)
    assert [r["qty"] for r in rows(db)] == [1, None, 3]


async def test_naive_datetimes_into_timestamptz_need_a_zone(
    db: dbnb.Database, shell: str
) -> None:
    naive = basic(1).assign(created_at=[pd.Timestamp("2024-07-01 12:00")])
    with pytest.raises(dbnb.FrameError, match="naive_as='UTC'"):
        await load(db, shell, naive)
    assert rows(db) == []
    await load(db, shell, naive, naive_as="Europe/Paris")
    assert rows(db)[0]["created_at"] == dt.datetime(2024, 7, 1, 10, 0, tzinfo=dt.UTC)


async def test_aware_datetimes_keep_their_instant(db: dbnb.Database, shell: str) -> None:
    tokyo = pd.to_datetime(["2024-01-01 09:00", "2024-01-01 10:00"]).tz_localize("Asia/Tokyo")
    await load(db, shell, basic(2).assign(created_at=tokyo, made=tokyo))
    first, second = rows(db)
    assert first["created_at"] == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert second["created_at"] == dt.datetime(2024, 1, 1, 1, tzinfo=dt.UTC)
    assert first["made"] == dt.datetime(2024, 1, 1)  # timestamp columns store UTC wall time


async def test_a_failing_load_writes_nothing(db: dbnb.Database, shell: str) -> None:
    await load(db, shell, basic(1))
    clash = pd.DataFrame({"sku": ["new1", "s0", "new2"], "name": ["a", "b", "c"]})
    with pytest.raises(dbnb.UniqueViolation):
        await load(db, shell, clash)
    assert [r["sku"] for r in rows(db)] == ["s0"]


async def test_failure_leaves_the_callers_transaction_usable(
    db: dbnb.Database, shell: str
) -> None:
    clash = pd.DataFrame({"sku": ["z", "z"], "name": ["a", "b"]})
    if shell == "sync":
        with db.session() as s:
            dbnb.write_frame(s, products, basic(1))
            with pytest.raises(dbnb.UniqueViolation):
                dbnb.write_frame(s, products, clash)
            dbnb.write_frame(s, products, basic(2).assign(sku=["p", "q"]))
    else:
        async with db.asyncio.session() as s:
            await dbnb.awrite_frame(s, products, basic(1))
            with pytest.raises(dbnb.UniqueViolation):
                await dbnb.awrite_frame(s, products, clash)
            await dbnb.awrite_frame(s, products, basic(2).assign(sku=["p", "q"]))
    assert [r["sku"] for r in rows(db)] == ["p", "q", "s0"]


async def test_upsert_updates_and_inserts(db: dbnb.Database, shell: str) -> None:
    await load(db, shell, basic(2).assign(qty=[1, 2]))
    change = pd.DataFrame({"sku": ["s1", "s9"], "name": ["renamed", "fresh"], "qty": [20, 90]})
    assert await load(db, shell, change, on_conflict="update", on=["sku"]) == 2
    by_sku = {r["sku"]: r for r in rows(db)}
    assert (by_sku["s0"]["name"], by_sku["s0"]["qty"]) == ("n0", 1)
    assert (by_sku["s1"]["name"], by_sku["s1"]["qty"]) == ("renamed", 20)
    assert (by_sku["s9"]["name"], by_sku["s9"]["qty"]) == ("fresh", 90)
    assert by_sku["s1"]["updated_at"] is not None  # onupdate=func.now() ran on updated rows
    assert by_sku["s0"]["updated_at"] is None
    assert by_sku["s9"]["updated_at"] is None


async def test_upsert_ignore_and_on_checks(db: dbnb.Database, shell: str) -> None:
    await load(db, shell, basic(2))
    again = pd.DataFrame({"sku": ["s0", "s5"], "name": ["other", "five"]})
    assert await load(db, shell, again, on_conflict="ignore", on=["sku"]) == 1
    assert {r["sku"]: r["name"] for r in rows(db)} == {"s0": "n0", "s1": "n1", "s5": "five"}
    with pytest.raises(dbnb.FrameError, match=r"on=.*not columns"):
        await load(db, shell, again, on_conflict="update", on=["nope"])
    with pytest.raises(dbnb.FrameError, match="on_conflict"):
        await load(db, shell, again, on_conflict="replace")
    with pytest.raises(dbnb.FrameError, match="on_conflict='update'"):
        await load(db, shell, again, on=["sku"])
    twice = pd.DataFrame({"sku": ["s0", "s0"], "name": ["a", "b"]})
    with pytest.raises(dbnb.QueryError):
        await load(db, shell, twice, on_conflict="update", on=["sku"])
    assert len(rows(db)) == 3


async def test_mapped_class_by_attribute_or_column_name(db: dbnb.Database, shell: str) -> None:
    frame = pd.DataFrame({"id": [1, 2], "value": [0.5, 1.5]})
    assert await load(db, shell, frame, target=Reading) == 2
    assert await load(db, shell, pd.DataFrame({"id": [3], "reading_value": [2.5]}),
                      target=Reading) == 1
    back = db.frame("SELECT id, reading_value, taken_at FROM readings ORDER BY id")
    assert back["reading_value"].tolist() == [0.5, 1.5, 2.5]
    assert back["taken_at"].notna().all()


async def test_a_read_frame_loads_back_as_it_is(db: dbnb.Database, shell: str) -> None:
    await load(db, shell, basic(3).assign(price=[1.25, None, 3.5], made=[pd.Timestamp(0)] * 3))
    for backend in (None, "pyarrow"):
        frame = db.frame("SELECT * FROM products ORDER BY sku", dtype_backend=backend)
        db.execute("TRUNCATE products")
        assert await load(db, shell, frame) == 3
        again = db.frame("SELECT * FROM products ORDER BY sku", dtype_backend=backend)
        pd.testing.assert_frame_equal(frame, again)


async def test_progress_bar_only_when_asked(
    db: dbnb.Database, shell: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await load(db, shell, basic(3))
    assert capsys.readouterr().err == ""
    await load(db, shell, basic(3).assign(sku=["a", "b", "c"]), progress=True)
    assert "loading products" in capsys.readouterr().err


async def test_instants_hold_whatever_the_session_time_zone(
    db: dbnb.Database, shell: str
) -> None:
    frame = basic(1).assign(created_at=[pd.Timestamp("2024-07-01 12:00", tz="America/New_York")])
    show = text("SHOW TimeZone")
    if shell == "sync":
        with db.session() as s:
            s.execute(text("SET LOCAL TimeZone = 'Asia/Kolkata'"))
            dbnb.write_frame(s, products, frame)
            zone = s.execute(show).scalar_one()
    else:
        async with db.asyncio.session() as s:
            await s.execute(text("SET LOCAL TimeZone = 'Asia/Kolkata'"))
            await dbnb.awrite_frame(s, products, frame)
            zone = (await s.execute(show)).scalar_one()
    assert zone == "Asia/Kolkata"  # put back after the load
    assert rows(db)[0]["created_at"] == dt.datetime(2024, 7, 1, 16, 0, tzinfo=dt.UTC)


async def test_client_sql_defaults_are_rendered_by_the_insert(
    db: dbnb.Database, shell: str
) -> None:
    assert await load(db, shell, pd.DataFrame({"id": [1, 2]}), target=labels) == 2
    with db.session() as s:
        got = s.execute(select(labels.c.label, labels.c.token).order_by(labels.c.id)).all()
    assert [g.label for g in got] == ["AUTO", "AUTO"]
    assert len({g.token for g in got}) == 2  # the server default, once per row


async def test_upsert_on_a_partial_unique_index(db: dbnb.Database, shell: str) -> None:
    """Soft-deletable tables key on ``WHERE deleted_at IS NULL`` indexes; upserts find them."""
    db.execute("INSERT INTO gadgets (sku, name, deleted_at) VALUES ('g1', 'old, deleted', now())")
    first = pd.DataFrame({"sku": ["g1", "g2"], "name": ["one", "two"]})
    assert await load(db, shell, first, target=gadgets, on_conflict="update", on=["sku"]) == 2
    again = pd.DataFrame({"sku": ["g1"], "name": ["uno"]})
    assert await load(db, shell, again, target=gadgets, on_conflict="update", on=["sku"]) == 1
    names = db.execute("SELECT name FROM gadgets ORDER BY id")
    assert [n for (n,) in names] == ["old, deleted", "uno", "two"]
