"""Type fidelity beyond the basic columns: time, interval, bytea, inet, numeric, JSON and arrays.

Every value is compared with what it is in the database, on both shells (psycopg and asyncpg
COPY), with the default dtypes and the pyarrow backend, through iter_frames' streaming chunks
too, and on a result large enough to travel in several blocks.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

import dbnb

ROWS = """
INSERT INTO oddities VALUES
(1, '12:34:56.789012', '1 year 2 mons 3 days 04:05:06.789', '\\x00ff10'::bytea, '192.168.0.1/24',
 12345678901234.123456, '{"a": [1, 2, {"b": null}], "t": "x,y\\n\\"z\\""}', '{ "k" :
 1 }', ARRAY['a,b', 'q"uote', NULL, E'new\\nline', '', 'é ✓'], ARRAY[1, NULL, 3],
 ARRAY[1.5, NULL, -0.25]::float8[], ARRAY[true, false, NULL], ARRAY[1.5, 2]::numeric[],
 '12:00:00+02', ARRAY['2024-01-02 03:04:05+00']::timestamptz[]),
(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
(3, '00:00:00', '-1 mons +2 days -03:00:00.000001', ''::bytea, '::1', -0.000001, 'null',
 '[1, "x"]', '{}', '{}', '{}', '{}', '{}', '23:59:59.999999-11', '{}'),
(4, '23:59:59.999999', '100 hours', '\\x'::bytea || decode(repeat('ab', 300), 'hex'),
 '10.0.0.0/8', 0, '"text"', '3', ARRAY[NULL]::text[], ARRAY[2147483647, -2147483648],
 ARRAY['NaN']::float8[], ARRAY[false], ARRAY[NULL]::numeric[], NULL, NULL)
"""

ODD_COLUMNS = (
    "id int PRIMARY KEY, t time, iv interval, b bytea, ip inet, num numeric(20, 6), doc jsonb, "
    "js json, tags text[], ints int[], floats float8[], flags bool[], nums numeric[], "
    "tz timetz, stamps timestamptz[]"
)

DEFAULT_DTYPES = {
    "id": "Int32", "t": "object", "iv": "object", "b": "object",
    "ip": "string", "num": "float64", "doc": "object", "js": "object",
    "tags": "list<item: string>[pyarrow]", "ints": "list<item: int32>[pyarrow]",
    "floats": "list<item: double>[pyarrow]", "flags": "list<item: bool>[pyarrow]",
    "nums": "object", "tz": "string", "stamps": "object",
}
ARROW_DTYPES = {
    "id": pa.int32(), "t": pa.time64("us"),
    "b": pa.binary(), "ip": pa.string(), "tags": pa.list_(pa.string()),
    "ints": pa.list_(pa.int32()),
    "floats": pa.list_(pa.float64()), "flags": pa.list_(pa.bool_()), "tz": pa.string(),
}


@pytest.fixture(scope="module", autouse=True)
def _oddities(db: dbnb.Database) -> Iterator[None]:
    db.execute(f"CREATE TABLE oddities ({ODD_COLUMNS})")
    db.execute(ROWS)
    yield
    db.execute("DROP TABLE oddities")


@pytest.fixture(params=["sync", "async"])
def shell(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def read(db: dbnb.Database, shell: str, sql: str, **options: Any) -> pd.DataFrame:
    if shell == "sync":
        with db.session() as s:
            return dbnb.read_frame(s, sql, **options)
    async with db.asyncio.session() as s:
        return await dbnb.aread_frame(s, sql, **options)


def rows(frame: pd.DataFrame) -> dict[int, dict[str, Any]]:
    return {int(r["id"]): r for r in frame.to_dict("records")}


def _interval(months: int, days: int, micros: int) -> dict[str, int]:
    return {"months": months, "days": days, "nanoseconds": micros * 1000}


async def test_default_dtypes(db: dbnb.Database, shell: str) -> None:
    frame = await read(db, shell, "SELECT * FROM oddities ORDER BY id")
    assert {k: str(v) for k, v in frame.dtypes.items()} == DEFAULT_DTYPES
    assert "12:34:56.789012" in repr(frame) and "192.168.0.1/24" in frame._repr_html_()


async def test_default_values_are_exact(db: dbnb.Database, shell: str) -> None:
    got = rows(await read(db, shell, "SELECT * FROM oddities"))
    one, empty, three, four = got[1], got[2], got[3], got[4]
    assert one["t"] == dt.time(12, 34, 56, 789012)
    assert three["t"] == dt.time(0, 0) and four["t"] == dt.time(23, 59, 59, 999999)
    # Months and days stay apart from the time of day: never a 30-day month.
    assert isinstance(one["iv"], pd.DateOffset)
    assert one["iv"].kwds == _interval(14, 3, ((4 * 60 + 5) * 60 + 6) * 1_000_000 + 789_000)
    assert three["iv"].kwds == _interval(-1, 2, -(3 * 3600 * 1_000_000 + 1))
    assert four["iv"].kwds == _interval(0, 0, 100 * 3600 * 1_000_000)
    assert pd.Timestamp("2024-01-31") + one["iv"] == pd.Timestamp("2025-04-03 04:05:06.789")
    assert one["b"] == b"\x00\xff\x10" and three["b"] == b"" and four["b"] == b"\xab" * 300
    assert one["ip"] == "192.168.0.1/24" and three["ip"] == "::1"
    assert one["num"] == 12345678901234.123456 and three["num"] == -0.000001
    assert one["doc"] == {"a": [1, 2, {"b": None}], "t": 'x,y\n"z"'}
    assert one["js"] == {"k": 1} and three["js"] == [1, "x"] and four["js"] == 3
    assert three["doc"] is None and four["doc"] == "text"  # JSON null reads as None
    assert one["tags"] == ["a,b", 'q"uote', None, "new\nline", "", "é ✓"]
    assert one["ints"] == [1, None, 3] and four["ints"] == [2147483647, -2147483648]
    assert one["floats"] == [1.5, None, -0.25] and one["flags"] == [True, False, None]
    assert len(four["floats"]) == 1 and pd.isna(four["floats"][0])  # NaN stays a float
    assert one["nums"] == [1.5, 2] and four["nums"] == [None]
    assert one["stamps"] == ["2024-01-02T03:04:05+00:00"]
    assert three["tags"] == [] and four["tags"] == [None]
    assert one["tz"] == "12:00:00+02"
    assert all(v is None or pd.isna(v) for k, v in empty.items() if k != "id")


async def test_pyarrow_backend(db: dbnb.Database, shell: str) -> None:
    frame = await read(db, shell, "SELECT * FROM oddities ORDER BY id", dtype_backend="pyarrow")
    for name, arrow_type in ARROW_DTYPES.items():
        assert frame[name].dtype == pd.ArrowDtype(arrow_type), name
    assert frame["doc"].dtype == object and frame["nums"].dtype == object
    assert frame["iv"].dtype == object  # DateOffsets: pandas cannot show Arrow's interval type
    assert frame["iv"].iloc[2].kwds == _interval(-1, 2, -(3 * 3600 * 1_000_000 + 1))
    repr(frame)
    # asyncpg describes no typmod, so SQL text's numeric(20, 6) has no declared precision there.
    exact = pd.ArrowDtype(pa.decimal128(20, 6) if shell == "sync" else pa.float64())
    assert frame["num"].dtype == exact
    table = pa.Table.from_pandas(frame[[*ARROW_DTYPES, "num"]], preserve_index=False)
    one, empty, three = (table.slice(i, 1).to_pylist()[0] for i in range(3))
    assert one["t"] == dt.time(12, 34, 56, 789012)
    assert one["b"] == b"\x00\xff\x10" and three["b"] == b""
    if shell == "sync":
        assert one["num"] == Decimal("12345678901234.123456")
    assert one["tags"] == ["a,b", 'q"uote', None, "new\nline", "", "é ✓"]
    assert one["ints"] == [1, None, 3] and three["ints"] == []
    assert one["flags"] == [True, False, None]
    assert all(v is None for k, v in empty.items() if k != "id")
    nan = frame["floats"].iloc[3]
    assert len(nan) == 1 and pd.isna(nan[0])  # 'NaN' in a float8[] is NaN


async def test_json_text_on_request(db: dbnb.Database, shell: str) -> None:
    frame = await read(db, shell, "SELECT id, doc, js FROM oddities ORDER BY id",
                       json_as="string")
    assert str(frame["doc"].dtype) == "string"
    assert json.loads(frame["doc"].iloc[0]) == {"a": [1, 2, {"b": None}], "t": 'x,y\n"z"'}
    assert frame["js"].iloc[0] == '{ "k" :\n 1 }'  # json keeps its text as written
    assert frame["doc"].iloc[2] == "null" and pd.isna(frame["doc"].iloc[1])  # kept apart
    arrow = await read(db, shell, "SELECT doc FROM oddities ORDER BY id", json_as="string",
                       dtype_backend="pyarrow")
    assert arrow["doc"].dtype == pd.ArrowDtype(pa.string())


async def test_same_values_as_the_driver(db: dbnb.Database, shell: str) -> None:
    """What psycopg itself makes of the columns it reads exactly is what the frame holds."""
    sql = "SELECT id, t, b, ip::text, doc, js, tags, ints, flags FROM oddities ORDER BY id"
    frame = await read(db, shell, sql)
    for row, fetched in zip(frame.to_dict("records"), db.execute(sql), strict=True):
        for name, value in fetched._mapping.items():
            mine = row[name]
            assert (mine is None or mine is pd.NA) if value is None else mine == value, name


async def test_streamed_chunks_and_many_blocks_keep_the_values(
    db: dbnb.Database, shell: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many blocks (parsed on a thread, then concatenated); chunks cut rows across blocks."""
    monkeypatch.setattr("dbnb.frames.read.PIPELINED", 1 << 15)
    monkeypatch.setattr("dbnb.frames.ablocks.PIPELINED", 1 << 15)
    sql = (
        "SELECT g AS id, o.t, o.iv, o.b, o.doc, o.tags, o.ints FROM oddities o, "
        "generate_series(1, 3000) g ORDER BY g, o.id"
    )
    whole = await read(db, shell, sql)
    arrow = await read(db, shell, sql, dtype_backend="pyarrow")
    if shell == "sync":
        with db.session() as s:
            chunks = list(dbnb.iter_frames(s, sql, chunksize=701))
    else:
        async with db.asyncio.session() as s:
            chunks = [c async for c in dbnb.aiter_frames(s, sql, chunksize=701)]
    streamed = pd.concat(chunks, ignore_index=True)
    assert len(whole) == len(streamed) == 12_000
    pd.testing.assert_frame_equal(whole, streamed)
    sample = whole.iloc[[0, 1, 2, 3, 5_996, 11_999]].to_dict("records")
    assert sample[0]["b"] == b"\x00\xff\x10" and sample[3]["b"] == b"\xab" * 300
    assert sample[0]["doc"] == {"a": [1, 2, {"b": None}], "t": 'x,y\n"z"'}
    assert sample[5]["tags"] == [None] and sample[4]["ints"] == [1, None, 3]
    assert arrow["ints"].iloc[11_999] == [2147483647, -2147483648]
    assert arrow["iv"].iloc[2].kwds == _interval(-1, 2, -(3 * 3600 * 1_000_000 + 1))
    assert whole["iv"].iloc[4] is whole["iv"].iloc[0]  # one DateOffset per distinct interval


@pytest.mark.parametrize("backend", [None, "pyarrow"])
async def test_arrays_of_several_dimensions(
    db: dbnb.Database, shell: str, backend: str | None
) -> None:
    grid = await read(db, shell, "SELECT '{{1,2},{3,NULL}}'::int[] AS grid, "
                      "'{{1.5},{NaN}}'::float8[] AS f UNION ALL SELECT NULL, NULL",
                      dtype_backend=backend)
    assert grid["grid"].dtype == pd.ArrowDtype(pa.list_(pa.list_(pa.int32())))
    assert grid["grid"].iloc[0] == [[1, 2], [3, None]] and pd.isna(grid["grid"].iloc[1])
    assert grid["f"].iloc[0][0] == [1.5] and pd.isna(grid["f"].iloc[0][1][0])
    with pytest.raises(dbnb.FrameError, match="different dimensions"):
        await read(db, shell, "SELECT '{1,2}'::int[] AS a UNION ALL SELECT '{{1,2}}'")


async def test_what_cannot_be_read_says_why(db: dbnb.Database, shell: str) -> None:
    with pytest.raises(dbnb.FrameError, match="json_as="):
        await read(db, shell, "SELECT 1", json_as="dict")  # type: ignore[arg-type]
