"""Base, mixins and the shop models: DDL names, defaults, reprs that never load anything."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Numeric, inspect, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Mapped
from sqlalchemy.schema import CreateIndex

import dbnb
from dbnb.examples import shop
from dbnb.orm.models import ModelList

#: Run on each backend (tests/conftest.py); a difference shows as a failing case.
BACKENDS = ("postgresql", "sqlite", "mariadb")


def test_shop_models_use_their_own_metadata_with_the_naming_convention() -> None:
    assert shop.metadata is not dbnb.Base.metadata
    assert set(shop.metadata.tables) == {"users", "products", "orders", "order_items"}
    assert not {"users", "products"} & set(dbnb.Base.metadata.tables)
    assert isinstance(shop.User(), dbnb.Base)
    products = shop.metadata.tables["products"]
    names = {c.name for c in products.constraints}
    assert {"pk_products", "ck_products_stock_nonnegative"} <= names
    fks = {fk.name for fk in shop.metadata.tables["order_items"].foreign_key_constraints}
    assert fks == {"fk_order_items_order_id_orders", "fk_order_items_product_id_products"}


def test_unique_sku_and_email_are_partial_indexes_on_live_rows() -> None:
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    for table, name in (("products", "uq_products_sku"), ("users", "uq_users_email")):
        (index,) = [i for i in shop.metadata.tables[table].indexes if i.name == name]
        ddl = str(CreateIndex(index).compile(dialect=dialect))
        assert ddl.startswith(f"CREATE UNIQUE INDEX {name}")
        assert ddl.endswith("WHERE deleted_at IS NULL")


def test_column_types_and_mixin_order() -> None:
    price = shop.Product.__table__.c.price.type
    assert isinstance(price, Numeric)
    assert (price.precision, price.scale) == (10, 2)
    columns = [c.name for c in shop.User.__table__.c]
    assert columns[0] == "id"
    assert columns[-3:] == ["created_at", "updated_at", "deleted_at"]
    assert shop.User.__table__.c.created_at.type.timezone is True  # type: ignore[attr-defined]
    assert shop.User.__table__.c.id.server_default is not None
    assert str(shop.OrderItem.__table__.c.id.type) == "BIGINT"


def test_uuid_primary_key_is_generated_on_the_client() -> None:
    user = shop.User(email="x@example.com", name="X")
    # The client-side default applies at flush; the server default covers raw SQL inserts.
    assert user.id is None
    assert shop.User.__table__.c.id.default is not None


def test_repr_and_html_show_loaded_columns_only_without_loading() -> None:
    user = shop.User(id=uuid.UUID(int=7), email="ana@example.com", name="Ana")
    text = repr(user)
    assert text.startswith("<User id=00000000-0000-0000-0000-000000000007")
    assert "email='ana@example.com'" in text
    assert "created_at" not in text  # never set, so never loaded or invented
    html = user._repr_html_()
    assert "<table" in html
    assert "ana@example.com" in html
    assert "x" * 41 not in repr(shop.User(name="x" * 100))


def test_repr_of_expired_instance_does_no_io(seeded: dbnb.Database) -> None:
    with seeded.session() as s:
        user = s.scalars(select(shop.User).order_by(shop.User.email)).first()
        assert user is not None
        s.expire(user)
        assert repr(user) == "<User>"
        assert inspect(user).expired_attributes  # still expired: repr loaded nothing


def test_to_dict_and_model_list_rendering(seeded: dbnb.Database) -> None:
    with seeded.session() as s:
        rows = ModelList(s.scalars(select(shop.Product).order_by(shop.Product.sku)).all())
    first = rows[0].to_dict()
    assert first["sku"] == "CB-005"
    assert first["price"] == Decimal("9.99")
    assert set(first) == {c.name for c in shop.Product.__table__.c}
    assert "price" not in rows[0].to_dict(exclude=["price"])
    html = rows._repr_html_()
    assert "7 Product rows" in html  # the discontinued webcam is soft-deleted
    assert html.count("<tr>") == 1 + len(rows)
    assert rows.to_text().splitlines()[0] == "7 Product rows"
    empty = ModelList()._repr_html_()
    assert "no rows" in empty and "<table" not in empty


def test_soft_delete_mixin_methods_and_hybrid() -> None:
    product = shop.Product(sku="A", name="A", price=Decimal(1))
    assert product.is_deleted is False
    product.soft_delete()
    assert product.is_deleted is True
    assert product.deleted_at is not None
    assert product.deleted_at.tzinfo is not None
    assert product.deleted_at <= datetime.now(UTC)
    product.restore()
    assert product.is_deleted is False
    sql = str(select(shop.Product.id).where(shop.Product.is_deleted))
    assert "products.deleted_at IS NOT NULL" in sql


def test_timestamps_come_from_the_server_and_updated_at_moves(seeded: dbnb.Database) -> None:
    with seeded.session() as s:
        product = shop.Product(sku="TS-1", name="Timestamped", price=Decimal("1.00"), stock=1)
        s.add(product)
    created = product.created_at
    assert created is not None  # fetched with RETURNING: no lazy load needed after close
    assert product.updated_at == created
    with seeded.session() as s:
        product = s.merge(product)
        product.stock = 2
    assert product.updated_at > created
    assert product.created_at == created


def test_user_defined_model_on_dbnb_base_gets_the_convention() -> None:
    class ModelsTestNote(dbnb.BigIntPrimaryKey, dbnb.Timestamps, dbnb.Base):
        __tablename__ = "test_models_notes"
        body: Mapped[str]

    table = dbnb.Base.metadata.tables["test_models_notes"]
    assert table.primary_key.name == "pk_test_models_notes"
    assert ModelsTestNote.__table__ is table
    dbnb.Base.metadata.remove(table)


def test_base_and_abstract_models_refuse_to_be_instantiated() -> None:
    from sqlalchemy.orm import declared_attr

    class Stamped(dbnb.Base):
        __abstract__ = True

        @declared_attr.directive
        def __tablename__(cls) -> str:
            return cls.__name__.lower()

    for abstract in (dbnb.Base, Stamped, shop.Base):
        with pytest.raises(dbnb.AbstractModelError, match="is a base for models, not a model"):
            abstract()
    assert issubclass(dbnb.AbstractModelError, TypeError)
    user = shop.User(email="a@example.com", name="A")  # a mapped model still constructs
    assert user.email == "a@example.com" and "User" in repr(user)
