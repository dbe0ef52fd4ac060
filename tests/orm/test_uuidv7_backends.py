"""UUIDv7 keys on SQLite and MariaDB: the server default is a v7 there too, in their SQL."""

from __future__ import annotations

import inspect
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import dbnb
from dbnb.orm.models import new_registry

BACKENDS = ("sqlite", "mariadb")


class V7Base(DeclarativeBase):
    registry = new_registry()
    metadata = registry.metadata


class Note(dbnb.UUIDv7PrimaryKey, V7Base):
    __tablename__ = "notes_v7"
    text: Mapped[str] = mapped_column(String(20))


@pytest.fixture(scope="module")
def notes(db: dbnb.Database) -> Iterator[dbnb.Database]:
    V7Base.metadata.create_all(db.engine)
    yield db
    V7Base.metadata.drop_all(db.engine)


async def test_orm_and_raw_sql_ids_are_v7(notes: dbnb.Database, shell: Any) -> None:
    made = shell(Note, notes).create(text="orm")
    made = await made if inspect.isawaitable(made) else made
    notes.execute("INSERT INTO notes_v7 (text) VALUES ('sql1')")
    notes.execute("INSERT INTO notes_v7 (text) VALUES ('sql2')")
    ids = [r[0] for r in notes.execute("SELECT id FROM notes_v7 ORDER BY text")]
    now_ms = time.time_ns() // 1_000_000
    assert made.id in [uuid.UUID(str(i)) for i in ids]
    for raw in ids:
        value = uuid.UUID(str(raw))
        assert value.version == 7 and value.variant == uuid.RFC_4122
        assert abs((value.int >> 80) - now_ms) < 60_000
    assert len(set(ids)) == 3
    notes.execute("DELETE FROM notes_v7")
