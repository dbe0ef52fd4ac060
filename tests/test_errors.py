"""Errors are keyed by SQLSTATE and identical whichever driver ran the statement."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from sqlalchemy import text

import dbnb
from dbnb.errors import translate


def test_translate_leaves_foreign_exceptions_alone() -> None:
    err = KeyError("x")
    assert translate(err) is err
    already = dbnb.NotFound("User 1")
    assert translate(already) is already


def test_error_tree() -> None:
    assert issubclass(dbnb.UniqueViolation, dbnb.IntegrityViolation)
    assert issubclass(dbnb.QueryTimeout, dbnb.QueryCanceled)
    assert issubclass(dbnb.QueryError, dbnb.DbnbError)
    assert issubclass(dbnb.ConfigError, ValueError)  # catchable the Python way too
    # No shadowing of builtins or SQLAlchemy names.
    assert not {"TimeoutError", "IntegrityError"} & set(dbnb.__all__)


def test_statement_timeout_sync(db: dbnb.Database) -> None:
    timed = dbnb.connect(db.url, statement_timeout=200, pool_size=1, application_name="dbnb-to")
    try:
        start = time.monotonic()
        with pytest.raises(dbnb.QueryTimeout) as info:
            timed.execute("SELECT pg_sleep(5)")
        assert time.monotonic() - start < 3
        assert info.value.sqlstate == "57014" and "statement_timeout" in str(info.value)
        assert timed.execute("SELECT 1 AS one")[0].one == 1  # connection still usable
    finally:
        timed.close()


async def test_statement_timeout_async(db: dbnb.Database) -> None:
    timed = dbnb.connect(db.url, statement_timeout=200, pool_size=1, application_name="dbnb-ato")
    try:
        start = time.monotonic()
        with pytest.raises(dbnb.QueryTimeout) as info:
            await timed.asyncio.execute("SELECT pg_sleep(5)")
        assert time.monotonic() - start < 3 and info.value.sqlstate == "57014"
        assert (await timed.asyncio.execute("SELECT 1 AS one"))[0].one == 1
    finally:
        await timed.asyncio.close()


def test_serialization_failure_sync(db: dbnb.Database) -> None:
    db.execute("CREATE TABLE ser_t (id int PRIMARY KEY, n int)")
    db.execute("INSERT INTO ser_t VALUES (1, 0)")
    with pytest.raises(dbnb.SerializationFailure, match="retry"), db.session() as s1:
        s1.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        s1.execute(text("SELECT n FROM ser_t WHERE id = 1"))
        db.execute("UPDATE ser_t SET n = n + 1 WHERE id = 1")  # a concurrent writer commits
        s1.execute(text("UPDATE ser_t SET n = n + 10 WHERE id = 1"))
    assert db.execute("SELECT n FROM ser_t")[0].n == 1


async def test_serialization_failure_async(db: dbnb.Database, adb: dbnb.AsyncDatabase) -> None:
    await adb.execute("CREATE TABLE aser_t (id int PRIMARY KEY, n int)")
    await adb.execute("INSERT INTO aser_t VALUES (1, 0)")
    with pytest.raises(dbnb.SerializationFailure):
        async with adb.session() as s1:
            await s1.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            await s1.execute(text("SELECT n FROM aser_t WHERE id = 1"))
            await adb.execute("UPDATE aser_t SET n = n + 1 WHERE id = 1")
            await s1.execute(text("UPDATE aser_t SET n = n + 10 WHERE id = 1"))


def test_canceled_query_is_query_canceled_not_timeout(db: dbnb.Database) -> None:
    victim = dbnb.connect(db.url, pool_size=1, application_name="dbnb-cancel")
    canceller = dbnb.connect(db.url, pool_size=1, application_name="dbnb-canceller")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            victim.execute("SELECT pg_sleep(10)")
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    try:
        for _ in range(100):
            n = canceller.execute(
                "SELECT count(pg_cancel_backend(pid)) AS n FROM pg_stat_activity "
                "WHERE application_name = 'dbnb-cancel' AND query LIKE 'SELECT pg_sleep%'"
            )[0].n
            if n:
                break
            time.sleep(0.05)
        t.join(timeout=10)
        assert len(errors) == 1
        assert type(errors[0]) is dbnb.QueryCanceled and errors[0].sqlstate == "57014"  # type: ignore[attr-defined]
    finally:
        victim.close()
        canceller.close()


def _async_failure(db: dbnb.Database, sql: str) -> BaseException:
    """Run ``sql`` on asyncpg in a loop of its own and return the dbnb error it raised."""

    async def attempt() -> BaseException:
        other = dbnb.connect(db.url, pool_size=1, application_name="dbnb-both")
        try:
            await other.asyncio.execute(sql)
        except dbnb.DbnbError as exc:
            return exc
        finally:
            await other.asyncio.close()
        raise AssertionError(f"no error from {sql!r}")

    return asyncio.run(attempt())


def test_same_failure_same_class_on_both_drivers(db: dbnb.Database) -> None:
    db.execute("CREATE TABLE both_t (x int CONSTRAINT uq_both_t_x UNIQUE)")
    db.execute("INSERT INTO both_t VALUES (1)")
    with pytest.raises(dbnb.UniqueViolation) as sync_info:
        db.execute("INSERT INTO both_t VALUES (1)")
    async_exc = _async_failure(db, "INSERT INTO both_t VALUES (1)")
    assert type(async_exc) is dbnb.UniqueViolation
    for exc in (sync_info.value, async_exc):
        assert exc.constraint == "uq_both_t_x"  # type: ignore[attr-defined]
        assert exc.table == "both_t"  # type: ignore[attr-defined]
        assert exc.sqlstate == "23505"  # type: ignore[attr-defined]


def test_not_null_is_the_same_class_on_both_drivers(db: dbnb.Database) -> None:
    db.execute("CREATE TABLE nn_t (x int NOT NULL)")
    with pytest.raises(dbnb.NotNullViolation) as sync_info:
        db.execute("INSERT INTO nn_t VALUES (NULL)")
    async_exc = _async_failure(db, "INSERT INTO nn_t VALUES (NULL)")
    assert type(async_exc) is type(sync_info.value) is dbnb.NotNullViolation
    assert async_exc.column == sync_info.value.column == "x"  # type: ignore[attr-defined]
