"""Repository.to_frame / iter_frames / from_frame and their async twins, on a mixin model."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Index, Numeric, String, func, select, text
from sqlalchemy.orm import Mapped, mapped_column

import dbnb
from dbnb import AsyncRepository, FilterError, Repository
from dbnb.orm.models import Base, SoftDelete, Timestamps, UUIDPrimaryKey


class FrameWidget(UUIDPrimaryKey, Timestamps, SoftDelete, Base):
    """A model with every mixin: server-filled id and timestamps, soft delete."""

    __tablename__ = "frame_widgets"
    __table_args__ = (
        Index("uq_frame_widgets_sku", "sku", unique=True,
              postgresql_where=text("deleted_at IS NULL")),
    )
    sku: Mapped[str] = mapped_column(String(32))
    name: Mapped[str]
    qty: Mapped[int | None]
    price: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))


SEED = pd.DataFrame({
    "sku": ["a", "b", "c", "d", "e"],
    "name": ["Ann", "Bob", "Cy", "Di", "Ed"],
    "qty": [5, 1, 3, None, 2],
    "price": [1.5, 2.0, None, 4.25, 5.0],
})


@pytest.fixture(scope="module", autouse=True)
def _widgets(db: dbnb.Database) -> Iterator[None]:
    FrameWidget.__table__.create(db.engine)  # type: ignore[attr-defined]
    yield
    FrameWidget.__table__.drop(db.engine)  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _seeded(db: dbnb.Database) -> None:
    db.execute("TRUNCATE frame_widgets")
    Repository(FrameWidget, db).from_frame(SEED)
    db.execute("UPDATE frame_widgets SET deleted_at = now() WHERE sku = 'e'")


@pytest.fixture(params=["sync", "async"])
def repo(request: pytest.FixtureRequest, db: dbnb.Database, adb: dbnb.AsyncDatabase) -> Any:
    shell = Repository if request.param == "sync" else AsyncRepository
    return shell(FrameWidget, db)


async def call(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def chunks(iterable: Iterator[pd.DataFrame] | AsyncIterator[pd.DataFrame]) -> list[Any]:
    if isinstance(iterable, Iterator):
        return list(iterable)
    return [f async for f in iterable]


async def test_to_frame_keeps_filters_columns_and_ordering(repo: Any) -> None:
    frame = await call(repo.to_frame(qty__gte=2, columns=["name", "qty", "created_at"],
                                     order_by="-qty"))
    assert frame["name"].tolist() == ["Ann", "Cy"]  # Ed (qty 2) is soft-deleted
    assert list(frame.columns) == ["name", "qty", "created_at"]
    assert {k: str(v) for k, v in frame.dtypes.items()} == {
        "name": "string", "qty": "Int32", "created_at": "datetime64[us, UTC]"}


async def test_to_frame_positional_expressions_and_limit(repo: Any) -> None:
    frame = await call(repo.to_frame(FrameWidget.price > 1, order_by="sku", limit=2))
    assert frame["sku"].tolist() == ["a", "b"]
    assert str(frame["id"].dtype) == "string"  # uuid primary key
    exact = await call(repo.to_frame(sku="d", decimal=True, dtype_backend=None))
    assert exact["price"].tolist() == [Decimal("4.25")]


async def test_soft_deleted_rows_only_when_asked(repo: Any) -> None:
    alive = await call(repo.to_frame(order_by="sku"))
    everything = await call(repo.with_deleted().to_frame(order_by="sku"))
    deleted = await call(repo.only_deleted().to_frame())
    assert alive["sku"].tolist() == ["a", "b", "c", "d"]
    assert everything["sku"].tolist() == ["a", "b", "c", "d", "e"]
    assert deleted["sku"].tolist() == ["e"]
    assert deleted["deleted_at"].notna().all()


async def test_unknown_columns_and_filters_fail_before_any_query(repo: Any) -> None:
    with pytest.raises(FilterError, match="nme"):
        await call(repo.to_frame(columns=["nme"]))
    with pytest.raises(FilterError):
        await call(repo.to_frame(colour="red"))


async def test_empty_frame_keeps_dtypes(repo: Any) -> None:
    empty = await call(repo.to_frame(sku="zzz", columns=["qty", "price"]))
    assert len(empty) == 0
    assert [str(d) for d in empty.dtypes] == ["Int32", "float64"]


async def test_iter_frames_in_chunks(repo: Any) -> None:
    parts = await chunks(repo.iter_frames(chunksize=3, order_by="sku", columns=["sku"]))
    assert [p["sku"].tolist() for p in parts] == [["a", "b", "c"], ["d"]]


async def test_from_frame_fills_mixin_defaults_and_upserts(repo: Any, db: dbnb.Database) -> None:
    new = pd.DataFrame({"sku": ["f", "g"], "name": ["Fay", "Gus"], "qty": [7, 8]})
    assert await call(repo.from_frame(new)) == 2
    got = await call(repo.to_frame(sku__in=["f", "g"], order_by="sku"))
    assert got["id"].notna().all()
    assert got["created_at"].notna().all()
    assert got["updated_at"].notna().all()
    change = pd.DataFrame({"sku": ["a", "e", "h"], "name": ["Ann 2", "Ed 2", "Hal"]})
    assert await call(repo.from_frame(change, on_conflict="update", on=["sku"])) == 3
    names = await call(repo.with_deleted().to_frame(columns=["sku", "name"], order_by="name"))
    # "e" was soft-deleted: the partial unique index ignores it, so a live "e" is inserted.
    assert names["name"].tolist() == ["Ann 2", "Bob", "Cy", "Di", "Ed", "Ed 2", "Fay", "Gus",
                                      "Hal"]


async def test_bound_to_a_session_nothing_commits(db: dbnb.Database, repo: Any) -> None:
    extra = pd.DataFrame({"sku": ["x"], "name": ["X"]})
    if isinstance(repo, Repository):
        with db.session() as s:
            assert Repository(FrameWidget, s).from_frame(extra) == 1
            assert len(Repository(FrameWidget, s).to_frame(sku="x")) == 1
            s.rollback()
    else:
        async with db.asyncio.session() as s:
            assert await AsyncRepository(FrameWidget, s).from_frame(extra) == 1
            assert len(await AsyncRepository(FrameWidget, s).to_frame(sku="x")) == 1
            await s.rollback()
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(FrameWidget).where(
            FrameWidget.sku == "x")) == 0
