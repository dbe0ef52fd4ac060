"""Partitioned reads: several connections, one snapshot, exactly the rows of one query.

On both shells: the same rows and dtypes as one stream (filters and soft delete applied to
every partition), the order of an ordered read kept (NULLs where PostgreSQL puts them), one
consistent result while other connections commit transfers, inserts and deletes throughout
the read, a session's own uncommitted writes still seen, and one partition read elsewhere from
its picklable description (as a task on another process would).
"""

from __future__ import annotations

import asyncio
import pickle
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pandas as pd
import psycopg
import pytest
from sqlalchemy import BigInteger, DateTime, Integer, String, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import dbnb
from dbnb import AsyncRepository, Repository

ROWS = 120_000
TOTAL = ROWS * 100  # every account starts with 100: transfers keep the sum


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    balance: Mapped[int] = mapped_column(Integer)
    rank: Mapped[int | None] = mapped_column(Integer)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Archived(Base):
    """The same table seen through dbnb's soft delete (deleted_at set: hidden)."""

    __tablename__ = "accounts_archive"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


@pytest.fixture(scope="module", autouse=True)
def _accounts(db: dbnb.Database) -> Iterator[None]:
    Base.metadata.create_all(db.engine)
    db.execute(
        "INSERT INTO accounts SELECT g, 'owner ' || g, 100, CASE WHEN g % 10 = 0 THEN NULL "
        f"ELSE (g * 7919) % 1000 END, NULL FROM generate_series(1, {ROWS}) g"
    )
    db.execute("ANALYZE accounts")
    yield
    Base.metadata.drop_all(db.engine)


