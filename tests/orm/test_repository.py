"""Every repository method, on both shells (psycopg and asyncpg), against the real server.

Each test runs twice: with ``Repository`` and with ``AsyncRepository``. ``call()`` awaits what
the async shell returns, so one scenario proves both.
"""

from __future__ import annotations

import contextlib
import inspect
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, func, select, true

import dbnb
from dbnb import FilterError, KeysetPage, NotFound, Page, Repository
from dbnb.examples import shop
from dbnb.examples.shop import OrderItem, Product, User
from dbnb.orm.models import ModelList

#: Run on each backend (tests/conftest.py); a difference shows as a failing case.
BACKENDS = ("postgresql", "sqlite", "mariadb")


async def call(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


@pytest.fixture
def tag(shell: Any) -> str:
    """A per-shell, per-test prefix so both runs can write without colliding."""
    return f"{shell.__name__[:5].lower()}-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def statements(db: dbnb.Database) -> Iterator[list[str]]:
    """Record the SQL sent by both engines while the block runs."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        seen.append(sql.lstrip().split(None, 1)[0].upper())

    engines = [db.engine, db.async_engine.sync_engine]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


async def test_create_commits_and_returns_server_defaults(
    shell: Any, seeded: dbnb.Database, tag: str
) -> None:
    users = shell(User, seeded)
    user = await call(users.create(email=f"{tag}@example.com", name="Ana", age=31))
    assert isinstance(user.id, uuid.UUID)
    assert user.created_at is not None
    assert user.updated_at == user.created_at
    assert user.deleted_at is None  # loaded, not lazily fetched: the session is closed
    assert user.is_active is True
    # Committed: another session sees it.
    assert Repository(User, seeded).get(user.id) is not None


async def test_create_accepts_relationships(shell: Any, seeded: dbnb.Database) -> None:
    orders = shell(shop.Order, seeded)
    item = OrderItem(product_id=shop.SEED_PRODUCTS[4]["id"], quantity=2, unit_price=Decimal("9.99"))
    order = await call(
        orders.create(user_id=shop.SEED_USERS[2]["id"], total=Decimal("19.98"), items=[item])
    )
    assert item.order_id == order.id
    assert Repository(OrderItem, seeded).count(order_id=order.id) == 1
    with pytest.raises(FilterError, match="no column 'itemz'"):
        await call(orders.create(user_id=shop.SEED_USERS[2]["id"], total=0, itemz=[]))


async def test_get_variants(shell: Any, seeded: dbnb.Database) -> None:
    users = shell(User, seeded)
    ana_id = shop.SEED_USERS[0]["id"]
    ana = await call(users.get(ana_id))
    assert ana.email == "ana@example.com"
    assert await call(users.get(uuid.uuid4())) is None
    assert (await call(users.get_or_raise(ana_id))).id == ana_id
    assert (await call(users.get_by(email="ben@example.com"))).name == "Ben"
    assert await call(users.get_by(email="nobody@example.com")) is None
    assert (await call(users.get_by_or_raise(User.age > 40))).name == "Ben"
    with pytest.raises(NotFound, match=r"User matching users.age > :age_1 not found"):
        await call(users.get_by_or_raise(User.age > 50))  # only Fay, who is soft-deleted
    many = await call(users.get_many([shop.SEED_USERS[1]["id"], ana_id, uuid.uuid4()]))
    assert isinstance(many, ModelList)
    assert [u.name for u in many] == ["Ana", "Ben"]


async def test_get_or_raise_names_model_and_key(shell: Any, seeded: dbnb.Database) -> None:
    users = shell(User, seeded)
    missing = uuid.UUID(int=99)
    with pytest.raises(NotFound, match=f"User with id=UUID\\('{missing}'\\) not found"):
        await call(users.get_or_raise(missing))
    fay = shop.SEED_USERS[5]  # soft-deleted in the seed
    with pytest.raises(NotFound, match="missing or soft-deleted"):
        await call(users.get_or_raise(fay["id"]))
    with pytest.raises(NotFound, match=r"User with email='fay@example\.com' not found"):
        await call(users.get_by_or_raise(email="fay@example.com"))


async def test_list_filters_orders_and_limits(shell: Any, seeded: dbnb.Database) -> None:
    products = shell(Product, seeded)
    rows = await call(products.list(price__gte=Decimal("50"), order_by="-price"))
    assert isinstance(rows, ModelList)
    assert [p.sku for p in rows] == ["MN-003", "HD-004", "DK-006", "KB-001"]
    rows = await call(products.list(Product.name.ilike("%cable%")))
    assert [p.sku for p in rows] == ["CB-005"]
    rows = await call(products.list(order_by=["-stock", "sku"], limit=2, offset=1))
    assert [p.sku for p in rows] == ["MS-002", "KB-001"]
    assert await call(products.list(sku__in=[])) == []
    assert len(await call(products.list(sku__startswith="KB"))) == 1


async def test_paginate(shell: Any, seeded: dbnb.Database) -> None:
    products = shell(Product, seeded)
    first = await call(products.paginate(page=1, size=3, order_by="sku"))
    assert isinstance(first, Page)
    assert (first.total, first.page, first.size, first.pages) == (7, 1, 3, 3)
    assert [p.sku for p in first.items] == ["CB-005", "DK-006", "HD-004"]
    assert first.has_next
    assert not first.has_previous
    last = await call(products.paginate(page=3, size=3, order_by="sku"))
    assert [p.sku for p in last.items] == ["MS-002"]
    assert not last.has_next
    beyond = await call(products.paginate(page=9, size=3))
    assert beyond.items == []
    assert beyond.total == 7
    filtered = await call(products.paginate(stock__gt=20, size=10))
    assert filtered.total == 3
    assert "page 1 of 1 (3 rows in all)" in filtered._repr_html_()


async def test_keyset_walks_every_row_once_in_order(shell: Any, seeded: dbnb.Database) -> None:
    products = shell(Product, seeded)
    expected = [p.sku for p in await call(products.list(order_by="-price"))]
    seen: list[str] = []
    window = await call(products.keyset(order_by="-price", size=3))
    while True:
        assert isinstance(window, KeysetPage)
        seen += [p.sku for p in window.items]
        if not window.has_more:
            break
        window = await call(products.keyset(order_by="-price", after=window.last, size=3))
    assert seen == expected
    assert window.keys == ("-price", "-id")
    by_dict = await call(
        products.keyset(order_by="sku", after={"sku": "KB-001", "id": uuid.UUID(int=0)})
    )
    assert [p.sku for p in by_dict.items][:2] == ["KB-001", "LM-007"]
    by_tuple = await call(
        products.keyset(order_by="sku", after=("KB-001", uuid.UUID(int=2**128 - 1)))
    )
    assert by_tuple.items[0].sku == "LM-007"


async def test_count_and_exists(shell: Any, seeded: dbnb.Database) -> None:
    products = shell(Product, seeded)
    assert await call(products.count()) == 7
    assert await call(products.count(stock=0)) == 1
    assert await call(products.exists(sku="KB-001")) is True
    assert await call(products.exists(sku="WC-008")) is False  # soft-deleted
    assert await call(products.exists(Product.price > 10_000)) is False


async def test_update_moves_updated_at(shell: Any, seeded: dbnb.Database, tag: str) -> None:
    users = shell(User, seeded)
    user = await call(users.create(email=f"{tag}@example.com", name="Ana"))
    updated = await call(users.update(user.id, name="Ana M."))
    assert updated.name == "Ana M."
    assert updated.updated_at > user.updated_at
    assert updated.created_at == user.created_at
    with pytest.raises(NotFound, match="User with id="):
        await call(users.update(uuid.uuid4(), name="x"))


async def test_update_many_counts_and_moves_updated_at(
    shell: Any, seeded: dbnb.Database, tag: str
) -> None:
    users = shell(User, seeded)
    rows = [{"email": f"{tag}-{i}@example.com", "name": f"n{i}", "age": 10 + i} for i in range(5)]
    created = await call(users.create_many(rows))
    changed = await call(
        users.update_many({"is_active": False}, User.email.like(f"{tag}-%"), age__lt=13)
    )
    assert changed == 3
    after = {u.email: u for u in await call(users.list(email__startswith=tag))}
    for before in created:
        now = after[before.email]
        assert now.is_active is (before.age >= 13)
        assert (now.updated_at > before.updated_at) is (before.age < 13)


async def test_create_many_is_one_insert_with_returning(
    shell: Any, seeded: dbnb.Database, tag: str
) -> None:
    users = shell(User, seeded)
    rows = [{"email": f"{tag}-{i}@example.com", "name": "Bulk", "age": i} for i in range(50)]
    with statements(seeded) as seen:
        created = await call(users.create_many(rows))
    assert seen.count("INSERT") == 1
    assert len(created) == 50
    assert [u.email for u in created] == [r["email"] for r in rows]
    assert all(isinstance(u.id, uuid.UUID) and u.created_at is not None for u in created)
    assert await call(users.create_many([])) == []


async def test_get_or_create(shell: Any, seeded: dbnb.Database, tag: str) -> None:
    users = shell(User, seeded)
    email = f"{tag}@example.com"
    made, created = await call(users.get_or_create(email=email, defaults={"name": "New"}))
    assert created is True
    assert made.name == "New"
    again, created = await call(users.get_or_create(email=email, defaults={"name": "Other"}))
    assert created is False
    assert again.id == made.id
    assert again.name == "New"
    with pytest.raises(FilterError, match="no column 'email__ilike'"):
        await call(users.get_or_create(email__ilike=email))


async def test_upsert_inserts_then_updates_on_the_partial_unique_key(
    shell: Any, seeded: dbnb.Database, tag: str
) -> None:
    users = shell(User, seeded)
    email = f"{tag}@example.com"
    first = await call(users.upsert({"email": email, "name": "Ana", "age": 30}, on=["email"]))
    second = await call(users.upsert({"email": email, "name": "Ana M.", "age": 31}, on=["email"]))
    assert second.id == first.id
    assert (second.name, second.age) == ("Ana M.", 31)
    assert second.updated_at > first.updated_at
    only_name = await call(
        users.upsert({"email": email, "name": "A", "age": 99}, on=["email"], update=["name"])
    )
    assert (only_name.name, only_name.age) == ("A", 31)
    nothing = await call(users.upsert({"email": email, "name": "Z"}, on=["email"], update=[]))
    assert nothing.name == "A"
    # A soft-deleted row does not hold the key: the partial index only covers live rows.
    await call(users.delete(first.id))
    reborn = await call(users.upsert({"email": email, "name": "Again"}, on=["email"]))
    assert reborn.id != first.id
    assert await call(users.with_deleted().count(email=email)) == 2


async def test_soft_delete_restore_and_hard_delete(
    shell: Any, seeded: dbnb.Database, tag: str
) -> None:
    users = shell(User, seeded)
    user = await call(users.create(email=f"{tag}@example.com", name="Gone"))
    deleted = await call(users.delete(user.id))
    assert deleted.deleted_at is not None
    assert deleted.is_deleted
    assert await call(users.get(user.id)) is None
    assert await call(users.exists(email=f"{tag}@example.com")) is False
    assert (await call(users.with_deleted().get(user.id))).id == user.id
    assert user.id in {u.id for u in await call(users.only_deleted().list())}
    assert await call(users.only_deleted().count(email=f"{tag}@example.com")) == 1
    with pytest.raises(NotFound):
        await call(users.delete(user.id))  # already deleted
    restored = await call(users.restore(user.id))
    assert restored.deleted_at is None
    with pytest.raises(NotFound):
        await call(users.restore(user.id))  # not deleted any more
    await call(users.delete(user.id))
    gone = await call(users.hard_delete(user.id))  # works on a soft-deleted row
    assert gone.id == user.id
    assert await call(users.with_deleted().get(user.id)) is None
    with pytest.raises(NotFound):
        await call(users.hard_delete(user.id))


async def test_delete_many_soft_and_hard(shell: Any, seeded: dbnb.Database, tag: str) -> None:
    users = shell(User, seeded)
    await call(
        users.create_many([{"email": f"{tag}-{i}@example.com", "name": "x"} for i in range(4)])
    )
    assert (
        await call(users.delete_many(email__startswith=tag, email__endswith="1@example.com")) == 1
    )
    assert await call(users.count(email__startswith=tag)) == 3
    assert await call(users.with_deleted().count(email__startswith=tag)) == 4
    with pytest.raises(FilterError, match="delete_many needs a filter"):
        await call(users.delete_many())
    with pytest.raises(FilterError, match="update_many needs a filter"):
        await call(users.update_many({"name": "y"}))
    # Models without SoftDelete are deleted for real.
    items = shell(OrderItem, seeded)
    target = await call(
        items.create(
            order_id=shop.SEED_ORDERS[0]["id"],
            product_id=shop.SEED_PRODUCTS[0]["id"],
            quantity=1,
            unit_price=Decimal("1.00"),
        )
    )
    assert (await call(items.delete(target.id))).id == target.id
    assert await call(items.get(target.id)) is None
    assert await call(items.delete_many(OrderItem.quantity > 1000)) == 0
    with pytest.raises(TypeError, match="OrderItem has no soft delete"):
        items.with_deleted()
    with pytest.raises(TypeError, match="OrderItem has no soft delete"):
        await call(items.restore(target.id))


async def test_execute_runs_any_statement_with_the_visibility(
    shell: Any, seeded: dbnb.Database
) -> None:
    users = shell(User, seeded)
    stmt = select(func.count()).select_from(User)
    alive = (await call(users.execute(stmt))).scalar_one()
    everyone = (await call(users.with_deleted().execute(stmt))).scalar_one()
    assert everyone == alive + (await call(users.only_deleted().execute(stmt))).scalar_one()
    emails = (await call(users.execute(select(User).where(User.name == "Ben")))).scalars().all()
    assert {u.email for u in emails} == {"ben@example.com"}
    result = await call(users.update_many({"name": "Ben"}, true(), email="ben@example.com"))
    assert result == 1


async def test_subclass_infers_the_model(shell: Any, seeded: dbnb.Database) -> None:
    class ProductRepo(shell[Product]):  # type: ignore[misc,valid-type]
        def in_stock(self) -> Any:
            return self.list(stock__gt=0)

    repo = ProductRepo(seeded)
    assert repo.model is Product
    assert len(await call(repo.in_stock())) == 6
    assert repr(repo) == "<ProductRepo[Product] on database>"
    assert repr(repo.with_deleted()) == "<ProductRepo[Product] on database, all>"
    with pytest.raises(TypeError, match="takes a model and a bind"):
        shell(seeded)
    with pytest.raises(TypeError, match="binds to"):
        shell(Product, "postgresql://nope")


async def test_unknown_columns_fail_before_any_query(shell: Any, seeded: dbnb.Database) -> None:
    users = shell(User, seeded)
    with statements(seeded) as seen:
        for bad in (
            lambda: users.list(emial="x"),
            lambda: users.count(age__gtee=3),
            lambda: users.update(uuid.uuid4(), nmae="x"),
            lambda: users.update_many({"nmae": "x"}, age=3),
            lambda: users.create(nmae="x"),
            lambda: users.create_many([{"email": "a"}, {"nmae": "x"}]),
            lambda: users.upsert({"email": "a"}, on=["emial"]),
            lambda: users.list(order_by="-creatd_at"),
        ):
            with pytest.raises(FilterError):
                await call(bad())
    assert seen == []
