"""Bad input and server faults: clear dbnb errors, nothing half-committed, the next call works.

Every scenario runs on both shells: ``Repository`` (psycopg) and ``AsyncRepository`` (asyncpg).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import URL

import dbnb
from dbnb import (
    AsyncRepository,
    ConnectionFailed,
    FilterError,
    ForeignKeyViolation,
    PaginationError,
    QueryTimeout,
    Repository,
    UniqueViolation,
)
from dbnb.examples import shop
from dbnb.examples.shop import Order, User

ANA = shop.SEED_USERS[0]["id"]


async def call(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


@contextlib.contextmanager
def no_query_sent(db: dbnb.Database) -> Iterator[None]:
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(args[2])

    engines = [db.engine, db.async_engine.sync_engine]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)
    assert sent == []


def email() -> str:
    return f"fault-{uuid.uuid4().hex[:10]}@example.com"


def exists(db: dbnb.Database, address: str) -> bool:
    return Repository(User, db).with_deleted().exists(email=address)


async def test_bad_filters_and_pages_fail_before_any_query(
    shell: Any, seeded: dbnb.Database
) -> None:
    users = shell(User, seeded)
    bad: list[tuple[Any, type[Exception], str]] = [
        (lambda: users.list(nmae="Ana"), FilterError, "Did you mean 'name'"),
        (lambda: users.count(age__bigger=3), FilterError, "Valid operators: eq, ne"),
        (lambda: users.update(ANA, nmae="x"), FilterError, r"no column 'nmae' \(in update\)"),
        (lambda: users.update_many({"agee": 1}, age=3), FilterError, "no column 'agee'"),
        (lambda: users.paginate(page=0), PaginationError, "page must be an integer >= 1, got 0"),
        (lambda: users.paginate(page=-3), PaginationError, "page must be"),
        (lambda: users.paginate(page="2"), PaginationError, "page must be"),
        (lambda: users.paginate(size=1001), PaginationError, "from 1 to 1000, got 1001"),
        (lambda: users.paginate(size=0), PaginationError, "from 1 to 1000"),
        (lambda: users.keyset(size=5000), PaginationError, "from 1 to 1000"),
        (lambda: users.keyset(order_by=["name", "-agee"]), FilterError, "'agee'"),
        (lambda: users.keyset(order_by="name", after="forged.cursor"), PaginationError,
         "not made by this API"),
        (lambda: users.keyset(order_by="name", after={"name": "x"}), PaginationError, "'id'"),
        (lambda: users.list(limit=-1), PaginationError, "limit must be"),
    ]
    with no_query_sent(seeded):
        for make, error, message in bad:
            with pytest.raises(error, match=message):
                await call(make())


async def test_max_page_size_is_a_class_setting(shell: Any, seeded: dbnb.Database) -> None:
    class Small(shell[User]):  # type: ignore[misc,valid-type]
        max_page_size = 2

    with pytest.raises(PaginationError, match="from 1 to 2, got 3"):
        await call(Small(seeded).paginate(size=3))
    assert len((await call(Small(seeded).paginate(size=2))).items) == 2


async def test_unique_and_foreign_key_violations(shell: Any, seeded: dbnb.Database) -> None:
    users = shell(User, seeded)
    with pytest.raises(UniqueViolation) as unique:
        await call(users.create(email="ana@example.com", name="Twin"))
    assert unique.value.constraint == "uq_users_email"
    assert unique.value.sqlstate == "23505"
    orders = shell(Order, seeded)
    with pytest.raises(ForeignKeyViolation) as fk:
        await call(orders.create(user_id=uuid.uuid4(), total=Decimal(0)))
    assert fk.value.constraint == "fk_orders_user_id_users"
    # The failed calls left the pool healthy.
    assert await call(users.exists(email="ana@example.com"))


async def test_violation_in_a_transaction_rolls_back_earlier_writes(
    shell: Any, seeded: dbnb.Database, adb: dbnb.AsyncDatabase
) -> None:
    first = email()

    async def work() -> None:
        if shell is Repository:
            with seeded.transaction() as s:
                Repository(User, s).create(email=first, name="First")
                Repository(Order, s).create(user_id=uuid.uuid4(), total=Decimal(0))
        else:
            async with adb.transaction() as s:
                await AsyncRepository(User, s).create(email=first, name="First")
                await AsyncRepository(Order, s).create(user_id=uuid.uuid4(), total=Decimal(0))

    with pytest.raises(ForeignKeyViolation):
        await work()
    assert not exists(seeded, first)


async def test_backend_terminated_mid_transaction(
    shell: Any, seeded: dbnb.Database, adb: dbnb.AsyncDatabase
) -> None:
    first, second = email(), email()

    def kill(pid: int) -> None:
        assert seeded.execute("SELECT pg_terminate_backend(:pid)", pid=pid)[0][0] is True

    async def work() -> None:
        if shell is Repository:
            with seeded.transaction() as s:
                Repository(User, s).create(email=first, name="First")
                kill(s.scalar(select(func.pg_backend_pid())))
                Repository(User, s).create(email=second, name="Second")
        else:
            async with adb.transaction() as s:
                await AsyncRepository(User, s).create(email=first, name="First")
                kill(await s.scalar(select(func.pg_backend_pid())))
                await AsyncRepository(User, s).create(email=second, name="Second")

    with pytest.raises(ConnectionFailed):
        await work()
    assert not exists(seeded, first)
    assert not exists(seeded, second)
    users = shell(User, seeded)
    assert await call(users.count(email=first)) == 0  # the next call works
    made = await call(users.create(email=second, name="After"))
    assert made.email == second


@pytest.fixture(scope="module")
def timeout_db(seeded: dbnb.Database, server_url: URL) -> Iterator[dbnb.Database]:
    database = dbnb.connect(server_url, database=seeded.database, statement_timeout=200)
    yield database
    database.close()


async def test_statement_timeout_raises_query_timeout(
    shell: Any, timeout_db: dbnb.Database, adb: dbnb.AsyncDatabase
) -> None:
    users = shell(User, timeout_db)
    with pytest.raises(QueryTimeout) as info:
        await call(users.list(func.pg_sleep(5).is_not(None)))
    assert info.value.sqlstate == "57014"
    assert "statement_timeout" in str(info.value)
    assert await call(users.count(email="ana@example.com")) == 1  # the connection is usable
    if shell is AsyncRepository:
        await timeout_db.asyncio.refresh_pools()


async def test_cancelled_async_list_leaves_no_query_and_no_connection(
    seeded: dbnb.Database, adb: dbnb.AsyncDatabase
) -> None:
    users = AsyncRepository(User, seeded)
    sleeping = func.pg_sleep(30).is_not(None)
    activity = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND state = 'active' AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()"
    )
    connections = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = :app AND pid <> pg_backend_pid()"
    )

    async def wait_for(sql: str, predicate: Any, *, within: float, **params: Any) -> int:
        # Poll the server until the predicate holds or the deadline passes.
        deadline = asyncio.get_running_loop().time() + within
        while True:
            value = int(seeded.execute(sql, **params)[0][0])
            if predicate(value) or asyncio.get_running_loop().time() > deadline:
                return value
            await asyncio.sleep(0.01)

    assert await users.count() > 0  # warm the pool
    warm = adb.pool_status()["async"]
    for _ in range(50):
        task = asyncio.ensure_future(users.list(sleeping))
        # Generous on a loaded machine: only the cancellation itself is under test.
        assert await wait_for(activity, lambda n: n == 1, within=10) == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await wait_for(activity, lambda n: n == 0, within=2) == 0
    status = adb.pool_status()["async"]
    assert status.checked_out == 0
    assert status.checked_in + status.overflow <= warm.checked_in + warm.overflow
    # The server agrees: this application holds no more connections than the pools allow.
    app = seeded.settings.application_name
    held = await wait_for(
        connections, lambda n: n <= seeded.settings.pool_size + 1, within=2, app=app
    )
    assert held <= seeded.settings.pool_size + 1  # + the sync pool's one connection
    assert await users.count(email="ana@example.com") == 1
