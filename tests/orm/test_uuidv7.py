"""UUIDv7 keys: the client's v7 (RFC 9562 bit layout, monotonic), the server's ``uuidv7()``.

On the embedded PostgreSQL 18 the server default is its built-in ``uuidv7()``; the PostgreSQL
15 cluster of tests/server/test_compat_pg15.py checks the function dbnb creates there.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import polars as pl
import pytest
from sqlalchemy import Column, MetaData, String, Table, Uuid, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import dbnb
from dbnb.migrations.config import context_options
from dbnb.migrations.drift import compare
from dbnb.orm.models import new_registry


class V7Base(DeclarativeBase):
    registry = new_registry()
    metadata = registry.metadata


class Event(dbnb.UUIDv7PrimaryKey, V7Base):
    __tablename__ = "events_v7"
    name: Mapped[str] = mapped_column(String(20))


def assert_v7(value: uuid.UUID, *, near_ms: int, slack_ms: int = 60_000) -> None:
    """RFC 9562: 48-bit Unix milliseconds, version 7, variant 10xx."""
    assert value.version == 7 and value.variant == uuid.RFC_4122
    assert (value.int >> 76) & 0xF == 7 and (value.int >> 62) & 0b11 == 0b10
    assert abs((value.int >> 80) - near_ms) < slack_ms


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_client_uuid7_layout_and_order() -> None:
    made = [dbnb.uuid7() for _ in range(20_000)]  # many per millisecond
    for value in made[:: 997]:
        assert_v7(value, near_ms=now_ms(), slack_ms=5_000)
    assert made == sorted(made) and len(set(made)) == len(made)  # monotonic, never repeated
    assert isinstance(made[0], uuid.UUID)


@pytest.fixture(scope="module")
def events(db: dbnb.Database) -> Iterator[dbnb.Database]:
    V7Base.metadata.create_all(db.engine)
    yield db
    V7Base.metadata.drop_all(db.engine)


async def test_orm_copy_and_raw_sql_all_get_v7(events: dbnb.Database, shell: Any) -> None:
    repo = shell(Event, events)

    async def run(result: Any) -> Any:
        return await result if shell is dbnb.AsyncRepository else result

    made = await run(repo.create(name="orm"))
    assert_v7(made.id, near_ms=now_ms())
    await run(repo.from_frame(pl.DataFrame({"name": ["copy1", "copy2"]})))
    events.execute("INSERT INTO events_v7 (name) VALUES ('sql')")
    rows = events.execute("SELECT id, name FROM events_v7 WHERE name <> 'orm'")
    assert len(rows) == 3
    for value, _name in rows:
        assert_v7(value, near_ms=now_ms())
    events.execute("DELETE FROM events_v7")


def test_server_ids_follow_time(events: dbnb.Database) -> None:
    for i in range(5):
        events.execute("INSERT INTO events_v7 (name) VALUES (:n); SELECT pg_sleep(0.002)",
                       n=f"s{i}")
    ids = [r[0] for r in events.execute("SELECT id FROM events_v7 ORDER BY name")]
    assert ids == sorted(ids)
    events.execute("DELETE FROM events_v7")


def test_alembic_sees_no_change_in_the_default(events: dbnb.Database) -> None:
    assert Event.__table__.c.id.server_default is not None
    with events.engine.connect() as conn:
        found = conn.exec_driver_sql(
            "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef "
            "WHERE adrelid = 'events_v7'::regclass"
        ).scalar()
        assert found == "uuidv7()"
        drifts = compare(conn, V7Base.metadata, context_options())
        assert [d for d in drifts if d.table == "events_v7"] == []  # (the shop's are others)
    changed = MetaData()
    Table("events_v7", changed,
          Column("id", Uuid, primary_key=True, server_default=func.gen_random_uuid()),
          Column("name", String(20), nullable=False))
    with events.engine.connect() as conn:
        drifts = compare(conn, changed, context_options())
    mine = [d.kind for d in drifts if d.table == "events_v7"]
    assert mine == ["modify_default"]  # the comparison does look at the default
