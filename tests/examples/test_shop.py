"""The shop example: deterministic seed, place_order atomicity, constraints named by convention."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import select

import dbnb
from dbnb import AsyncRepository, CheckViolation, NotFound, Repository, UniqueViolation
from dbnb.examples import shop
from dbnb.examples.shop import InsufficientStock, Order, OrderItem, Product, User

ANA = shop.SEED_USERS[0]["id"]
FAY = shop.SEED_USERS[5]["id"]  # soft-deleted
KEYBOARD, MOUSE, MONITOR = (shop.SEED_PRODUCTS[i]["id"] for i in range(3))
DOCK = shop.SEED_PRODUCTS[5]["id"]  # out of stock
WEBCAM = shop.SEED_PRODUCTS[7]["id"]  # soft-deleted


@pytest.fixture(scope="module")
def seeded(db: dbnb.Database) -> dbnb.Database:
    report = shop.seed(db)
    assert (report.users, report.products, report.orders, report.order_items) == (6, 8, 5, 9)
    return db


def stock(db: dbnb.Database, product_id: uuid.UUID) -> int:
    return Repository(Product, db).with_deleted().get_or_raise(product_id).stock


def test_seed_is_deterministic_and_idempotent(seeded: dbnb.Database) -> None:
    again = shop.seed(seeded)
    assert (again.users, again.products, again.orders, again.order_items) == (0, 0, 0, 0)
    assert "users" in str(again)
    assert "<table" in again._repr_html_()
    ana = Repository(User, seeded).get_or_raise(ANA)
    assert ana.id == uuid.UUID("00000001-0000-4000-8000-000000000001")
    assert ana.created_at.isoformat() == "2025-01-07T09:00:00+00:00"
    orders = Repository(Order, seeded).list(order_by="created_at")
    assert [o.total for o in orders] == [
        Decimal("114.40"),
        Decimal("558.00"),
        Decimal("63.97"),
        Decimal("207.99"),
        Decimal("24.50"),
    ]
    assert Repository(User, seeded).only_deleted().count() == 1


def test_seed_can_leave_the_schema_to_migrations(server_url: object) -> None:
    db = dbnb.connect(server_url, database="t_test_shop_noschema", reset=True)  # type: ignore[arg-type]
    try:
        with pytest.raises(dbnb.QueryError, match="users"):
            shop.seed(db, create_tables=False)
    finally:
        db.close()


def test_place_order_creates_items_and_takes_stock(seeded: dbnb.Database) -> None:
    before = stock(seeded, KEYBOARD), stock(seeded, MOUSE)
    with seeded.transaction() as s:
        order = shop.place_order(s, ANA, [(KEYBOARD, 2), (MOUSE, 1), (KEYBOARD, 1)])
    assert order.total == Decimal("89.90") * 3 + Decimal("24.50")
    assert sorted((i.quantity, i.unit_price) for i in order.items) == [
        (1, Decimal("24.50")),
        (3, Decimal("89.90")),
    ]
    assert (stock(seeded, KEYBOARD), stock(seeded, MOUSE)) == (before[0] - 3, before[1] - 1)
    assert Repository(OrderItem, seeded).count(order_id=order.id) == 2


def test_insufficient_stock_changes_nothing(seeded: dbnb.Database) -> None:
    before = stock(seeded, KEYBOARD), stock(seeded, MONITOR)
    orders = Repository(Order, seeded).count()
    with pytest.raises(InsufficientStock) as info, seeded.transaction() as s:
        shop.place_order(s, ANA, {KEYBOARD: 1, MONITOR: 99})
    assert info.value.sku == "MN-003"
    assert (info.value.requested, info.value.available) == (99, before[1])
    assert "99 requested, 8 available" in str(info.value)
    assert (stock(seeded, KEYBOARD), stock(seeded, MONITOR)) == before
    assert Repository(Order, seeded).count() == orders


def test_a_failed_order_keeps_the_callers_other_work(seeded: dbnb.Database) -> None:
    email = f"shop-{uuid.uuid4().hex[:8]}@example.com"
    with seeded.transaction() as s:
        Repository(User, s).create(email=email, name="Caller")
        with pytest.raises(InsufficientStock):
            shop.place_order(s, ANA, [(DOCK, 1)])  # its own SAVEPOINT rolls back alone
    assert Repository(User, seeded).exists(email=email)


def test_missing_or_deleted_user_or_product_is_not_found(seeded: dbnb.Database) -> None:
    with seeded.session() as s:
        with pytest.raises(NotFound, match="User with id="):
            shop.place_order(s, FAY, [(KEYBOARD, 1)])
        with pytest.raises(NotFound, match=f"Product with id={WEBCAM}"):
            shop.place_order(s, ANA, [(WEBCAM, 1)])
    with pytest.raises(ValueError, match="at least one item"):
        shop.place_order(None, ANA, [])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="quantity must be positive"):
        shop.place_order(None, ANA, [(KEYBOARD, 0)])  # type: ignore[arg-type]


async def test_place_order_on_asyncpg(seeded: dbnb.Database, adb: dbnb.AsyncDatabase) -> None:
    before = stock(seeded, MOUSE)
    async with adb.transaction() as s:
        order = await shop.place_order(s, ANA, [(MOUSE, 2)])
        assert [i.quantity for i in order.items] == [2]
    assert stock(seeded, MOUSE) == before - 2
    with pytest.raises(InsufficientStock):
        async with adb.transaction() as s:
            await shop.place_order(s, ANA, [(MOUSE, 2), (DOCK, 1)])
    assert stock(seeded, MOUSE) == before - 2


@pytest.mark.parametrize("shell", [Repository, AsyncRepository])
async def test_constraints_surface_with_their_conventional_names(
    shell: type, seeded: dbnb.Database, adb: dbnb.AsyncDatabase
) -> None:
    async def call(value: object) -> object:
        return await value if hasattr(value, "__await__") else value  # type: ignore[misc]

    products = shell(Product, seeded)
    with pytest.raises(CheckViolation) as check:
        await call(products.update(KEYBOARD, stock=-1))
    assert check.value.constraint == "ck_products_stock_nonnegative"
    with pytest.raises(UniqueViolation) as unique:
        await call(products.create(sku="KB-001", name="Again", price=Decimal(1)))
    assert unique.value.constraint == "uq_products_sku"
    assert "uq_products_sku" in str(unique.value)
    # The webcam's SKU is free again: its row is soft-deleted.
    reused = await call(products.create(sku="WC-008", name="New webcam", price=Decimal(70)))
    assert await call(products.with_deleted().count(sku="WC-008")) == 2
    await call(products.hard_delete(reused.id))  # type: ignore[attr-defined]


def test_relationships_navigate_the_domain(seeded: dbnb.Database) -> None:
    with seeded.session() as s:
        ana = s.scalars(select(User).where(User.id == ANA)).one()
        first = s.scalars(select(Order).where(Order.id == shop.SEED_ORDERS[0]["id"])).one()
        assert first in ana.orders
        assert first.user is ana
        assert sorted(i.product.sku for i in first.items) == ["KB-001", "MS-002"]
