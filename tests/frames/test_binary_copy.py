"""Binary COPY loads: the same rows as the CSV load, for every type it sends in binary.

A load of at least ``MIN_ROWS`` rows whose columns all have a binary form goes in PostgreSQL's
binary COPY format. The reference is the CSV path itself: the same rows, loaded in slices too
small for binary into a twin table, must read back as the same text, row for row, on both
shells and from Arrow, polars and pandas. Columns without a faithful binary form keep the
whole load in CSV; a value the server refuses fails the load and writes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Double,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    Uuid,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

import dbnb
from dbnb import Base
from dbnb.frames.binary_copy import MIN_ROWS

ROWS = 2_500
UTC = dt.UTC
BINARY = "as binary COPY"


class KindColumns:
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    small: Mapped[int | None] = mapped_column(SmallInteger)
    num: Mapped[int] = mapped_column(Integer)
    big: Mapped[int | None] = mapped_column(BigInteger)
    ratio: Mapped[float | None] = mapped_column(Double)
    price: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    exact: Mapped[Decimal | None] = mapped_column(Numeric)
    ok: Mapped[bool | None]
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    local: Mapped[dt.datetime | None] = mapped_column(DateTime)
    day: Mapped[dt.date | None] = mapped_column(Date)
    ref: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    label: Mapped[str | None] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)
    doc: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Kinds(KindColumns, Base):
    __tablename__ = "binary_kinds"


class KindsByCsv(KindColumns, Base):
    __tablename__ = "binary_kinds_csv"


class Wide(Base):
    """Mapped as Integer / BigInteger over a table whose columns are bigint / integer."""

    __tablename__ = "binary_wide"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int | None] = mapped_column(Integer)
    m: Mapped[int | None] = mapped_column(BigInteger)


class Tagged(Base):
    __tablename__ = "binary_tagged"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    tags: Mapped[list[str] | None] = mapped_column(ARRAY(String))


def rows_table() -> pa.Table:
    """ROWS rows of every kind, edges included, a NULL in every nullable column but one."""
    rng = np.random.default_rng(7)
    n = ROWS
    gaps = [i % 10 == 9 for i in range(n)]

    def nullable(values: list[Any]) -> list[Any]:
        return [None if gap else v for v, gap in zip(values, gaps, strict=True)]

    cents = rng.integers(-999_999_999_999, 999_999_999_999, n).tolist()
    cents[:4] = [0, -1, 999_999_999_999, -999_999_999_999]
    micros = rng.integers(-2_000_000_000_000_000, 4_000_000_000_000_000, n).tolist()
    micros[:3] = [0, -1, 946_684_800_000_000]  # 1970, just before it, 2000-01-01
    refs = [str(uuid.UUID(int=int(v))) for v in rng.integers(0, 2**63, n)]
    refs[1] = refs[1].upper()
    texts = ["", "a,b", 'say "hi"', "two\nlines", "tab\tand \\ slash", "ünïcødé 🐘", "NULL"]
    ratios = rng.normal(0, 1e6, n).tolist()
    ratios[:5] = [float("nan"), float("inf"), float("-inf"), 0.1, 5e-324]
    return pa.table({
        "id": pa.array(range(1, n + 1), pa.int64()),
        "small": pa.array(nullable(rng.integers(-(2**15), 2**15, n).tolist()), pa.int16()),
        "num": pa.array(rng.integers(-(2**31), 2**31, n), pa.int32()),
        "big": pa.array(nullable([-(2**63), 2**63 - 1, *rng.integers(-(2**62), 2**62, n - 2)
                                  .tolist()]), pa.int64()),
        "ratio": pa.array(ratios, pa.float64()),
        "price": pa.array(nullable([Decimal(c).scaleb(-2) for c in cents]), pa.decimal128(12, 2)),
        "exact": pa.array(nullable([Decimal(c).scaleb(-6) for c in cents]), pa.decimal128(18, 6)),
        "ok": pa.array(nullable((rng.random(n) < 0.5).tolist()), pa.bool_()),
        "at": pa.array(micros, pa.timestamp("us", tz="UTC")),
        "local": pa.array(nullable(micros[::-1]), pa.timestamp("us")),
        "day": pa.array(nullable((np.array(micros) // 86_400_000_000).tolist()), pa.int32())
        .cast(pa.date32()),
        "ref": pa.array(nullable(refs), pa.string()),
        "label": pa.array(nullable([texts[i % len(texts)] + str(i) for i in range(n)])),
        "body": pa.array([texts[i % len(texts)] * (i % 5) for i in range(n)]),
        "doc": pa.array(nullable([{"k": i, "s": texts[i % len(texts)]} for i in range(n)])),
        "raw": pa.array(nullable([{"k": -i} for i in range(n)])),
    })


def frame_of(kind: str, table: pa.Table) -> Any:
    if kind == "polars":
        return pl.from_arrow(table)
    if kind == "pandas":
        frame = table.to_pandas()
        frame["small"] = pd.array(table.column("small").to_pylist(), dtype="Int16")
        frame["big"] = pd.array(table.column("big").to_pylist(), dtype="Int64")
        return frame
    return table


@pytest.fixture(scope="module", autouse=True)
def _tables(db: dbnb.Database) -> Iterator[None]:
    tables = [Kinds.__table__, KindsByCsv.__table__, Tagged.__table__]
    Base.metadata.create_all(db.engine, tables=tables)  # type: ignore[arg-type]
    yield
    db.execute("DROP TABLE binary_kinds, binary_kinds_csv, binary_tagged")


@pytest.fixture(autouse=True)
def _empty(db: dbnb.Database) -> None:
    db.execute("TRUNCATE binary_kinds, binary_kinds_csv, binary_tagged")


async def load(shell: Any, db: dbnb.Database, target: Any, frame: Any, **kwargs: Any) -> int:
    done = shell(target, db).from_frame(frame, **kwargs)
    return int(await done if shell is dbnb.AsyncRepository else done)


def as_text(db: dbnb.Database, table: str) -> list[str]:
    """Every row as the server writes it (``row::text``): values, scales and zones exactly."""
    return [r[0] for r in db.execute(f"SELECT t::text FROM {table} t ORDER BY id")]


@pytest.mark.parametrize("kind", ["arrow", "polars", "pandas"])
async def test_binary_load_stores_what_the_csv_load_stores(
    shell: Any, db: dbnb.Database, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    frame = frame_of(kind, rows_table())
    with caplog.at_level(logging.DEBUG, logger="dbnb.frames"):
        for start in range(0, ROWS, MIN_ROWS - 1):
            piece = frame[start : start + MIN_ROWS - 1]
            await load(shell, db, KindsByCsv, piece)
        assert BINARY not in caplog.text  # the reference went as CSV
        assert await load(shell, db, Kinds, frame) == ROWS
        assert BINARY in caplog.text
    by_binary, by_csv = as_text(db, "binary_kinds"), as_text(db, "binary_kinds_csv")
    assert len(by_binary) == ROWS and by_binary == by_csv
    third = db.execute("SELECT price, exact::text, at, ratio FROM binary_kinds WHERE id = 3")
    assert third == [(Decimal("9999999999.99"), "999999.999999",
                      dt.datetime(2000, 1, 1, tzinfo=UTC), float("-inf"))]
    edges = db.execute("SELECT price, at, big FROM binary_kinds WHERE id IN (2, 4) ORDER BY id")
    assert [e[0] for e in edges] == [Decimal("-0.01"), Decimal("-9999999999.99")]
    assert edges[0][1] == dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert edges[0][2] == 2**63 - 1


async def test_upsert_goes_binary_through_its_staging_table(
    shell: Any, db: dbnb.Database, caplog: pytest.LogCaptureFixture
) -> None:
    table = rows_table()
    await load(shell, db, Kinds, table.slice(0, ROWS - 500))
    changed = table.set_column(
        table.schema.get_field_index("num"), "num", pa.array(np.full(ROWS, 7), pa.int32())
    )
    with caplog.at_level(logging.DEBUG, logger="dbnb.frames"):
        written = await load(shell, db, Kinds, changed, on_conflict="update")
    assert BINARY in caplog.text
    assert written == ROWS
    assert db.execute("SELECT count(*), min(num), max(num) FROM binary_kinds") == [(ROWS, 7, 7)]


async def test_other_uuid_spellings_and_non_finite_numerics_stay_csv(
    shell: Any, db: dbnb.Database, caplog: pytest.LogCaptureFixture
) -> None:
    ids = list(range(1, ROWS + 1))
    base = {"id": ids, "num": [1] * ROWS, "at": [dt.datetime(2024, 1, 1, tzinfo=UTC)] * ROWS,
            "body": ["b"] * ROWS}
    braced = pl.DataFrame({**base, "ref": ["{" + str(uuid.UUID(int=i)) + "}" for i in ids]})
    nan = pl.DataFrame({**base, "id": [i + ROWS for i in ids], "exact": [float("nan")] * ROWS})
    with caplog.at_level(logging.DEBUG, logger="dbnb.frames"):
        await load(shell, db, Kinds, braced)
        await load(shell, db, Kinds, nan)
    assert BINARY not in caplog.text
    assert db.execute("SELECT ref FROM binary_kinds WHERE id = 5") == [(uuid.UUID(int=5),)]
    assert db.execute("SELECT DISTINCT exact::text FROM binary_kinds WHERE id > :n",
                      n=ROWS) == [("NaN",)]


async def test_floats_into_numeric_are_read_as_their_text(
    shell: Any, db: dbnb.Database, caplog: pytest.LogCaptureFixture
) -> None:
    """What to_frame() gives for numeric (float64) loads in binary, as the server reads text."""
    floats = [0.125, 1.005, -2.675, 0.1, 1e-7, 1.5e17, 123456789.987654321, -0.0]
    ids = list(range(ROWS))
    frame = pd.DataFrame({
        "id": ids, "num": 1, "at": pd.Timestamp("2024-01-01", tz="UTC"), "body": "b",
        "price": [floats[i % 5] for i in ids], "exact": [floats[i % len(floats)] for i in ids],
    })
    frame["ratio"] = pd.Series([0.1, 1 / 3] * (ROWS // 2), dtype="float32")
    with caplog.at_level(logging.DEBUG, logger="dbnb.frames"):
        await load(shell, db, Kinds, frame)
    assert BINARY in caplog.text
    # A float32 goes into double precision as the decimal its text says, as from the CSV.
    assert db.execute("SELECT ratio FROM binary_kinds ORDER BY id LIMIT 2") == [
        (0.1,), (0.33333334,)
    ]
    prices = db.execute("SELECT price::text FROM binary_kinds ORDER BY id LIMIT 5")
    # 1.005 is 1.00499999... as a double, but its shortest text, 1.005, rounds half away.
    assert [p[0] for p in prices] == ["0.13", "1.01", "-2.68", "0.10", "0.00"]
    exact = db.execute("SELECT exact::text FROM binary_kinds ORDER BY id LIMIT 8")
    assert [e[0] for e in exact] == [
        "0.125", "1.005", "-2.675", "0.1", "0.0000001", "150000000000000000",
        "123456789.98765433", "0",  # the double nearest 123456789.987654321
    ]


async def test_arrays_keep_the_load_in_csv(
    shell: Any, db: dbnb.Database, caplog: pytest.LogCaptureFixture
) -> None:
    frame = pl.DataFrame({"id": range(ROWS), "tags": [["a", "b"]] * ROWS})
    with caplog.at_level(logging.DEBUG, logger="dbnb.frames"):
        assert await load(shell, db, Tagged, frame) == ROWS
    assert BINARY not in caplog.text
    assert db.execute("SELECT tags FROM binary_tagged WHERE id = 9") == [(["a", "b"],)]


async def test_the_servers_types_decide_the_widths(shell: Any, db: dbnb.Database) -> None:
    """A model saying Integer over a bigint column: eight bytes go, as the server expects."""
    db.execute("DROP TABLE IF EXISTS binary_wide; "
               "CREATE TABLE binary_wide (id bigint PRIMARY KEY, n bigint, m integer)")
    ids = list(range(ROWS))
    assert await load(shell, db, Wide, pa.table({"id": ids, "n": ids, "m": ids})) == ROWS
    assert db.execute("SELECT sum(n), sum(m) FROM binary_wide") == [
        (sum(ids), sum(ids))
    ]
    too_big = pa.table({"id": [i + ROWS for i in ids], "n": ids, "m": [2**40] * ROWS})
    with pytest.raises(dbnb.DbnbError, match="out of range for type integer"):
        await load(shell, db, Wide, too_big)
    assert db.execute("SELECT count(*) FROM binary_wide") == [(ROWS,)]
    db.execute("DROP TABLE binary_wide")


async def test_a_value_the_server_refuses_writes_nothing(shell: Any, db: dbnb.Database) -> None:
    table = rows_table()
    at = table.schema.get_field_index("at")
    before_4713_bc = np.full(ROWS, 1_000, dtype=np.int64)
    before_4713_bc[-1] = -250_000_000_000_000_000  # about 5900 BC
    bad = table.set_column(at, "at", pa.array(before_4713_bc).cast(pa.timestamp("us", tz="UTC")))
    with pytest.raises(dbnb.DbnbError, match="timestamp out of range"):
        await load(shell, db, Kinds, bad)
    assert db.execute("SELECT count(*) FROM binary_kinds") == [(0,)]
    assert await load(shell, db, Kinds, table) == ROWS  # the session goes on


async def test_postgresql_15_takes_the_same_binary_rows(
    password_server: tuple[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    """Debian's PostgreSQL 15, both drivers: the binary load reads back as the CSV load."""
    from sqlalchemy.engine import URL

    from tests.conftest import PASSWORD_SERVER_SECRET

    host, port = password_server
    url = URL.create("postgresql", "ana", PASSWORD_SERVER_SECRET, host, port, "postgres")
    db = dbnb.connect(url, database="t_binary_pg15", reset=True)
    assert db.health().server_version.startswith("15")  # type: ignore[union-attr]
    Base.metadata.create_all(db.engine, tables=[Kinds.__table__, KindsByCsv.__table__])  # type: ignore[list-item]
    table = rows_table()
    with caplog.at_level(logging.DEBUG, logger="dbnb.frames"):
        for start in range(0, ROWS, MIN_ROWS - 1):
            dbnb.Repository(KindsByCsv, db).from_frame(table.slice(start, MIN_ROWS - 1))
        assert BINARY not in caplog.text
        assert dbnb.Repository(Kinds, db).from_frame(table.slice(0, ROWS // 2)) == ROWS // 2
        assert await dbnb.AsyncRepository(Kinds, db).from_frame(table.slice(ROWS // 2)) == (
            ROWS - ROWS // 2
        )
        assert caplog.text.count(BINARY) == 2
    by_binary, by_csv = as_text(db, "binary_kinds"), as_text(db, "binary_kinds_csv")
    assert len(by_binary) == ROWS and by_binary == by_csv
    await db.asyncio.refresh_pools()
    db.close()


def _nullable(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | values


_TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
                max_size=40)
_ROW = st.fixed_dictionaries({
    "small": _nullable(st.integers(-(2**15), 2**15 - 1)),
    "num": st.integers(-(2**31), 2**31 - 1),
    "big": _nullable(st.integers(-(2**63), 2**63 - 1)),
    "ratio": _nullable(st.floats()),
    "ok": _nullable(st.booleans()),
    "at": st.datetimes(dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31), timezones=st.just(UTC)),
    "local": _nullable(st.datetimes(dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31))),
    "day": _nullable(st.dates()),
    "ref": _nullable(st.builds(lambda u, upper: str(u).upper() if upper else str(u),
                               st.uuids(), st.booleans())),
    "label": _nullable(_TEXT),
    "body": _TEXT,
    "doc": _nullable(st.dictionaries(st.sampled_from("abc"), st.integers(-5, 5))),
})


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(_ROW, min_size=1, max_size=20), scale=st.integers(0, 12),
       digits=st.integers(0, 24), numbers=st.sampled_from(["decimal", "float", "integer"]),
       ratio=st.sampled_from([pa.float64(), pa.float32()]), data=st.data())
