"""Errors are keyed by SQLSTATE and identical whichever driver ran the statement."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from sqlalchemy import text

import dbnb
from dbnb.driver_errors import translate


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


# -- the chain and PostgreSQL's diagnostics, the same on both drivers ----------------------------


def _chain(exc: BaseException) -> list[BaseException]:
    """Follow __cause__ (then __context__ when not suppressed) like a traceback printer does."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None:
        assert all(current is not seen for seen in found), "the chain loops"
        found.append(current)
        cause = current.__cause__
        if cause is None and not current.__suppress_context__:
            cause = current.__context__
        current = cause
    return found


async def _failure(db: dbnb.Database, sql: str, *, driver: str) -> dbnb.DbnbError:
    """Run ``sql`` through a session on one driver; return the dbnb error that left it."""
    try:
        if driver == "asyncpg":
            async with db.asyncio.session() as s:
                await s.execute(text(sql))
        else:
            with db.session() as s:
                s.execute(text(sql))
    except dbnb.DbnbError as exc:
        return exc
    raise AssertionError(f"no error from {sql!r}")


@pytest.fixture(scope="module")
def customers(db: dbnb.Database) -> dbnb.Database:
    db.execute("CREATE TABLE customers (id int PRIMARY KEY, "
               "email text CONSTRAINT uq_customers_email UNIQUE, age int NOT NULL)")
    db.execute("INSERT INTO customers VALUES (1, 'ana@example.com', 31)")
    return db


@pytest.mark.parametrize("driver", ["psycopg", "asyncpg"])
async def test_the_chain_is_dbnb_then_sqlalchemy_then_the_driver(
    customers: dbnb.Database, adb: dbnb.AsyncDatabase, driver: str
) -> None:
    import traceback

    from sqlalchemy.exc import SQLAlchemyError

    exc = await _failure(customers, "SELECT agee FROM customers", driver=driver)
    chain = _chain(exc)
    assert isinstance(chain[0], dbnb.QueryError)
    assert isinstance(chain[1], SQLAlchemyError)
    assert not any(isinstance(e, dbnb.DbnbError) for e in chain[1:])
    assert type(chain[-1]).__module__.split(".")[0] == driver
    printed = "".join(traceback.format_exception(exc))
    assert printed.count("dbnb.errors.QueryError: ") == 1  # the dbnb error is shown once


@pytest.mark.parametrize("driver", ["psycopg", "asyncpg"])
async def test_a_foreign_error_in_a_session_block_keeps_its_own_chain(
    db: dbnb.Database, adb: dbnb.AsyncDatabase, driver: str
) -> None:
    with pytest.raises(KeyError) as info:
        if driver == "psycopg":
            with db.session():
                raise KeyError("mine")
        else:
            async with adb.session():
                raise KeyError("mine")
    assert info.value.__cause__ is None


def test_a_dbnb_error_raised_inside_a_session_is_not_its_own_cause(seeded: dbnb.Database) -> None:
    from dbnb.examples import shop

    with pytest.raises(dbnb.NotFound) as info, seeded.session():
        dbnb.Repository(shop.User, seeded).get_or_raise("00000000-0000-0000-0000-000000000000")
    assert info.value.__cause__ is not info.value
    _chain(info.value)
    with pytest.raises(dbnb.UniqueViolation) as unique, seeded.transaction() as s:
        dbnb.Repository(shop.User, s).create(email="ana@example.com", name="Twin")
    assert _chain(unique.value)[1] is not unique.value


@pytest.mark.parametrize("driver", ["psycopg", "asyncpg"])
async def test_diagnostics_of_an_undefined_column(
    customers: dbnb.Database, adb: dbnb.AsyncDatabase, driver: str
) -> None:
    exc = await _failure(customers, "SELECT email,\n       agee FROM customers", driver=driver)
    assert isinstance(exc, dbnb.QueryError) and type(exc) is dbnb.QueryError
    assert exc.sqlstate == "42703" and exc.severity == "ERROR"
    assert exc.hint == 'Perhaps you meant to reference the column "customers.age".'
    assert exc.position == 22 and exc.column == "agee"
    assert str(exc).splitlines() == [
        'column "agee" does not exist',
        "LINE 2:        agee FROM customers",
        "               ^",
        'HINT:  Perhaps you meant to reference the column "customers.age".',
    ]


