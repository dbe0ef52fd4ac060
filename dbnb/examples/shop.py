"""The tutorial domain: users, products, orders and their items, with deterministic seed data.

The models live on their own declarative base (``shop.Base``, ``shop.metadata``), so importing
the example never adds tables to a notebook's own :class:`dbnb.Base`::

    from dbnb.examples import shop
    shop.seed(db)                                   # creates missing tables, loads fixed rows
    with db.transaction() as s:
        order = shop.place_order(s, shop.ANA, [(shop.KEYBOARD, 2)])
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Numeric,
    String,
    select,
    text,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from dbnb.dialects import capabilities
from dbnb.display.tables import Record
from dbnb.errors import DbnbError, NotFound
from dbnb.orm import models
from dbnb.orm.models import BigIntPrimaryKey, SoftDelete, Timestamps, UUIDPrimaryKey
from dbnb.orm.unique import unique_while_alive

if TYPE_CHECKING:
    from dbnb.engine.database import Database

__all__ = [
    "Base",
    "InsufficientStock",
    "Order",
    "OrderItem",
    "Product",
    "SeedReport",
    "User",
    "metadata",
    "place_order",
    "seed",
]


class Base(models.Base, DeclarativeBase):
    """The shop's own declarative base: dbnb's conventions, a separate ``MetaData``."""

    registry = models.new_registry()
    metadata = registry.metadata


metadata = Base.metadata


class User(UUIDPrimaryKey, Timestamps, SoftDelete, Base):
    """A customer; ``email`` is unique among users that are not soft-deleted."""

    __tablename__ = "users"
    __table_args__ = (unique_while_alive("uq_users_email", "email"),)

    email: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(100))
    age: Mapped[int | None]
    is_active: Mapped[bool] = mapped_column(default=True, server_default=text("true"))

    orders: Mapped[list[Order]] = relationship(back_populates="user")


class Product(UUIDPrimaryKey, Timestamps, SoftDelete, Base):
    """A catalogue item; ``sku`` is unique among products that are not soft-deleted."""

    __tablename__ = "products"
    __table_args__ = (
        unique_while_alive("uq_products_sku", "sku"),
        CheckConstraint("stock >= 0", name="stock_nonnegative"),
        CheckConstraint("price >= 0", name="price_nonnegative"),
    )

    sku: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    stock: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    category: Mapped[str] = mapped_column(
        String(40), default="other", server_default="other", index=True
    )


class Order(UUIDPrimaryKey, Timestamps, Base):
    """An order placed by a user; its items load eagerly (``selectin``), also on asyncio."""

    __tablename__ = "orders"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="placed", server_default="placed")
    total: Mapped[Decimal] = mapped_column(Numeric(12, 2))

    user: Mapped[User] = relationship(back_populates="orders")
    items: Mapped[list[OrderItem]] = relationship(
        back_populates="order", lazy="selectin", cascade="all, delete-orphan"
    )


class OrderItem(BigIntPrimaryKey, Base):
    """One line of an order: a product, a quantity and the unit price at order time."""

    __tablename__ = "order_items"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), index=True
    )
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id"), index=True)
    quantity: Mapped[int]
    unit_price: Mapped[Decimal] = mapped_column(Numeric(10, 2))

    order: Mapped[Order] = relationship(back_populates="items")
    product: Mapped[Product] = relationship()


class InsufficientStock(DbnbError, ValueError):
    """A product has fewer units in stock than an order asks for; nothing was changed."""

    def __init__(self, sku: str, requested: int, available: int) -> None:
        super().__init__(
            f"not enough stock for {sku}: {requested} requested, {available} available; "
            "the order was not placed and no stock changed"
        )
        self.sku = sku
        self.requested = requested
        self.available = available


Items = Iterable[tuple[uuid.UUID, int]] | Mapping[uuid.UUID, int]


def _lines(items: Items) -> dict[uuid.UUID, int]:
    pairs = items.items() if isinstance(items, Mapping) else items
    lines: dict[uuid.UUID, int] = {}
    for product_id, quantity in pairs:
        if quantity <= 0:
            raise ValueError(f"quantity must be positive, got {quantity} for product {product_id}")
        lines[product_id] = lines.get(product_id, 0) + quantity
    if not lines:
        raise ValueError("an order needs at least one item")
    return lines


def _place_order(session: Session, user_id: uuid.UUID, lines: dict[uuid.UUID, int]) -> Order:
    with session.begin_nested():
        user = session.scalars(
            select(User).where(User.id == user_id, User.deleted_at.is_(None))
        ).one_or_none()
        if user is None:
            raise NotFound(f"User with id={user_id} not found (missing or deleted)")
        # Lock the rows in a fixed order so concurrent orders cannot deadlock each other.
        products = {
            p.id: p
            for p in session.scalars(
                select(Product)
                .where(Product.id.in_(lines), Product.deleted_at.is_(None))
                .order_by(Product.id)
                .with_for_update()
            )
        }
        missing = [str(pid) for pid in lines if pid not in products]
        if missing:
            raise NotFound(f"Product with id={', '.join(missing)} not found (missing or deleted)")
        for pid, quantity in lines.items():
            if products[pid].stock < quantity:
                raise InsufficientStock(products[pid].sku, quantity, products[pid].stock)
        items = []
        for pid, quantity in lines.items():
            products[pid].stock -= quantity
            price = products[pid].price
            items.append(OrderItem(product_id=pid, quantity=quantity, unit_price=price))
        total = sum((i.unit_price * i.quantity for i in items), Decimal("0.00"))
        order = Order(user_id=user_id, total=total, items=items)
        session.add(order)
        session.flush()
    return order


def place_order(
    session: Session | AsyncSession,
    user_id: uuid.UUID,
    items: Items,
) -> Any:
    """Create an order with its items and take the units out of stock, atomically.

    Runs in a SAVEPOINT of ``session`` and never commits: the caller's transaction decides.
    The products are locked (``SELECT … FOR UPDATE``) before their stock is checked. With an
    AsyncSession the call returns a coroutine to await.

    Args:
        session: a Session or AsyncSession, typically from ``db.transaction()``.
        user_id: the customer; a missing or soft-deleted user raises ``NotFound``.
        items: ``(product_id, quantity)`` pairs or a ``{product_id: quantity}`` mapping.

    Returns:
        The new ``Order`` (flushed, with its ``items``).

    Raises:
        InsufficientStock: a product has fewer units than asked; nothing changed.
        NotFound: the user or a product is missing or soft-deleted; nothing changed.

    Example::

        with db.transaction() as s:
            order = place_order(s, ana_id, [(keyboard_id, 1), (mouse_id, 2)])
    """
    lines = _lines(items)
    if isinstance(session, AsyncSession):
        return session.run_sync(_place_order, user_id, lines)
    return _place_order(session, user_id, lines)


# -- deterministic seed data --------------------------------------------------------------------


def _uid(kind: int, n: int) -> uuid.UUID:
    return uuid.UUID(f"{kind:08x}-0000-4000-8000-{n:012x}")


_T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


def _at(days: int, hours: int = 0) -> datetime:
    return _T0 + timedelta(days=days, hours=hours)


SEED_USERS: tuple[dict[str, Any], ...] = tuple(
    {"id": _uid(1, i), "email": email, "name": name, "age": age, "is_active": active,
     "created_at": _at(i), "updated_at": _at(i), "deleted_at": deleted}
    for i, (email, name, age, active, deleted) in enumerate(
        [
            ("ana@example.com", "Ana", 31, True, None),
            ("ben@example.com", "Ben", 45, True, None),
            ("chloe@example.com", "Chloé", 27, True, None),
            ("dev@example.com", "Dev", None, False, None),
            ("emil@example.com", "Emil", 17, True, None),
            ("fay@example.com", "Fay", 52, True, _at(20)),
        ],
        start=1,
    )
)

SEED_PRODUCTS: tuple[dict[str, Any], ...] = tuple(
    {"id": _uid(2, i), "sku": sku, "name": name, "price": Decimal(price), "stock": stock,
     "created_at": _at(0, i), "updated_at": _at(0, i), "deleted_at": deleted}
    for i, (sku, name, price, stock, deleted) in enumerate(
        [
            ("KB-001", "Mechanical keyboard", "89.90", 25, None),
            ("MS-002", "Wireless mouse", "24.50", 60, None),
            ("MN-003", "27-inch monitor", "279.00", 8, None),
            ("HD-004", "Noise-cancelling headphones", "149.00", 12, None),
            ("CB-005", "USB-C cable", "9.99", 200, None),
            ("DK-006", "Docking station", "119.00", 0, None),
            ("LM-007", "Desk lamp", "34.00", 15, None),
            ("WC-008", "Webcam (discontinued)", "59.00", 4, _at(15)),
        ],
        start=1,
    )
)

# (order number, user number, day offset, [(product number, quantity), ...])
_ORDERS = [
    (1, 1, 3, [(1, 1), (2, 1)]),
    (2, 2, 4, [(3, 2)]),
    (3, 1, 9, [(5, 3), (7, 1)]),
    (4, 3, 11, [(4, 1), (2, 2), (5, 1)]),
    (5, 5, 12, [(2, 1)]),
]
_PRICES = {p["id"]: p["price"] for p in SEED_PRODUCTS}

SEED_ORDER_ITEMS: tuple[dict[str, Any], ...] = tuple(
    {"id": 10 * o + k, "order_id": _uid(3, o), "product_id": _uid(2, p), "quantity": q,
     "unit_price": _PRICES[_uid(2, p)]}
    for o, _u, _d, lines in _ORDERS
    for k, (p, q) in enumerate(lines, start=1)
)

SEED_ORDERS: tuple[dict[str, Any], ...] = tuple(
    {"id": _uid(3, o), "user_id": _uid(1, u), "status": "placed", "created_at": _at(d, 2),
     "updated_at": _at(d, 2),
     "total": sum((i["unit_price"] * i["quantity"] for i in SEED_ORDER_ITEMS
                   if i["order_id"] == _uid(3, o)), Decimal("0.00"))}
    for o, u, d, _lines in _ORDERS
)


@dataclass(frozen=True)
class SeedReport:
    """How many seed rows each table received (0 where they were already there)."""

    users: int
    products: int
    orders: int
    order_items: int

    FIELDS: ClassVar[tuple[str, ...]] = ("users", "products", "orders", "order_items")

    def _fields(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.FIELDS}

    def _record(self) -> Record:
        return Record("shop seed: rows inserted", self._fields(), names=True)

    def __str__(self) -> str:
        return self._record().text()

    def _repr_html_(self) -> str:
        return self._record().html()


_INSERT_OR_SKIP: dict[str, Any] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def _insert_missing(session: Session, model: type[Base], rows: Iterable[dict[str, Any]]) -> int:
    caps = capabilities(session.get_bind())
    table: Any = model.__table__
    if caps.upsert == "on_duplicate_key":
        ignored = mysql.insert(table).prefix_with("IGNORE")
        return int(session.connection().execute(ignored, list(rows)).rowcount)
    stmt = _INSERT_OR_SKIP[caps.name](model).on_conflict_do_nothing(index_elements=["id"])
    return len(session.execute(stmt.returning(table.c.id), list(rows)).all())


def seed(db: Database, *, create_tables: bool = True) -> SeedReport:
    """Load the shop's fixed data set (fixed ids and timestamps) and commit; safe to re-run.

    Rows whose id already exists are left alone (``ON CONFLICT (id) DO NOTHING``), so running
    it twice changes nothing. With ``create_tables`` (the default) missing tables are created
    first from :data:`metadata`; pass ``False`` when Alembic owns the schema.

    Example::

        db = dbnb.connect(database="shop", reset=True)
        shop.seed(db)
    """
    with db.session() as s:
        if create_tables:
            metadata.create_all(s.connection())
        report = SeedReport(
            users=_insert_missing(s, User, SEED_USERS),
            products=_insert_missing(s, Product, SEED_PRODUCTS),
            orders=_insert_missing(s, Order, SEED_ORDERS),
            order_items=_insert_missing(s, OrderItem, SEED_ORDER_ITEMS),
        )
        if capabilities(s.get_bind()).sequences:
            # Fixed item ids bypass the identity sequence; move it past them for later inserts.
            s.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence('order_items', 'id'), "
                    "(SELECT coalesce(max(id), 0) + 1 FROM order_items), false)"
                )
            )
        return report