@pytest.fixture(params=["sync", "async"])
def shell(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def to_frame(db: dbnb.Database, shell: str, model: Any = Account, **kw: Any) -> pd.DataFrame:
    if shell == "sync":
        return Repository(model, db).to_frame(**kw)
    return await AsyncRepository(model, db).to_frame(**kw)


def by_id(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("id").reset_index(drop=True)


async def test_same_rows_and_dtypes_as_one_stream(db: dbnb.Database, shell: str) -> None:
    one = await to_frame(db, shell, rank__gte=500)
    for n in (2, 3, 7):
        many = await to_frame(db, shell, rank__gte=500, partitions=n)
        pd.testing.assert_frame_equal(by_id(many), by_id(one))
    arrow = await to_frame(db, shell, columns=["id", "owner"], partitions=2,
                           dtype_backend="pyarrow")
    assert len(arrow) == ROWS and str(arrow["owner"].dtype) == "string[pyarrow]"


@pytest.mark.parametrize("order_by", ["id", "-id", "rank", "-rank"])
async def test_an_ordered_read_keeps_its_order(
    db: dbnb.Database, shell: str, order_by: str
) -> None:
    one = await to_frame(db, shell, order_by=order_by, id__lte=50_000)
    many = await to_frame(db, shell, order_by=order_by, id__lte=50_000, partitions=3)
    pd.testing.assert_frame_equal(many, one)  # same rows in the same order, NULL ranks too
    assert many["rank"].isna().sum() == 5_000


class SoftAccount(dbnb.SoftDelete, dbnb.Base):
    __tablename__ = "accounts_soft"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    owner: Mapped[str]


@pytest.fixture(scope="module")
def soft_accounts(db: dbnb.Database) -> Iterator[None]:
    SoftAccount.__table__.create(db.engine)  # type: ignore[attr-defined]
    db.execute("INSERT INTO accounts_soft (id, owner, deleted_at) SELECT g, 'o' || g, "
               "CASE WHEN g % 3 = 0 THEN now() END FROM generate_series(1, 30000) g")
    yield
    SoftAccount.__table__.drop(db.engine)  # type: ignore[attr-defined]


@pytest.mark.usefixtures("soft_accounts")
async def test_soft_deleted_rows_stay_hidden_in_every_partition(
    db: dbnb.Database, shell: str
) -> None:
    many = await to_frame(db, shell, SoftAccount, partitions=3)
    assert len(many) == 20_000 and not (many["id"] % 3 == 0).any()
    every = (Repository(SoftAccount, db).with_deleted().to_frame(partitions=3)
             if shell == "sync" else
             await AsyncRepository(SoftAccount, db).with_deleted().to_frame(partitions=3))
    assert len(every) == 30_000


def _write_until(
    stop: threading.Event, started: threading.Event, url: str, counts: list[int]
) -> None:
    """Transfers between accounts, and insert/delete pairs, each its own transaction."""
    with psycopg.connect(url, autocommit=False) as conn:
        i = 0
        while not stop.is_set():
            i += 1
            a, b = (i * 7919) % ROWS + 1, (i * 104729) % ROWS + 1
            conn.execute("UPDATE accounts SET balance = balance - 1 WHERE id = %s", [a])
            conn.execute("UPDATE accounts SET balance = balance + 1 WHERE id = %s", [b])
            conn.commit()
            conn.execute("INSERT INTO accounts VALUES (%s, 'new', 0, 1, NULL)", [ROWS + i])
            conn.execute("DELETE FROM accounts WHERE id = %s", [ROWS + i])
            conn.commit()
            counts[0] = i
            if i == 20:
                started.set()


async def test_one_consistent_result_while_others_commit(
    db: dbnb.Database, shell: str
) -> None:
    url = db.url.set(drivername="postgresql").render_as_string(hide_password=False)
    # A pool too small for every partition at once: the last one starts only when another
    # has finished, long after the others, with many commits in between.
    small = dbnb.connect(db.url, pool_size=1, max_overflow=2)
    stop, started, counts = threading.Event(), threading.Event(), [0]
    writer = threading.Thread(target=_write_until, args=(stop, started, url, counts))
    writer.start()
    try:
        assert await asyncio.to_thread(started.wait, 30)  # writing before the reads start
        for _ in range(3):
            before = counts[0]
            frame = await to_frame(small, shell, columns=["id", "balance"], partitions=4)
            assert counts[0] > before  # commits happened during the read
            assert frame["id"].is_unique
            assert len(frame) == ROWS  # each insert is deleted in the same transaction
            assert frame["balance"].sum() == TOTAL  # each transfer is seen whole or not at all
    finally:
        stop.set()
        writer.join()
        if shell == "async":
            await small.asyncio.close()
        small.close()


async def test_a_sessions_own_writes_are_read(db: dbnb.Database, shell: str) -> None:
    """Other connections cannot see them: the read falls back to one stream on the session."""
    if shell == "sync":
        with db.session() as s:
            s.add(Account(id=ROWS + 10**6, owner="mine", balance=5, rank=None))
            frame = Repository(Account, s).to_frame(partitions=3)
            s.rollback()
    else:
        async with db.asyncio.session() as s:
            s.add(Account(id=ROWS + 10**6, owner="mine", balance=5, rank=None))
            frame = await AsyncRepository(Account, s).to_frame(partitions=3)
            await s.rollback()
    assert len(frame) == ROWS + 1 and (frame["owner"] == "mine").sum() == 1


async def test_what_partitions_refuse(db: dbnb.Database, shell: str) -> None:
    with pytest.raises(dbnb.FrameError, match="limit"):
        await to_frame(db, shell, partitions=2, limit=10)
    with pytest.raises(dbnb.FrameError, match="positive"):
        await to_frame(db, shell, partitions=0)
    with pytest.raises(dbnb.FrameError, match="starts with a column"):
        await to_frame(db, shell, partitions=2, order_by=func.lower(Account.owner))
    assert len(await to_frame(db, shell, partitions=1, limit=10)) == 10


async def test_no_statistics_means_one_stream(db: dbnb.Database, shell: str) -> None:
    """An ordered read of a never-analyzed table has nothing to cut at: still right."""
    db.execute("INSERT INTO accounts_archive SELECT g, 'a' || g FROM generate_series(1, 500) g "
               "ON CONFLICT DO NOTHING")
    frame = await to_frame(db, shell, Archived, order_by="-id", partitions=4)
    assert frame["id"].tolist() == list(range(500, 0, -1))


def test_a_partition_read_elsewhere_from_its_description(db: dbnb.Database) -> None:
    """What a task on another process does: unpickle, connect, read its partition."""
    from dbnb.frames import parallel

    stmt = select(Account.id, Account.owner).where(Account.id <= 9_000)
    table = Account.__table__
    url = db.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with db.session() as s:
        planned = parallel.plan_partitioned(s, stmt, table, 3)  # type: ignore[arg-type]
        assert planned is not None and len(planned.queries) == 3
        read = pickle.loads(pickle.dumps(planned))
        db.execute("UPDATE accounts SET owner = 'changed' WHERE id <= 9000")  # after: unseen
        with psycopg.connect(url) as elsewhere:
            tables = [t for i in range(3) for t in parallel.read_partition(elsewhere, read, i)]
        again = read.plan.combine(tables)
    db.execute("UPDATE accounts SET owner = 'owner ' || id WHERE id <= 9000")
    assert len(again) == 9_000 and not (again["owner"] == "changed").any()
    assert sorted(again["id"]) == list(range(1, 9_001))
