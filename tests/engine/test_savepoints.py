"""A failure inside ``db.transaction(s)`` rolls back only its SAVEPOINT, on both shells.

Whether the failure is raw SQL or an ORM flush from a repository bound to the session, the
outer transaction goes on: its earlier and later work commit, and no SAWarning is raised
(``filterwarnings = error`` turns one into a failure).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import String, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import dbnb


class _Base(DeclarativeBase):
    pass


class Member(_Base):
    __tablename__ = "savepoint_members"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(50), unique=True)


@pytest.fixture
def members(db: dbnb.Database) -> dbnb.Database:
    _Base.metadata.create_all(db.engine)
    db.execute("TRUNCATE savepoint_members")
    return db


def _ids(db: dbnb.Database) -> list[int]:
    return [r.id for r in db.execute("SELECT id FROM savepoint_members ORDER BY id")]


def _sync_failures() -> dict[str, Callable[[Any], None]]:
    return {
        "repository": lambda s: dbnb.Repository(Member, s).create(id=2, email="a@x"),
        "raw sql": lambda s: s.execute(text("INSERT INTO savepoint_members VALUES (2, 'a@x')")),
    }


def _async_failures() -> dict[str, Callable[[Any], Awaitable[Any]]]:
    return {
        "repository": lambda s: dbnb.AsyncRepository(Member, s).create(id=2, email="a@x"),
        "raw sql": lambda s: s.execute(text("INSERT INTO savepoint_members VALUES (2, 'a@x')")),
    }


@pytest.mark.parametrize("failure", ["repository", "raw sql"])
def test_sync_savepoint_failure_keeps_the_outer_transaction(
    members: dbnb.Database, failure: str
) -> None:
    with members.transaction() as s:
        repo = dbnb.Repository(Member, s)
        repo.create(id=1, email="a@x")
        with pytest.raises(dbnb.UniqueViolation), members.transaction(s):
            s.execute(text("INSERT INTO savepoint_members VALUES (5, 'inner@x')"))
            _sync_failures()[failure](s)
        repo.create(id=3, email="c@x")
        assert repo.count() == 2
    assert _ids(members) == [1, 3]  # earlier and later work committed, the inner row not


@pytest.mark.parametrize("failure", ["repository", "raw sql"])
async def test_async_savepoint_failure_keeps_the_outer_transaction(
    members: dbnb.Database, adb: dbnb.AsyncDatabase, failure: str
) -> None:
    async with adb.transaction() as s:
        repo = dbnb.AsyncRepository(Member, s)
        await repo.create(id=1, email="a@x")
        with pytest.raises(dbnb.UniqueViolation):
            async with adb.transaction(s):
                await s.execute(text("INSERT INTO savepoint_members VALUES (5, 'inner@x')"))
                await _async_failures()[failure](s)
        await repo.create(id=3, email="c@x")
        assert await repo.count() == 2
    assert _ids(members) == [1, 3]


def test_a_savepoint_that_succeeds_is_kept(members: dbnb.Database) -> None:
    with members.transaction() as s, members.transaction(s):
        dbnb.Repository(Member, s).create(id=7, email="kept@x")
    assert _ids(members) == [7]


async def test_an_outer_error_still_rolls_everything_back(
    members: dbnb.Database, adb: dbnb.AsyncDatabase
) -> None:
    with pytest.raises(RuntimeError):
        async with adb.transaction() as s:
            async with adb.transaction(s):
                await dbnb.AsyncRepository(Member, s).create(id=8, email="gone@x")
            raise RuntimeError("outer failure")
    assert _ids(members) == []
