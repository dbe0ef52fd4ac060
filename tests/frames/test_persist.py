"""Tables from frames: types from dtypes, primary key, if_exists, one transaction, both shells."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import Text

import dbnb

TYPES_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
FROM pg_attribute a WHERE a.attrelid = to_regclass(:t) AND a.attnum > 0 ORDER BY a.attnum
"""


def columns_of(db: dbnb.Database, table: str) -> dict[str, tuple[str, bool]]:
    return {name: (kind, notnull) for name, kind, notnull in db.execute(TYPES_SQL, t=table)}


def sample() -> pd.DataFrame:
    paris = pd.to_datetime(["2026-01-01 10:00", "2026-06-01 12:30", None]).tz_localize(
        "Europe/Paris"
    )
    return pd.DataFrame(
        {
            "id": [1, 2, 3],
            "small": pd.array([1, None, 3], dtype="Int16"),
            "maybe": pd.array([10, None, 30], dtype="Int64"),
            "ratio": [0.5, None, 1.5],
            "flag": [True, False, True],
            "maybe_flag": pd.array([True, None, False], dtype="boolean"),
            "name": ["ana", None, "bo"],
            "kind": pd.Series(["a", "b", "a"], dtype="category"),
            "price": pd.array(
                [Decimal("12.50"), None, Decimal("3.10")], dtype=pd.ArrowDtype(pa.decimal128(12, 2))
            ),
            "amount": [Decimal("1.5"), Decimal("100.25"), None],
            "seen": pd.to_datetime(["2026-01-01 10:00", None, "2026-03-01 00:00"]),
            "at": paris,
            "day": [dt.date(2026, 1, 1), None, dt.date(2026, 1, 3)],
            "ref": [uuid.UUID(int=1), None, uuid.UUID(int=3)],
            "tags": [["a", "b"], [], None],
            "scores": [[1, 2], [3], None],
            "meta": [{"a": 1}, {"b": [1, 2]}, None],
        }
    )


EXPECTED = {
    "id": ("bigint", True),
    "small": ("smallint", False),
    "maybe": ("bigint", False),
    "ratio": ("double precision", False),
    "flag": ("boolean", False),
    "maybe_flag": ("boolean", False),
    "name": ("text", False),
    "kind": ("text", False),
    "price": ("numeric(12,2)", False),
    "amount": ("numeric(38,2)", False),
    "seen": ("timestamp without time zone", False),
    "at": ("timestamp with time zone", False),
    "day": ("date", False),
    "ref": ("uuid", False),
    "tags": ("text[]", False),
    "scores": ("bigint[]", False),
    "meta": ("jsonb", False),
}


@pytest.fixture(params=["sync", "async"])
def create(request: pytest.FixtureRequest, db: dbnb.Database, adb: dbnb.AsyncDatabase) -> Any:
    """db.create_table_from_frame, or its awaitable twin on db.asyncio, called the same way."""
    if request.param == "sync":
        return db.create_table_from_frame

    async def awaited(*args: Any, **kwargs: Any) -> Any:
        return await adb.create_table_from_frame(*args, **kwargs)

    return awaited


async def call(create: Any, *args: Any, **kwargs: Any) -> Any:
    done = create(*args, **kwargs)
    return await done if hasattr(done, "__await__") else done


async def test_types_come_from_the_dtypes_and_values_round_trip(
    db: dbnb.Database, create: Any
) -> None:
    db.execute("DROP TABLE IF EXISTS typed")
    done = await call(create, "typed", sample(), primary_key="id")
    assert done.action == "created" and done.rows == 3 and done.primary_key == ("id",)
    assert columns_of(db, "typed") == EXPECTED
    assert dict((n, t) for n, t, _ in done.columns)["price"] == "numeric(12, 2)"
    back = db.frame("SELECT * FROM typed ORDER BY id", decimal=True)
    assert back["maybe"].tolist()[0] == 10 and pd.isna(back["maybe"].iloc[1])
    assert str(back["maybe"].dtype) == "Int64" and str(back["small"].dtype) == "Int16"
    assert back["price"].iloc[0] == Decimal("12.50") and back["amount"].iloc[1] == Decimal("100.25")
    assert back["at"].iloc[0] == pd.Timestamp("2026-01-01 09:00", tz="UTC")
    assert back["seen"].iloc[2] == pd.Timestamp("2026-03-01")
    assert back["tags"].tolist()[:2] == [["a", "b"], []] and back["scores"].iloc[0] == [1, 2]
    assert back["meta"].iloc[1] == {"b": [1, 2]} and back["ref"].iloc[2] == str(uuid.UUID(int=3))
    assert back["kind"].tolist() == ["a", "b", "a"]