def test_generated_rows_read_back_as_the_csv_load_does(
    db: dbnb.Database, rows: list[dict[str, Any]], scale: int, digits: int, numbers: str,
    ratio: pa.DataType, data: st.DataObject,
) -> None:
    """Any values of these kinds, NULLs anywhere: binary and CSV loads store the same text.

    The plain ``numeric`` column takes decimals of up to 24 whole digits (some past an int64:
    the load stays CSV), any float (NaN and infinities stay CSV) or any integer; the
    ``numeric(12, 2)`` one floats that fit it, rounded by the server.
    """
    bound = Decimal(10) ** digits - Decimal(1).scaleb(-scale)
    exact = {
        "decimal": (st.decimals(-bound, bound, places=scale), pa.decimal128(38, scale)),
        "float": (st.floats(), pa.float64()),
        "integer": (st.integers(-(2**63), 2**63 - 1), pa.int64()),
    }[numbers]
    n_rows = len(rows)
    drawn = data.draw(st.lists(_nullable(exact[0]), min_size=n_rows, max_size=n_rows))
    prices = data.draw(st.lists(_nullable(st.floats(-9e9, 9e9)), min_size=n_rows,
                                max_size=n_rows))
    copies = -(-MIN_ROWS // n_rows)
    columns = {key: [row[key] for row in rows] * copies for key in rows[0]}
    n = len(columns["num"])
    table = pa.table({
        "id": pa.array(range(n), pa.int64()),
        **columns,
        "exact": pa.array(drawn * copies, exact[1]),
        "price": pa.array(prices * copies, pa.float64()),
    })
    ratios = table.schema.get_field_index("ratio")
    table = table.set_column(ratios, "ratio", table.column(ratios).cast(ratio, safe=False))
    db.execute("TRUNCATE binary_kinds, binary_kinds_csv")
    for start in range(0, n, MIN_ROWS - 1):
        dbnb.Repository(KindsByCsv, db).from_frame(table.slice(start, MIN_ROWS - 1))
    said: list[str] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lambda record: said.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("dbnb.frames")
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.DEBUG
    try:
        assert dbnb.Repository(Kinds, db).from_frame(table) == n
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    event(f"{numbers} into numeric, " + ("binary" if any(BINARY in m for m in said) else "csv"))
    by_binary, by_csv = as_text(db, "binary_kinds"), as_text(db, "binary_kinds_csv")
    assert len(by_binary) == n and by_binary == by_csv
