"""Reading frames: every row of the dtype table, on both shells (psycopg and asyncpg COPY)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import (
    ARRAY,
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Double,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
    Uuid,
    event,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, REAL, SMALLINT, VARCHAR
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, with_loader_criteria

import dbnb

metadata = MetaData()
kinds = Table(
    "kinds",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("i2", SMALLINT),
    Column("i4", Integer),
    Column("i8", BigInteger),
    Column("r4", REAL),
    Column("f8", Double),
    Column("num", Numeric(12, 2)),
    Column("anynum", Numeric),
    Column("flag", Boolean),
    Column("txt", Text),
    Column("vc", VARCHAR(20)),
    Column("tstz", DateTime(timezone=True)),
    Column("ts", DateTime(timezone=False)),
    Column("day", Date),
    Column("uid", Uuid),
    Column("doc", JSONB),
    Column("js", JSON),
    Column("ints", ARRAY(Integer)),
    Column("tags", ARRAY(Text)),
)

UID = uuid.UUID("12345678-1234-5678-1234-567812345678")
TSTZ = dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)
FULL: dict[str, Any] = {
    "id": 1, "i2": -32768, "i4": 2147483647, "i8": 9007199254740993, "r4": 1.5, "f8": 0.1,
    "num": Decimal("1234567890.12"), "anynum": Decimal("3.14159265358979323846264338327950288"),
    "flag": True, "txt": 'comma, "quote"\nnewline\ttab \\ back', "vc": "",
    "tstz": TSTZ, "ts": dt.datetime(2024, 1, 2, 3, 4, 5), "day": dt.date(1999, 12, 31),
    "uid": UID, "doc": {"a": [1, 2, {"b": None}]}, "js": [1, "x"], "ints": [1, None, 3],
    "tags": ["a,b", 'q"uote', None],
}
EMPTYISH: dict[str, Any] = {"id": 2}  # every other column NULL
WHOLE_SECOND: dict[str, Any] = {
    "id": 3, "tstz": dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC),
    "f8": float("nan"), "flag": False, "txt": "NULL", "vc": "\\N",
}

DEFAULT_DTYPES = {
    "id": "Int64", "i2": "Int16", "i4": "Int32", "i8": "Int64", "r4": "float32",
    "f8": "float64", "num": "float64", "anynum": "float64", "flag": "boolean",
    "txt": "string", "vc": "string", "tstz": "datetime64[us, UTC]", "ts": "datetime64[us]",
    "day": "datetime64[s]", "uid": "string", "doc": "object", "js": "object",
    "ints": "list<item: int32>[pyarrow]", "tags": "list<item: string>[pyarrow]",
}
ARROW_DTYPES = {
    "id": pa.int64(), "i2": pa.int16(), "i4": pa.int32(), "i8": pa.int64(),
    "r4": pa.float64(), "f8": pa.float64(), "num": pa.decimal128(12, 2),
    "anynum": pa.float64(), "flag": pa.bool_(), "txt": pa.string(), "vc": pa.string(),
    "tstz": pa.timestamp("us", tz="UTC"), "ts": pa.timestamp("us"), "day": pa.date32(),
    "uid": pa.string(), "ints": pa.list_(pa.int32()), "tags": pa.list_(pa.string()),
}


@pytest.fixture(scope="module", autouse=True)
def _kinds_table(db: dbnb.Database) -> Iterator[None]:
    metadata.create_all(db.engine)
    with db.session() as s:
        for row in (FULL, EMPTYISH, WHOLE_SECOND):
            s.execute(kinds.insert().values(**row))
    yield
    metadata.drop_all(db.engine)


@pytest.fixture(params=["sync", "async"])
def shell(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def read(db: dbnb.Database, shell: str, stmt: Any, **options: Any) -> pd.DataFrame:
    """Read through the chosen shell: psycopg Session or asyncpg AsyncSession."""
    if shell == "sync":
        with db.session() as s:
            return dbnb.read_frame(s, stmt, **options)
    async with db.asyncio.session() as s:
        return await dbnb.aread_frame(s, stmt, **options)


def by_id(frame: pd.DataFrame) -> dict[int, dict[str, Any]]:
    return {int(r["id"]): r for r in frame.to_dict("records")}


async def test_default_dtypes_follow_the_column_types(db: dbnb.Database, shell: str) -> None:
    frame = await read(db, shell, select(kinds).order_by(kinds.c.id))
    assert {k: str(v) for k, v in frame.dtypes.items()} == DEFAULT_DTYPES
    assert isinstance(frame["txt"].dtype, pd.StringDtype)
    assert frame["txt"].dtype.na_value is pd.NA  # the nullable `string`, not pandas 3's `str`


async def test_default_values_are_exact(db: dbnb.Database, shell: str) -> None:
    rows = by_id(await read(db, shell, select(kinds)))
    full = rows[1]
    assert full["i2"] == -32768
    assert full["i4"] == 2147483647
    assert full["i8"] == 9007199254740993  # above 2**53: no float on the way
    assert full["r4"] == 1.5
    assert full["f8"] == 0.1
    assert full["num"] == 1234567890.12
    assert full["flag"] is True
    assert full["txt"] == FULL["txt"]
    assert full["vc"] == ""
    assert full["tstz"] == pd.Timestamp(TSTZ)
    assert full["ts"] == pd.Timestamp("2024-01-02 03:04:05")
    assert full["day"] == pd.Timestamp("1999-12-31")
    assert full["uid"] == str(UID)
    assert full["doc"] == FULL["doc"]
    assert full["js"] == [1, "x"]
    assert full["ints"] == [1, None, 3]
    assert full["tags"] == ["a,b", 'q"uote', None]
    nulls = rows[2]
    assert all(pd.isna(v) for k, v in nulls.items() if k != "id")
    odd = rows[3]
    assert odd["tstz"] == pd.Timestamp("2024-05-06 07:08:09", tz="UTC")
    assert pd.isna(odd["f8"])
    assert odd["flag"] is False
    assert odd["txt"] == "NULL"  # a string, not a NULL marker
    assert odd["vc"] == "\\N"


async def test_pyarrow_backend(db: dbnb.Database, shell: str) -> None:
    frame = await read(db, shell, select(kinds).order_by(kinds.c.id), dtype_backend="pyarrow")
    for name, arrow_type in ARROW_DTYPES.items():
        assert frame[name].dtype == pd.ArrowDtype(arrow_type), name
    assert frame["doc"].dtype == object
    full = frame.iloc[0]
    assert full["num"] == Decimal("1234567890.12")
    assert full["day"] == dt.date(1999, 12, 31)
    assert frame["ints"].iloc[0] == [1, None, 3]


async def test_decimal_and_uuid_objects_on_request(db: dbnb.Database, shell: str) -> None:
    frame = await read(db, shell, select(kinds).order_by(kinds.c.id), decimal=True,
                       uuid_as="uuid")
    assert frame["num"].dtype == object
    assert frame["num"].iloc[0] == Decimal("1234567890.12")
    assert frame["anynum"].iloc[0] == FULL["anynum"]  # all 36 digits kept
    assert frame["uid"].dtype == object
    assert frame["uid"].iloc[0] == UID
    assert frame["num"].iloc[1] is None


@pytest.mark.parametrize("backend", [None, "pyarrow"])
async def test_empty_result_keeps_columns_and_dtypes(
    db: dbnb.Database, shell: str, backend: str | None
) -> None:
    full = await read(db, shell, select(kinds), dtype_backend=backend)
    empty = await read(db, shell, select(kinds).where(kinds.c.id < 0), dtype_backend=backend)
    assert len(empty) == 0
    assert list(empty.columns) == list(kinds.c.keys())
    assert empty.dtypes.to_dict() == full.dtypes.to_dict()


async def test_filters_ordering_and_bound_parameters(db: dbnb.Database, shell: str) -> None:
    stmt = (
        select(kinds.c.id, kinds.c.txt)
        .where(kinds.c.id.in_([1, 3]), kinds.c.txt.like("%quote%") | kinds.c.txt.is_(None)
               | (kinds.c.txt == "NULL"))
        .order_by(kinds.c.id.desc())
    )
    frame = await read(db, shell, stmt)
    assert frame["id"].tolist() == [3, 1]
    raw = await read(db, shell, "SELECT :p AS p, '50%' AS pct, count(*) AS n FROM kinds "
                     "WHERE id >= :low", params={"p": "it's", "low": 2})
    assert raw.to_dict("records") == [{"p": "it's", "pct": "50%", "n": 2}]
    assert str(raw["n"].dtype) == "Int64"  # count(*) is bigint, whatever SQLAlchemy says


async def test_repeated_column_names_are_kept(db: dbnb.Database, shell: str) -> None:
    frame = await read(db, shell, "SELECT 1 AS x, 'a' AS x")
    assert list(frame.columns) == ["x", "x"]
    assert [str(d) for d in frame.dtypes] == ["Int32", "string"]


async def test_session_time_zone_is_put_back(db: dbnb.Database, shell: str) -> None:
    if shell == "sync":
        with db.session() as s:
            s.execute(text("SET LOCAL TimeZone = 'Asia/Kolkata'"))
            frame = dbnb.read_frame(s, select(kinds.c.tstz).where(kinds.c.id == 1))
            zone = s.execute(text("SHOW TimeZone")).scalar_one()
    else:
        async with db.asyncio.session() as s:
            await s.execute(text("SET LOCAL TimeZone = 'Asia/Kolkata'"))
            frame = await dbnb.aread_frame(s, select(kinds.c.tstz).where(kinds.c.id == 1))
            zone = (await s.execute(text("SHOW TimeZone"))).scalar_one()
    assert zone == "Asia/Kolkata"
    assert frame["tstz"].iloc[0] == pd.Timestamp(TSTZ)


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str]
    deleted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


@pytest.fixture(scope="module")
def notes(db: dbnb.Database) -> Iterator[None]:
    Base.metadata.create_all(db.engine)
    with db.session() as s:
        s.add_all([Note(id=1, body="kept"), Note(id=2, body="gone", deleted_at=TSTZ)])
    yield
    Base.metadata.drop_all(db.engine)


def _hide_deleted(state: Any) -> None:
    if state.is_select and not state.execution_options.get("include_deleted", False):
        state.statement = state.statement.options(
            with_loader_criteria(Note, Note.deleted_at.is_(None))
        )


@pytest.mark.usefixtures("notes")
async def test_orm_hooks_apply_as_for_any_select(db: dbnb.Database, shell: str) -> None:
    """A soft-delete filter added by a do_orm_execute hook still filters the frame."""
    event.listen(Session, "do_orm_execute", _hide_deleted)
    try:
        frame = await read(db, shell, select(Note).order_by(Note.id))
        everything = await read(
            db, shell, select(Note).execution_options(include_deleted=True).order_by(Note.id)
        )
    finally:
        event.remove(Session, "do_orm_execute", _hide_deleted)
    assert frame["body"].tolist() == ["kept"]
    assert everything["body"].tolist() == ["kept", "gone"]
    assert list(frame.columns) == ["id", "body", "deleted_at"]


async def test_db_frame_on_both_shells(db: dbnb.Database) -> None:
    sql = "SELECT id, flag FROM kinds WHERE id <= :top ORDER BY id"
    frame = db.frame(sql, top=2)
    aframe = await db.asyncio.frame(sql, top=2)
    pd.testing.assert_frame_equal(frame, aframe)
    assert frame["flag"].tolist() == [True, pd.NA]
    arrow = db.frame("SELECT count(*) AS n FROM kinds", dtype_backend="pyarrow")
    assert arrow["n"].dtype == pd.ArrowDtype(pa.int64())


async def test_db_frame_refuses_statements_that_are_not_queries(db: dbnb.Database) -> None:
    with pytest.raises(dbnb.FrameError, match=r"db\.execute"):
        db.frame("DELETE FROM kinds")
    with pytest.raises(dbnb.FrameError, match="dtype_backend"):
        await db.asyncio.frame("SELECT 1", dtype_backend="numpy")  # type: ignore[arg-type]
    assert db.frame("SELECT count(*) AS n FROM kinds")["n"].iloc[0] == 3
    assert db.frame("-- a comment first\nSELECT 1 AS one")["one"].iloc[0] == 1


async def test_query_errors_are_dbnb_errors(db: dbnb.Database, shell: str) -> None:
    with pytest.raises(dbnb.QueryError):
        await read(db, shell, "SELECT 1 / (id - id) FROM kinds")
    with pytest.raises(dbnb.QueryError):
        await read(db, shell, "SELECT missing FROM kinds")


async def test_reads_commit_nothing_and_leave_the_session_usable(
    db: dbnb.Database, shell: str
) -> None:
    stmt = select(func.count()).select_from(kinds)
    if shell == "sync":
        with db.session() as s:
            s.execute(kinds.insert().values(id=99))
            assert dbnb.read_frame(s, stmt).iloc[0, 0] == 4  # sees its own transaction
            s.rollback()
            assert s.execute(stmt).scalar_one() == 3
    else:
        async with db.asyncio.session() as s:
            await s.execute(kinds.insert().values(id=99))
            assert (await dbnb.aread_frame(s, stmt)).iloc[0, 0] == 4
            await s.rollback()
            assert (await s.execute(stmt)).scalar_one() == 3
