"""transaction() (commit, roll back, SAVEPOINT), execute_in_transaction, sandbox: both drivers."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

import dbnb
from dbnb import AsyncRepository, Repository, UniqueViolation, execute_in_transaction
from dbnb.examples import shop
from dbnb.examples.shop import User


class Boom(Exception):
    pass


def email() -> str:
    return f"tx-{uuid.uuid4().hex[:10]}@example.com"


def alive(db: dbnb.Database, address: str) -> bool:
    return Repository(User, db).exists(email=address)


def test_transaction_commits_work_of_session_bound_repositories(seeded: dbnb.Database) -> None:
    a, b = email(), email()
    with seeded.transaction() as s:
        users = Repository(User, s)
        users.create(email=a, name="A")
        users.create(email=b, name="B")
        assert not alive(seeded, a)  # flushed in s, not committed: invisible elsewhere
    assert alive(seeded, a)
    assert alive(seeded, b)


def test_an_exception_rolls_back_everything(seeded: dbnb.Database) -> None:
    a = email()

    def work() -> None:
        with seeded.transaction() as s:
            Repository(User, s).create(email=a, name="A")
            Repository(shop.Product, s).update(shop.SEED_PRODUCTS[0]["id"], stock=1)
            raise Boom

    with pytest.raises(Boom):
        work()
    assert not alive(seeded, a)
    assert Repository(shop.Product, seeded).get_or_raise(shop.SEED_PRODUCTS[0]["id"]).stock == 25


def test_a_database_error_rolls_back_the_earlier_writes(seeded: dbnb.Database) -> None:
    a = email()

    def work() -> None:
        with seeded.transaction() as s:
            users = Repository(User, s)
            users.create(email=a, name="first")
            users.create(email="ana@example.com", name="duplicate")

    with pytest.raises(UniqueViolation, match="uq_users_email"):
        work()
    assert not alive(seeded, a)


def test_session_bound_repository_never_commits(seeded: dbnb.Database) -> None:
    a = email()
    with seeded.session_factory()() as s:
        Repository(User, s).create(email=a, name="A")
        s.rollback()
    assert not alive(seeded, a)


def test_nested_transaction_is_a_savepoint(seeded: dbnb.Database) -> None:
    outer, inner = email(), email()
    with seeded.transaction() as s:
        Repository(User, s).create(email=outer, name="outer")

        def work() -> None:
            with seeded.transaction(s):
                Repository(User, s).create(email=inner, name="inner")
                raise Boom

        with pytest.raises(Boom):
            work()
        kept = email()
        with seeded.transaction(s):
            Repository(User, s).create(email=kept, name="kept")
    assert alive(seeded, outer)
    assert not alive(seeded, inner)
    assert alive(seeded, kept)


def test_execute_in_transaction_is_all_or_nothing(seeded: dbnb.Database) -> None:
    a, b = email(), email()
    with seeded.transaction() as s:
        users = Repository(User, s)
        results = execute_in_transaction(
            s, lambda _: users.create(email=a, name="A"), lambda _: users.count(email=a)
        )
        assert results[1] == 1
        with pytest.raises(UniqueViolation):
            execute_in_transaction(
                s,
                lambda _: users.create(email=b, name="B"),
                lambda _: users.create(email="ana@example.com", name="dup"),
            )
    assert alive(seeded, a)
    assert not alive(seeded, b)


def test_sandbox_undoes_what_database_bound_repositories_committed(seeded: dbnb.Database) -> None:
    a = email()
    users = Repository(User, seeded)
    with seeded.sandbox() as s:
        users.create(email=a, name="sandboxed")  # "commits" in its own session
        assert users.exists(email=a)
        assert Repository(User, s).exists(email=a)
        users.delete_many(email="ben@example.com")
        assert not users.exists(email="ben@example.com")
    assert not alive(seeded, a)
    assert alive(seeded, "ben@example.com")


async def test_async_transaction_commit_and_rollback(
    seeded: dbnb.Database, adb: dbnb.AsyncDatabase
) -> None:
    a, b = email(), email()
    async with adb.transaction() as s:
        assert isinstance(s, AsyncSession)
        await AsyncRepository(User, s).create(email=a, name="A")
    assert alive(seeded, a)

    async def work() -> None:
        async with adb.transaction() as s:
            users = AsyncRepository(User, s)
            await users.create(email=b, name="B")
            await users.create(email=a, name="dup")

    with pytest.raises(UniqueViolation):
        await work()
    assert not alive(seeded, b)


async def test_async_savepoint_and_execute_in_transaction(
    seeded: dbnb.Database, adb: dbnb.AsyncDatabase
) -> None:
    outer, inner, c, d = email(), email(), email(), email()
    async with adb.transaction() as s:
        users = AsyncRepository(User, s)
        await users.create(email=outer, name="outer")

        async def work() -> None:
            async with adb.transaction(s):
                await users.create(email=inner, name="inner")
                raise Boom

        with pytest.raises(Boom):
            await work()
        done = await execute_in_transaction(
            s, users.create(email=c, name="C"), lambda _: users.count(email=c)
        )
        assert done[1] == 1
        with pytest.raises(UniqueViolation):
            await execute_in_transaction(
                s, users.create(email=d, name="D"), users.create(email=outer, name="dup")
            )
    assert alive(seeded, outer)
    assert alive(seeded, c)
    assert not alive(seeded, inner)
    assert not alive(seeded, d)


async def test_async_sandbox_undoes_repository_commits(
    seeded: dbnb.Database, adb: dbnb.AsyncDatabase
) -> None:
    a = email()
    users = AsyncRepository(User, seeded)
    async with adb.sandbox() as s:
        await users.create(email=a, name="sandboxed")
        assert await users.exists(email=a)
        assert await AsyncRepository(User, s).exists(email=a)
    assert not alive(seeded, a)


def test_sync_and_async_scopes_refuse_the_wrong_session(seeded: dbnb.Database) -> None:
    session: Any = AsyncSession()
    with pytest.raises(TypeError, match="async with"), seeded.transaction(session):
        pass
    with pytest.raises(TypeError, match="takes callables"), seeded.session() as s:
        execute_in_transaction(s, object())  # type: ignore[arg-type]


async def test_failed_async_batch_closes_the_coroutines_it_never_ran(
    seeded: dbnb.Database, adb: dbnb.AsyncDatabase
) -> None:
    a, b = email(), email()
    async with adb.session() as s:
        users = AsyncRepository(User, s)
        never = users.create(email=b, name="never")
        with pytest.raises(UniqueViolation):
            await execute_in_transaction(
                s, users.create(email=a, name="A"), users.create(email=a, name="dup"), never
            )
        assert never.cr_frame is None  # closed: no "never awaited" warning later
    assert not alive(seeded, a)
    assert not alive(seeded, b)
