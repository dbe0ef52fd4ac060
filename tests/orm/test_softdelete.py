"""The global soft-delete filter covers every ORM read path, on psycopg and on asyncpg."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import joinedload, selectinload

import dbnb
from dbnb import AsyncRepository, Repository
from dbnb.examples import shop
from dbnb.examples.shop import Order, OrderItem, Product, User

#: Run on each backend (tests/conftest.py); a difference shows as a failing case.
BACKENDS = ("postgresql", "sqlite", "mariadb")

WEBCAM = shop.SEED_PRODUCTS[7]["id"]  # soft-deleted in the seed
FAY = shop.SEED_USERS[5]["id"]  # soft-deleted in the seed
MONITOR = shop.SEED_PRODUCTS[2]["id"]  # soft-deleted by the fixture below; order 2 holds it
BEN = shop.SEED_USERS[1]["id"]  # soft-deleted by the fixture below; he placed order 2
ORDER_2 = shop.SEED_ORDERS[1]["id"]


@pytest.fixture(scope="module")
def seeded(db: dbnb.Database) -> dbnb.Database:
    shop.seed(db)
    Repository(Product, db).delete(MONITOR)
    Repository(User, db).delete(BEN)
    return db


def test_direct_selects_counts_and_get_hide_deleted_rows(seeded: dbnb.Database) -> None:
    with seeded.session() as s:
        skus = set(s.scalars(select(Product.sku)))
        assert "WC-008" not in skus
        assert "MN-003" not in skus
        assert s.scalar(select(func.count()).select_from(Product)) == 6
        assert s.get(Product, WEBCAM) is None
        assert s.scalars(select(Product).where(Product.id == WEBCAM)).first() is None
        # Aliases and subqueries are covered too.
        sub = select(Product.id).where(Product.stock >= 0).subquery()
        assert s.scalar(select(func.count()).select_from(sub)) == 6


def test_execution_options_opt_out(seeded: dbnb.Database) -> None:
    with seeded.session() as s:
        every = s.scalar(
            select(func.count()).select_from(Product), execution_options={"include_deleted": True}
        )
        deleted = set(s.scalars(select(Product.sku).execution_options(only_deleted=True)))
    assert every == 8
    assert deleted == {"WC-008", "MN-003"}


def test_raw_sql_is_not_filtered(seeded: dbnb.Database) -> None:
    rows = seeded.execute("SELECT count(*) FROM products")
    assert rows[0][0] == 8


def test_relationship_lazy_loads_hide_deleted_targets(seeded: dbnb.Database) -> None:
    with seeded.session() as s:
        order = s.scalars(select(Order).where(Order.id == ORDER_2)).one()
        assert order.user is None  # Ben is soft-deleted: the lazy load finds nothing
        (item,) = order.items
        assert item.product is None
    with seeded.session() as s:
        ana = s.get(User, shop.SEED_USERS[0]["id"])
        assert ana is not None
        assert len(ana.orders) == 2


def test_joined_and_selectin_eager_loads_hide_deleted_targets(seeded: dbnb.Database) -> None:
    with seeded.session() as s:
        order = (
            s.scalars(
                select(Order)
                .where(Order.id == ORDER_2)
                .options(
                    joinedload(Order.user), selectinload(Order.items).joinedload(OrderItem.product)
                )
            )
            .unique()
            .one()
        )
        assert order.user is None
        assert order.items[0].product is None
        items = s.scalars(
            select(OrderItem).options(selectinload(OrderItem.product)).order_by(OrderItem.id)
        ).all()
        products = {i.product.sku if i.product else None for i in items}
        assert None in products
        assert "MN-003" not in products


def test_include_deleted_shows_deleted_targets_in_the_same_statement(seeded: dbnb.Database) -> None:
    with seeded.session() as s:
        order = (
            s.scalars(
                select(Order).where(Order.id == ORDER_2).options(joinedload(Order.user)),
                execution_options={"include_deleted": True},
            )
            .unique()
            .one()
        )
        assert order.user is not None
        assert order.user.name == "Ben"


async def test_async_sessions_are_filtered_the_same_way(
    seeded: dbnb.Database, adb: dbnb.AsyncDatabase
) -> None:
    async with adb.session() as s:
        assert await s.scalar(select(func.count()).select_from(Product)) == 6
        order = (
            await s.scalars(
                select(Order)
                .where(Order.id == ORDER_2)
                .options(
                    selectinload(Order.user),
                    selectinload(Order.items).selectinload(OrderItem.product),
                )
            )
        ).one()
        assert order.user is None
        assert order.items[0].product is None
        deleted = set(await s.scalars(select(Product.sku).execution_options(only_deleted=True)))
        assert deleted == {"WC-008", "MN-003"}


@pytest.mark.parametrize("shell", [Repository, AsyncRepository])
async def test_pagination_and_counts_through_repositories(
    shell: Any, seeded: dbnb.Database, adb: dbnb.AsyncDatabase
) -> None:
    async def call(value: Any) -> Any:
        return await value if hasattr(value, "__await__") else value

    products = shell(Product, seeded)
    page = await call(products.paginate(size=4, order_by="sku"))
    assert page.total == 6
    assert "MN-003" not in [p.sku for p in page.items]
    assert await call(products.with_deleted().count()) == 8
    assert {p.sku for p in await call(products.only_deleted().list())} == {"WC-008", "MN-003"}
    only = await call(products.only_deleted().paginate(size=1))
    assert (only.total, only.pages) == (2, 2)
    window = await call(products.with_deleted().keyset(order_by="sku", size=10))
    assert len(window.items) == 8


def test_filter_state_is_per_statement_not_per_session(seeded: dbnb.Database) -> None:
    with seeded.session() as s:
        assert s.scalars(
            select(User).where(User.id == FAY), execution_options={"include_deleted": True}
        ).one()
        assert s.scalars(select(User.id).where(User.id == FAY)).first() is None
        assert s.execute(text("SELECT 1")).scalar() == 1


def test_lazy_loads_of_rows_read_with_deleted_still_hide_deleted_targets(
    seeded: dbnb.Database,
) -> None:
    with seeded.session() as s:
        ben = s.scalars(
            select(User).where(User.id == BEN), execution_options={"include_deleted": True}
        ).one()
        assert ben.is_deleted
        (order,) = ben.orders  # orders have no soft delete
        assert order.items[0].product is None  # the monitor is deleted
