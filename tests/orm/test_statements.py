"""Statement builders, compiled without a server: what SQL each repository call sends."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import ForeignKey
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.base import Executable

from dbnb import FilterError
from dbnb.examples.shop import OrderItem, User
from dbnb.orm.models import new_registry
from dbnb.orm.statements import Statements, Write

DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


class _Base(DeclarativeBase):
    registry = new_registry()


class Membership(_Base):
    __tablename__ = "statements_memberships"
    group_id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("statements_people.id"), primary_key=True)


class Person(_Base):
    __tablename__ = "statements_people"
    id: Mapped[int] = mapped_column(primary_key=True)


def sql(statement: Executable | Write) -> str:
    if isinstance(statement, Write):
        assert statement.returning  # PostgreSQL returns the row of every one-row write
        statement = statement.statement
    return re.sub(
        r"::(TIMESTAMP WITH TIME ZONE|[A-Z]+)",
        "",
        " ".join(str(statement.compile(dialect=DIALECT)).split()),
    )


def test_composite_keys_compare_as_tuples() -> None:
    q = Statements(Membership)
    assert "(statements_memberships.group_id, statements_memberships.user_id) = " in sql(
        q.get((1, 2))
    )
    with pytest.raises(FilterError, match="composite key; pass a tuple of 2"):
        q.get(1)
    assert q.describe((1, 2)) == "Membership with group_id=1, user_id=2"


def test_soft_delete_and_restore_are_updates_that_move_updated_at() -> None:
    q = Statements(User)
    deleted = sql(q.delete(1))
    assert deleted.startswith("UPDATE users SET updated_at=now(), deleted_at=now()")
    assert "users.deleted_at IS NULL" in deleted
    assert deleted.endswith("RETURNING " + ", ".join(f"users.{c.name}" for c in User.__table__.c))
    restored = sql(q.restore(1))
    assert "SET updated_at=now(), deleted_at=%(deleted_at)s" in restored
    assert "users.deleted_at IS NOT NULL" in restored
    assert sql(q.hard_delete(1)).startswith("DELETE FROM users WHERE users.id = %(id_1)s RETURNING")


def test_models_without_soft_delete_are_deleted_for_real() -> None:
    assert sql(Statements(OrderItem).delete(1)).startswith("DELETE FROM order_items")


def test_visibility_reaches_reads_as_execution_options_and_writes_as_where() -> None:
    assert Statements(User).select().get_execution_options() == {}
    assert Statements(User, "all").count((), {}).get_execution_options() == {
        "include_deleted": True
    }
    assert Statements(User, "deleted").exists((), {}).get_execution_options() == {
        "only_deleted": True
    }
    assert "deleted_at" not in sql(Statements(User, "all").update_many({"age": 1}, [], {"age": 2}))
    assert "users.deleted_at IS NOT NULL" in sql(
        Statements(User, "deleted").update_many({"age": 1}, [], {"age": 2})
    )
    with pytest.raises(TypeError, match="Person has no soft delete"):
        Statements(Person, "deleted")


def test_upsert_targets_the_partial_unique_index() -> None:
    upsert = sql(Statements(User).upsert({"email": "a", "name": "A"}, on=["email"], update=None))
    assert (
        "ON CONFLICT (email) WHERE deleted_at IS NULL DO UPDATE SET name = excluded.name" in upsert
    )
    assert "updated_at = now()" in upsert
    keep = sql(Statements(User).upsert({"email": "a", "name": "A"}, on=["email"], update=[]))
    assert "DO UPDATE SET email = excluded.email" in keep
    assert "updated_at" not in keep.split("DO UPDATE")[1].split("RETURNING")[0]
    with pytest.raises(FilterError, match="upsert needs on="):
        Statements(User).upsert({"email": "a"}, on=[], update=None)