async def test_if_exists_fail_replace_append(db: dbnb.Database, create: Any) -> None:
    db.execute("DROP TABLE IF EXISTS sales")
    first = pd.DataFrame({"id": [1, 2], "amount": [1.5, 2.5]})
    await call(create, "sales", first, primary_key="id")
    with pytest.raises(dbnb.FrameError, match="already exists; pass if_exists='replace'"):
        await call(create, "sales", first)
    more = await call(create, "sales", pd.DataFrame({"id": [3], "amount": [3.5]}),
                      if_exists="append")
    assert more.action == "appended" and more.rows == 1 and more.primary_key == ("id",)
    assert db.execute("SELECT count(*) FROM sales")[0][0] == 3
    other = pd.DataFrame({"code": ["x"], "qty": pd.array([None], dtype="Int32")})
    replaced = await call(create, "sales", other, if_exists="replace")
    assert replaced.action == "replaced"
    assert columns_of(db, "sales") == {"code": ("text", False), "qty": ("integer", False)}
    # The old table's cached plans are gone: reading the new one works on both drivers.
    assert (await db.asyncio.frame("SELECT * FROM sales"))["code"].tolist() == ["x"]
    with pytest.raises(dbnb.FrameError, match=r"the primary key \(code\)|not \(code\)"):
        await call(create, "sales", other, primary_key="code", if_exists="append")


async def test_a_failed_load_leaves_no_table(db: dbnb.Database, create: Any) -> None:
    db.execute("DROP TABLE IF EXISTS dupes")
    with pytest.raises(dbnb.UniqueViolation):
        await call(create, "dupes", pd.DataFrame({"id": [1, 1]}), primary_key="id")
    assert db.execute("SELECT to_regclass('dupes')")[0][0] is None
    db.execute("DROP TABLE IF EXISTS kept; CREATE TABLE kept (id int)")
    with pytest.raises(dbnb.UniqueViolation):
        await call(create, "kept", pd.DataFrame({"id": [1, 1]}), primary_key="id",
                   if_exists="replace")
    assert columns_of(db, "kept") == {"id": ("integer", False)}  # the old table is back


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({0: [1]}), "column 0 is not a string"),
        (pd.DataFrame({"x" * 64: [1]}), "64 bytes long; PostgreSQL keeps 63"),
        (pd.DataFrame([[1, 2]], columns=["a", "a"]), "column 'a' appears twice"),
        (pd.DataFrame({"wait": pd.to_timedelta([1], unit="s")}), "column 'wait'.*durations"),
        (pd.DataFrame({"blob": [b"x"]}), "column 'blob'.*bytes"),
        (pd.DataFrame({"empty": [None, None]}), "column 'empty' holds only missing values"),
        (pd.DataFrame({"mixed": [1, "a"]}), r"column 'mixed' mixes values.*\(int, str\)"),
        (pd.DataFrame({"p": pd.period_range("2026-01", periods=1, freq="M")}), "column 'p'"),
    ],
)
async def test_bad_names_and_dtypes_name_the_column(
    db: dbnb.Database, create: Any, frame: pd.DataFrame, message: str
) -> None:
    with pytest.raises(dbnb.FrameError, match=message):
        await call(create, "bad", frame)
    assert db.execute("SELECT to_regclass('bad')")[0][0] is None


async def test_arguments_are_checked_before_anything_is_sent(create: Any) -> None:
    frame = pd.DataFrame({"id": [1, None]})
    with pytest.raises(dbnb.FrameError, match="primary key column 'id' has missing values"):
        await call(create, "t1", frame, primary_key="id")
    with pytest.raises(dbnb.FrameError, match="'nope' is not a column of the frame"):
        await call(create, "t1", frame, primary_key="nope")
    with pytest.raises(dbnb.FrameError, match="if_exists='sometimes'"):
        await call(create, "t1", frame, if_exists="sometimes")
    with pytest.raises(dbnb.FrameError, match="table name ''"):
        await call(create, "", frame)


async def test_types_override_a_named_index_and_a_schema(db: dbnb.Database, create: Any) -> None:
    db.execute("DROP SCHEMA IF EXISTS mart CASCADE; CREATE SCHEMA mart")
    frame = pd.DataFrame({"empty": [None, None], "n": [1, 2]},
                         index=pd.Index(["a", "b"], name="code"))
    done = await call(create, "Daily Sales", frame, schema="mart", types={"empty": Text})
    assert done.table == "mart.Daily Sales" and done.rows == 2
    assert columns_of(db, 'mart."Daily Sales"') == {
        "code": ("text", False), "empty": ("text", False), "n": ("bigint", False),
    }
