"""Chunked reads: iter_frames / aiter_frames stream a COPY in bounded pieces."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import BigInteger, Column, MetaData, Numeric, Table, Text, func, select, text

import dbnb
from dbnb.frames.chunks import TableChunker
from dbnb.frames.columns import DtypeBackend, ResultColumn
from dbnb.frames.plan import ReadPlan

metadata = MetaData()
events = Table(
    "events",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("kind", Text),
    Column("amount", Numeric(10, 2)),
)
ROWS = 25_000


@pytest.fixture(scope="module", autouse=True)
def _events(db: dbnb.Database) -> Iterator[None]:
    metadata.create_all(db.engine)
    db.execute(
        "INSERT INTO events SELECT g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'k' || (g % 7) END, "
        "g / 100.0 FROM generate_series(1, :n) AS g",
        n=ROWS,
    )
    yield
    metadata.drop_all(db.engine)


@pytest.fixture(params=["sync", "async"])
def shell(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def chunks(db: dbnb.Database, shell: str, stmt: Any, **options: Any) -> list[pd.DataFrame]:
    if shell == "sync":
        with db.session() as s:
            return list(dbnb.iter_frames(s, stmt, **options))
    async with db.asyncio.session() as s:
        return [f async for f in dbnb.aiter_frames(s, stmt, **options)]


async def test_chunks_have_chunksize_rows_in_order(db: dbnb.Database, shell: str) -> None:
    parts = await chunks(db, shell, select(events).order_by(events.c.id), chunksize=4_000)
    assert [len(p) for p in parts] == [4_000] * 6 + [1_000]
    whole = pd.concat(parts, ignore_index=True)
    assert whole["id"].tolist() == list(range(1, ROWS + 1))
    assert all(p.dtypes.to_dict() == parts[0].dtypes.to_dict() for p in parts)
    assert str(parts[0]["id"].dtype) == "Int64"
    assert str(parts[0]["kind"].dtype) == "string"
    assert whole["kind"].isna().sum() == ROWS // 3


@pytest.mark.parametrize("backend", [None, "pyarrow"])
async def test_chunks_match_the_whole_frame(
    db: dbnb.Database, shell: str, backend: DtypeBackend
) -> None:
    stmt = select(events).where(events.c.kind == "k1").order_by(events.c.id.desc())
    parts = await chunks(db, shell, stmt, chunksize=777, dtype_backend=backend)
    with db.session() as s:
        whole = dbnb.read_frame(s, stmt, dtype_backend=backend)
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), whole)


async def test_empty_result_yields_one_typed_empty_frame(db: dbnb.Database, shell: str) -> None:
    parts = await chunks(db, shell, select(events).where(events.c.id < 0), chunksize=10)
    assert len(parts) == 1
    assert len(parts[0]) == 0
    assert str(parts[0]["amount"].dtype) == "float64"


async def test_leaving_early_keeps_the_session_usable(db: dbnb.Database, shell: str) -> None:
    """Breaking out of a 625-million-row COPY cancels it; the transaction carries on."""
    count = select(func.count()).select_from(events)
    huge = "SELECT a.id, a.kind, b.id AS other FROM events AS a CROSS JOIN events AS b"
    if shell == "sync":
        with db.session() as s:
            s.execute(text("INSERT INTO events (id) VALUES (-1)"))
            frames = dbnb.iter_frames(s, huge, chunksize=1_000)
            first = next(frames)
            frames.close()
            assert len(first) == 1_000
            assert s.execute(count).scalar_one() == ROWS + 1  # the insert survived
            s.rollback()
    else:
        async with db.asyncio.session() as s:
            await s.execute(text("INSERT INTO events (id) VALUES (-1)"))
            aframes = dbnb.aiter_frames(s, huge, chunksize=1_000)
            first = await anext(aframes)
            await aframes.aclose()
            assert len(first) == 1_000
            assert (await s.execute(count)).scalar_one() == ROWS + 1
            await s.rollback()
    assert db.execute("SELECT count(*) FROM events")[0][0] == ROWS


async def test_bad_chunksize_is_refused(db: dbnb.Database, shell: str) -> None:
    with pytest.raises(dbnb.FrameError, match="chunksize"):
        await chunks(db, shell, select(events), chunksize=0)


async def test_errors_inside_the_copy_surface_as_dbnb_errors(db: dbnb.Database, shell: str) -> None:
    with pytest.raises(dbnb.QueryError, match="division by zero"):
        await chunks(db, shell, "SELECT 1 / (id - 20000) FROM events", chunksize=100)


async def test_progress_bar_only_when_asked(
    db: dbnb.Database, capsys: pytest.CaptureFixture[str]
) -> None:
    with db.session() as s:
        list(dbnb.iter_frames(s, select(events), chunksize=10_000))
    assert capsys.readouterr().err == ""  # not interactive: no bar, even over the threshold
    with db.session() as s:
        list(dbnb.iter_frames(s, select(events), chunksize=10_000, progress=True))
    assert "reading" in capsys.readouterr().err
    async with db.asyncio.session() as s:
        [f async for f in dbnb.aiter_frames(s, select(events), chunksize=10_000, progress=False)]
    assert capsys.readouterr().err == ""


def test_chunker_holds_about_one_chunk() -> None:
    """IO-free: parsed blocks in, frames of chunksize rows out, nothing kept beyond them."""
    plan = ReadPlan([ResultColumn("n", 23), ResultColumn("s", 25)])
    chunker = TableChunker(plan, 1_000)
    out: list[pd.DataFrame] = []
    data = io.BytesIO()
    for i in range(5_500):
        data.write(f'{i},"x{i}"\n'.encode())
        if i % 70 == 69:
            out += chunker.feed(plan.parse(data.getvalue()))
            data = io.BytesIO()
            assert chunker._pending < 1_000  # rows waiting: under one chunk
    out += chunker.feed(plan.parse(data.getvalue()))
    out += chunker.finish()
    assert [len(f) for f in out] == [1_000] * 5 + [500]
    assert pd.concat(out)["n"].tolist() == list(range(5_500))
    assert [len(f) for f in TableChunker(plan, 10).finish()] == [0]  # no rows: one empty frame


async def test_progress_total_is_the_planner_estimate(
    db: dbnb.Database, shell: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A shown bar gets its total from EXPLAIN before the first row: 25.0k here, after ANALYZE."""
    db.execute("ANALYZE events")
    capsys.readouterr()
    parts = await chunks(db, shell, select(events.c.id), chunksize=10_000, progress=True)
    assert sum(len(p) for p in parts) == ROWS
    err = capsys.readouterr().err
    assert "reading" in err and "/25.0k" in err  # tqdm: count/total, the total known upfront
    quiet = await chunks(db, shell, select(events.c.id), chunksize=10_000, progress=False)
    assert sum(len(p) for p in quiet) == ROWS and capsys.readouterr().err == ""
