"""Frames on every backend: the same dtypes, the same loads and upserts, both shells.

PostgreSQL reads and writes through COPY; SQLite and MariaDB through the generic path
(dbnb.frames.generic, dbnb.frames.generic_load). The expected dtypes are one table: a backend
that gives another dtype fails here.
"""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest

import dbnb
from dbnb.examples import shop

#: Run on each backend (tests/conftest.py); a difference shows as a failing case.
BACKENDS = ("postgresql", "sqlite", "mariadb")

USER_DTYPES = {
    "id": "string", "email": "string", "name": "string", "age": "Int32",
    "is_active": "boolean", "created_at": "datetime64[us, UTC]",
    "updated_at": "datetime64[us, UTC]", "deleted_at": "datetime64[us, UTC]",
}  # fmt: skip
PRODUCT_DTYPES = {"sku": "string", "price": "float64", "stock": "Int32"}


async def call(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def test_to_frame_dtypes_are_the_same_everywhere(shell: Any, seeded: dbnb.Database) -> None:
    users = await call(shell(shop.User, seeded).to_frame(order_by="email"))
    assert {c: str(t) for c, t in users.dtypes.items()} == USER_DTYPES
    assert users["email"].tolist()[:2] == ["ana@example.com", "ben@example.com"]
    assert users["id"].iloc[0] == str(shop.SEED_USERS[0]["id"])
    assert users["created_at"].iloc[0] == pd.Timestamp(shop.SEED_USERS[0]["created_at"])
    assert users["age"].isna().sum() == 1  # Dev has no age: <NA>, the column stays Int32
    products = await call(
        shell(shop.Product, seeded).to_frame(columns=list(PRODUCT_DTYPES), order_by="sku")
    )
    assert {c: str(t) for c, t in products.dtypes.items()} == PRODUCT_DTYPES
    assert products.set_index("sku").loc["KB-001", "price"] == pytest.approx(89.90)


async def test_soft_deleted_rows_only_when_asked(shell: Any, seeded: dbnb.Database) -> None:
    alive = await call(shell(shop.User, seeded).to_frame())
    every = await call(shell(shop.User, seeded).with_deleted().to_frame())
    assert len(every) == len(alive) + 1
    assert "fay@example.com" not in set(alive["email"])


async def test_empty_frames_keep_their_dtypes(shell: Any, seeded: dbnb.Database) -> None:
    empty = await call(shell(shop.User, seeded).to_frame(email="nobody@example.com"))
    assert len(empty) == 0
    assert {c: str(t) for c, t in empty.dtypes.items()} == USER_DTYPES


async def test_options_decimal_uuid_and_pyarrow(shell: Any, seeded: dbnb.Database) -> None:
    products = shell(shop.Product, seeded)
    exact = await call(products.to_frame(columns=["sku", "price"], decimal=True, order_by="sku"))
    assert exact["price"].dtype == object and exact["price"].iloc[0] == Decimal("9.99")
    users = shell(shop.User, seeded)
    ids = await call(users.to_frame(columns=["id"], uuid_as="uuid", order_by="email"))
    assert ids["id"].iloc[0] == shop.SEED_USERS[0]["id"]
    arrow = await call(users.to_frame(columns=["age", "email"], dtype_backend="pyarrow"))
    assert str(arrow["age"].dtype) == "int32[pyarrow]"
    assert str(arrow["email"].dtype) == "string[pyarrow]"


async def test_iter_frames_in_chunks(shell: Any, seeded: dbnb.Database) -> None:
    users = shell(shop.User, seeded)
    chunks = users.iter_frames(chunksize=2, order_by="email")
    frames = [f async for f in chunks] if inspect.isasyncgen(chunks) else list(chunks)
    assert [len(f) for f in frames] == [2, 2, 1]
    whole = pd.concat(frames, ignore_index=True)
    assert whole["email"].tolist() == sorted(whole["email"].tolist())
    assert {c: str(t) for c, t in frames[-1].dtypes.items()} == USER_DTYPES


async def test_from_frame_loads_fills_defaults_and_upserts(
    shell: Any, seeded: dbnb.Database
) -> None:
    tag = f"{shell.__name__[:5].lower()}"
    users = shell(shop.User, seeded)
    new = pd.DataFrame({
        "email": [f"{tag}-1@example.com", f"{tag}-2@example.com"],
        "name": ["One", "Two"],
        "age": [41, None],
    })
    assert await call(users.from_frame(new)) == 2
    loaded = await call(users.to_frame(email__startswith=f"{tag}-", order_by="email"))
    assert loaded["name"].tolist() == ["One", "Two"]
    assert loaded["age"].isna().tolist() == [False, True]
    assert loaded["created_at"].notna().all() and loaded["id"].str.len().eq(36).all()
    row = await call(users.get_by(email=f"{tag}-1@example.com"))
    assert row is not None and row.age == 41 and row.is_active is True
    changed = pd.DataFrame({"email": [f"{tag}-1@example.com", f"{tag}-3@example.com"],
                            "name": ["One again", "Three"]})
    assert await call(users.from_frame(changed, on_conflict="update", on=["email"])) == 2
    after = await call(users.to_frame(email__startswith=f"{tag}-", order_by="email"))
    assert after["name"].tolist() == ["One again", "Two", "Three"]
    assert after["updated_at"].iloc[0] > after["created_at"].iloc[0]
    ignored = pd.DataFrame({"email": [f"{tag}-2@example.com"], "name": ["ignored"]})
    assert await call(users.from_frame(ignored, on_conflict="ignore", on=["email"])) == 0
    assert (await call(users.get_by(email=f"{tag}-2@example.com"))).name == "Two"


async def test_from_frame_takes_aware_and_naive_datetimes(
    shell: Any, seeded: dbnb.Database
) -> None:
    tag = f"{shell.__name__[:5].lower()}-dt"
    users = shell(shop.User, seeded)
    when = datetime(2025, 3, 1, 12, 30, 15, 250000, tzinfo=UTC)
    frame = pd.DataFrame({"email": [f"{tag}@example.com"], "name": ["T"],
                          "created_at": [pd.Timestamp(when).tz_convert("Europe/Paris")]})
    await call(users.from_frame(frame))
    row = await call(users.get_by(email=f"{tag}@example.com"))
    assert row.created_at == when
    naive = pd.DataFrame({"email": [f"{tag}2@example.com"], "name": ["N"],
                          "created_at": [datetime(2025, 3, 1, 12, 30)]})
    with pytest.raises(dbnb.FrameError, match="naive_as"):
        await call(users.from_frame(naive))
    await call(users.from_frame(naive, naive_as="UTC"))
    row = await call(users.get_by(email=f"{tag}2@example.com"))
    assert row.created_at == datetime(2025, 3, 1, 12, 30, tzinfo=UTC)


async def test_a_failing_load_writes_nothing(shell: Any, seeded: dbnb.Database) -> None:
    users = shell(shop.User, seeded)
    before = await call(users.count())
    dup = pd.DataFrame({"email": ["dup@example.com", "dup@example.com"], "name": ["a", "b"]})
    with pytest.raises(dbnb.UniqueViolation):
        await call(users.from_frame(dup))
    assert await call(users.count()) == before


def test_sql_text_frames_are_typed_from_their_values(seeded: dbnb.Database) -> None:
    frame = seeded.frame(
        "SELECT sku, stock FROM products WHERE stock > :n ORDER BY sku", n=100
    )
    assert frame.to_dict("records") == [{"sku": "CB-005", "stock": 200}]
    assert str(frame["sku"].dtype) == "string"
    assert str(frame["stock"].dtype) in ("Int32", "Int64")
    with pytest.raises(dbnb.FrameError, match="returns none"):
        seeded.frame("UPDATE products SET stock = stock WHERE sku = 'none'")


def test_read_frame_and_write_frame_dispatch_on_the_session(seeded: dbnb.Database) -> None:
    from sqlalchemy import select

    with seeded.session() as s:
        frame = dbnb.read_frame(s, select(shop.Product.sku, shop.Product.stock))
        assert len(frame) == 7 and str(frame["stock"].dtype) == "Int32"
        rows = pd.DataFrame({"sku": ["RF-100"], "name": ["Read frame"], "price": [1.5]})
        assert dbnb.write_frame(s, shop.Product, rows) == 1
        s.rollback()


async def test_arrow_and_polars_out_and_in_everywhere(shell: Any, seeded: dbnb.Database) -> None:
    import polars as pl
    import pyarrow as pa

    users = shell(shop.User, seeded)
    table = await call(users.to_arrow(order_by="email", columns=["email", "age"]))
    assert isinstance(table, pa.Table) and table.column_names == ["email", "age"]
    emails = table.column("email").to_pylist()
    assert emails == sorted(emails) and {"ana@example.com", "ben@example.com"} <= set(emails)
    frame = await call(users.to_polars(order_by="email", columns=["email", "age"]))
    assert isinstance(frame, pl.DataFrame) and frame["email"].to_list() == table.column(
        "email").to_pylist()
    chunks = [c async for c in users.iter_frames(chunksize=2, backend="polars")] if (
        shell is dbnb.AsyncRepository) else list(users.iter_frames(chunksize=2, backend="polars"))
    assert all(isinstance(c, pl.DataFrame) for c in chunks)
    assert sum(c.height for c in chunks) == len(table)
    products = shell(shop.Product, seeded)
    new = pl.DataFrame({"sku": ["PL-001"], "name": ["Polars mug"], "price": [Decimal("7.50")],
                        "stock": [3]})
    assert await call(products.from_frame(new)) == 1
    got = await call(products.get_by(sku="PL-001"))
    assert got is not None and got.price == Decimal("7.50") and got.stock == 3
    await call(products.hard_delete(got.id))