@pytest.mark.parametrize("driver", ["psycopg", "asyncpg"])
async def test_diagnostics_of_a_unique_violation(
    customers: dbnb.Database, adb: dbnb.AsyncDatabase, driver: str
) -> None:
    exc = await _failure(customers, "INSERT INTO customers VALUES (2, 'ana@example.com', 3)",
                   driver=driver)
    assert isinstance(exc, dbnb.UniqueViolation)
    assert (exc.constraint, exc.table, exc.schema) == ("uq_customers_email", "customers", "public")
    assert exc.detail == "Key (email)=(ana@example.com) already exists."
    first, detail = str(exc).splitlines()
    assert first.startswith('duplicate key value violates unique constraint "uq_customers_email"')
    assert "(constraint" not in first and "use another" in first
    assert detail == "DETAIL:  Key (email)=(ana@example.com) already exists."


@pytest.mark.parametrize("driver", ["psycopg", "asyncpg"])
async def test_diagnostics_of_a_syntax_error_and_a_bad_value(
    customers: dbnb.Database, adb: dbnb.AsyncDatabase, driver: str
) -> None:
    exc = await _failure(customers, "SELEC 1", driver=driver)
    assert isinstance(exc, dbnb.QueryError) and exc.sqlstate == "42601"
    assert str(exc).splitlines()[1:] == ["LINE 1: SELEC 1", "        ^"]
    bad = await _failure(customers, "SELECT 'x'::int", driver=driver)
    assert bad.sqlstate == "22P02" and bad.position == 8  # type: ignore[attr-defined]
    nulls = await _failure(
        customers, "INSERT INTO customers (id, email) VALUES (3, 'x@example.com')", driver=driver
    )
    assert isinstance(nulls, dbnb.NotNullViolation)
    assert (nulls.column, nulls.table) == ("age", "customers")
    assert nulls.detail is not None and nulls.detail.startswith("Failing row contains")
    typed = await _failure(customers, "SELECT 1::no_such_type", driver=driver)
    assert typed.sqlstate == "42704" and typed.position == 11  # type: ignore[attr-defined]


def test_long_lines_show_a_window_around_the_caret() -> None:
    from dbnb.diagnostics import position_lines

    statement = "SELECT " + ", ".join(f"col_{i}" for i in range(40)) + ", agee FROM t"
    line, caret = position_lines(statement, statement.index("agee") + 1)
    assert line.startswith("LINE 1: ...") and len(line) < 90
    assert line[caret.index("^"):].startswith("agee")
    assert position_lines("SELECT 1", 99) == []


def test_passwords_in_sql_are_masked() -> None:
    from dbnb.redaction import mask_secrets

    assert mask_secrets("ALTER ROLE app PASSWORD 's3cr''et' LOGIN") == (
        "ALTER ROLE app PASSWORD '***' LOGIN"
    )


def test_translated_errors_are_raised_without_from_where_exc_may_be_a_dbnb_error() -> None:
    """`raise translate(exc) from exc` in a broad except would make a DbnbError its own cause."""
    import ast
    from pathlib import Path

    broad = {"Exception", "BaseException"}
    offenders = []
    for path in Path(dbnb.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ExceptHandler):
                continue
            caught = node.type
            if caught is not None and not (isinstance(caught, ast.Name) and caught.id in broad):
                continue
            for inner in ast.walk(node):
                if (isinstance(inner, ast.Raise) and inner.cause is not None
                        and isinstance(inner.exc, ast.Call)
                        and "translate" in ast.unparse(inner.exc.func)):
                    offenders.append(f"{path.name}:{inner.lineno}")
    assert offenders == []
