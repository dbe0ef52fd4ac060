"""What only the async shell has to prove: its binds, and objects usable without lazy loads."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

import dbnb
from dbnb import AsyncRepository, Repository
from dbnb.examples import shop
from dbnb.examples.shop import Order, User

#: Run on each backend (tests/conftest.py); a difference shows as a failing case.
BACKENDS = ("postgresql", "sqlite", "mariadb")


async def test_binds_to_database_async_database_or_async_session(
    seeded: dbnb.Database, adb: dbnb.AsyncDatabase
) -> None:
    assert await AsyncRepository(User, seeded).count() == 5
    assert await AsyncRepository(User, adb).count() == 5
    async with adb.session() as s:
        assert await AsyncRepository(User, s).count() == 5
        assert repr(AsyncRepository(User, s)) == "<AsyncRepository[User] on session>"


def test_wrong_binds_are_refused(seeded: dbnb.Database) -> None:
    with pytest.raises(TypeError, match="AsyncRepository binds to Database, AsyncDatabase"):
        AsyncRepository(User, seeded.session_factory()())
    with pytest.raises(TypeError, match="Repository binds to Database, Session"):
        Repository(User, AsyncSession())
    with pytest.raises(TypeError, match="Repository binds to"):
        Repository(User, seeded.asyncio)


async def test_session_bound_async_repository_never_commits(
    seeded: dbnb.Database, adb: dbnb.AsyncDatabase
) -> None:
    email = f"async-{uuid.uuid4().hex[:8]}@example.com"
    async with adb.engine.connect() as conn:
        session = AsyncSession(bind=conn, expire_on_commit=False)
        user = await AsyncRepository(User, session).create(email=email, name="Uncommitted")
        assert user.created_at is not None
        await session.close()
        await conn.rollback()
    assert not Repository(User, seeded).exists(email=email)


async def test_returned_objects_need_no_lazy_load(adb: dbnb.AsyncDatabase) -> None:
    orders = AsyncRepository(Order, adb)
    order = await orders.get_or_raise(shop.SEED_ORDERS[0]["id"])
    # items load eagerly (selectin), also through the soft-delete hook
    assert sorted(i.quantity for i in order.items) == [1, 1]
    created = await AsyncRepository(User, adb).create(email=f"{uuid.uuid4().hex}@x.org", name="N")
    assert created.to_dict()["deleted_at"] is None
    assert created.age is None


async def test_concurrent_calls_share_the_pool(
    seeded: dbnb.Database, adb: dbnb.AsyncDatabase
) -> None:
    products = AsyncRepository(shop.Product, adb)
    counts = await asyncio.gather(*(products.count(price__gt=Decimal(i)) for i in range(20)))
    assert counts[0] == 7
    assert counts == sorted(counts, reverse=True)
    assert adb.pool_status()["async"].checked_out == 0
