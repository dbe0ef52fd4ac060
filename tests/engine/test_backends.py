"""A Database on each backend: connect, health, pool, info, create_all, scopes, logging.

Runs on PostgreSQL, SQLite (a file) and a throwaway MariaDB (tests/conftest.py); what exists
on one backend only is asserted as absent (not faked) on the others.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from sqlalchemy import String, text
from sqlalchemy.orm import Mapped, mapped_column

import dbnb
from dbnb import Base, SoftDelete, Timestamps, UUIDPrimaryKey
from dbnb.examples import shop

#: Run on each backend (tests/conftest.py); a difference shows as a failing case.
BACKENDS = ("postgresql", "sqlite", "mariadb")

LABELS = {"postgresql": "PostgreSQL", "sqlite": "SQLite", "mariadb": "MariaDB"}
DRIVERS = {
    "postgresql": ("psycopg", "asyncpg"),
    "sqlite": ("pysqlite", "aiosqlite"),
    "mariadb": ("pymysql", "aiomysql"),
}


class Note(UUIDPrimaryKey, Timestamps, SoftDelete, Base):
    """A model on dbnb's own Base, created by create_all."""

    __tablename__ = "backend_notes"
    body: Mapped[str] = mapped_column(String(200))


async def test_health_names_the_backend_and_both_drivers(
    db: dbnb.Database, adb: dbnb.AsyncDatabase, db_backend: str
) -> None:
    sync_driver, async_driver = DRIVERS[db_backend]
    report = db.health()
    assert report.ok and report.driver == sync_driver and report.backend == LABELS[db_backend]
    assert report.summary.startswith(f"healthy: {sync_driver} answered in")
    assert f"({LABELS[db_backend]} " in report.summary
    areport = await adb.health()
    assert areport.ok and areport.driver == async_driver
    assert areport.server_version == report.server_version


def test_pool_status_counts_the_drivers_pools(db: dbnb.Database, db_backend: str) -> None:
    db.health()
    sync_pool = db.pool_status()["sync"]
    assert sync_pool.driver == DRIVERS[db_backend][0] and sync_pool.started
    assert sync_pool.capacity == db.settings.pool_size + db.settings.max_overflow
    assert sync_pool.checked_out == 0 and sync_pool.checked_in >= 1


def test_info_shows_what_the_backend_has_and_nothing_else(
    db: dbnb.Database, db_backend: str
) -> None:
    info = db.info()
    shown = info.as_dict()
    assert isinstance(info.size_bytes, int) and info.size_bytes >= 0 and shown["version"]
    if db_backend == "sqlite":
        assert info.database.endswith(".db")
        assert info.connections is None and "connections" not in shown
        assert "application_name" not in shown and "idle_in_transaction" not in shown
    elif db_backend == "mariadb":
        assert info.database == db.database
        assert info.connections and "application_name" not in shown
        assert "idle_in_transaction" in shown
    else:
        assert shown["application_name"].startswith("dbnb:")


def test_sessions_are_postgresql_only(db: dbnb.Database, db_backend: str) -> None:
    if db_backend == "postgresql":
        assert db.sessions() is not None
        return
    with pytest.raises(dbnb.UnsupportedOnDialect) as info:
        db.sessions()
    assert info.value.feature == "sessions" and info.value.backend == LABELS[db_backend]


async def test_create_all_in_both_shells_creates_only_what_is_missing(
    db: dbnb.Database, adb: dbnb.AsyncDatabase
) -> None:
    created = db.create_all(Note)
    assert created == ["backend_notes"]
    assert db.create_all([Note, Note.__table__]) == []  # it exists now
    assert await adb.create_all(shop.Base) == ["products", "users", "orders", "order_items"]
    assert await adb.create_all(shop.metadata) == []
    notes = dbnb.Repository(Note, db)
    note = notes.create(body="hello")
    assert note.created_at.tzinfo is not None and note.deleted_at is None


async def test_a_sandbox_and_savepoints_roll_back_on_every_backend(
    db: dbnb.Database, adb: dbnb.AsyncDatabase
) -> None:
    db.create_all(Note)
    notes = dbnb.Repository(Note, db)
    before = notes.count()
    with db.sandbox():
        notes.create(body="gone after the sandbox")
        assert notes.count() == before + 1
    assert notes.count() == before
    with db.transaction() as s:
        dbnb.Repository(Note, s).create(body="kept")
        with pytest.raises(dbnb.NotFound), db.transaction(s):
            dbnb.Repository(Note, s).create(body="rolled back to the savepoint")
            raise dbnb.NotFound("inner work fails")
    assert {n.body for n in notes.list()} >= {"kept"}
    assert not notes.exists(body="rolled back to the savepoint")
    async with adb.sandbox():
        await dbnb.AsyncRepository(Note, db).create(body="async sandbox")
    assert not notes.exists(body="async sandbox")


def test_missing_ok_returns_false_or_none_instead_of_raising(db: dbnb.Database) -> None:
    db.create_all(Note)
    notes = dbnb.Repository(Note, db)
    nobody = uuid.uuid4()
    assert notes.delete(nobody, missing_ok=True) is False
    assert notes.hard_delete(nobody, missing_ok=True) is False
    assert notes.restore(nobody, missing_ok=True) is False
    assert notes.update(nobody, missing_ok=True, body="x") is None
    note = notes.create(body="to delete")
    deleted = notes.delete(note.id, missing_ok=True)
    assert deleted and deleted.deleted_at is not None
    assert notes.delete(note.id, missing_ok=True) is False  # already soft-deleted
    with pytest.raises(dbnb.NotFound):
        notes.delete(note.id)


async def test_missing_ok_on_the_async_shell(db: dbnb.Database, adb: dbnb.AsyncDatabase) -> None:
    db.create_all(Note)
    notes = dbnb.AsyncRepository(Note, db)
    nobody = uuid.uuid4()
    assert await notes.delete(nobody, missing_ok=True) is False
    assert await notes.hard_delete(nobody, missing_ok=True) is False
    assert await notes.restore(nobody, missing_ok=True) is False
    assert await notes.update(nobody, missing_ok=True, body="x") is None
    note = await notes.create(body="async")
    assert (await notes.update(note.id, missing_ok=True, body="y")).body == "y"


def test_errors_are_dbnb_errors_with_the_sqlstate(db: dbnb.Database) -> None:
    with pytest.raises(dbnb.QueryError) as info:
        db.execute("SELECT * FROM no_such_table_here")
    assert not isinstance(info.value, dbnb.ConnectionFailed)
    assert info.value.sqlstate is not None


def test_connect_and_dispose_are_logged_with_a_masked_url(
    db_backend: str, caplog: pytest.LogCaptureFixture, db: dbnb.Database
) -> None:
    url = db.url.set(password="hunter2") if db_backend != "sqlite" else db.url
    other = dbnb.connect(url, pool_size=2)  # another Database: its own engines
    caplog.set_level(logging.INFO, logger="dbnb")
    try:
        other.health()
    finally:
        other.close()
    created = [r for r in caplog.records if r.getMessage().startswith("engine created")]
    disposed = [r for r in caplog.records if r.getMessage().startswith("engine disposed")]
    assert created and disposed
    message = created[0].getMessage()
    assert DRIVERS[db_backend][0] in message and "pool 2 + 10" in message
    assert "hunter2" not in caplog.text


def test_failed_repository_calls_are_logged_with_their_context(
    seeded: dbnb.Database, caplog: pytest.LogCaptureFixture
) -> None:
    users = dbnb.Repository(shop.User, seeded)
    caplog.set_level(logging.INFO, logger="dbnb")
    with pytest.raises(dbnb.UniqueViolation):
        users.create(email="ana@example.com", name="Ana again")
    record = next(r for r in caplog.records if r.name == "dbnb.orm")
    context: Any = record
    assert record.levelno == logging.ERROR
    assert (context.operation, context.model, context.sqlstate) == ("create", "User", "23505")
    assert "User.create failed" in record.getMessage()


def test_redacted_values_stay_out_of_the_log(
    db: dbnb.Database, caplog: pytest.LogCaptureFixture
) -> None:
    # PostgreSQL's DETAIL and MySQL's "Duplicate entry '…'" quote the value; SQLite names the
    # column only. With redact_values none of them reaches the log.
    private = dbnb.connect(db.url, redact_values=True)
    shop.seed(private)
    caplog.set_level(logging.INFO, logger="dbnb")
    try:
        with pytest.raises(dbnb.UniqueViolation):
            dbnb.Repository(shop.User, private).create(email="ana@example.com", name="x")
    finally:
        private.close()
    assert "ana@example.com" not in caplog.text


def test_slow_statements_are_logged_over_the_threshold(
    db: dbnb.Database, caplog: pytest.LogCaptureFixture
) -> None:
    slow = dbnb.connect(db.url, slow_query_ms=0)
    caplog.set_level(logging.WARNING, logger="dbnb")
    try:
        slow.execute("SELECT 1 AS one")
    finally:
        slow.close()
    found = [r.getMessage() for r in caplog.records if r.name == "dbnb.sql"]
    assert any(m.startswith("slow statement: ") and "SELECT 1 AS one" in m for m in found)


def test_the_dbnb_logger_is_silent_by_default() -> None:
    handlers = logging.getLogger("dbnb").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


def test_text_sql_runs_as_written(db: dbnb.Database) -> None:
    rows = db.execute("SELECT 1 AS a, 'x' AS b")
    assert [tuple(r) for r in rows] == [(1, "x")]
    with db.session() as s:
        assert s.execute(text("SELECT 2")).scalar_one() == 2


async def test_an_in_memory_sqlite_database_is_shared_then_gone() -> None:
    """The README's test-engine recipe: one database for every session, fresh after close."""
    db = dbnb.connect("sqlite:///:memory:", dotenv=False)
    assert db.create_all(Note) == ["backend_notes"]
    dbnb.Repository(Note, db).create(body="sync")
    assert await dbnb.AsyncRepository(Note, db).count() == 1  # aiosqlite sees it too
    with db.session() as s:
        assert s.execute(text("SELECT count(*) FROM backend_notes")).scalar_one() == 1
    await db.asyncio.close()
    db.close()
    again = dbnb.connect("sqlite:///:memory:", dotenv=False)
    try:
        assert again is not db and again.create_all(Note) == ["backend_notes"]
        assert dbnb.Repository(Note, again).count() == 0
    finally:
        again.close()


@pytest.mark.other_backends
async def test_postgresql_only_tools_say_what_to_do_instead(
    seeded: dbnb.Database, adb: dbnb.AsyncDatabase, db_backend: str
) -> None:
    import pandas as pd

    users = dbnb.Repository(shop.User, seeded)
    calls: list[tuple[str, Any]] = [
        ("profile", lambda: seeded.profile("users")),
        ("value_counts", lambda: seeded.value_counts("users", "age")),
        ("histogram", lambda: seeded.histogram("users", "age")),
        ("create_table_from_frame",
         lambda: seeded.create_table_from_frame("from_frame_t", pd.DataFrame({"a": [1]}))),
        ("partitions", lambda: users.to_frame(partitions=2)),
        ("upsert_many", lambda: users.upsert_many([{"email": "a@b.c", "name": "A"}],
                                                  on=["email"])),
    ]
    if db_backend == "sqlite":
        calls.pop()  # SQLite has ON CONFLICT … RETURNING: upsert_many works there
    for feature, call in calls:
        with pytest.raises(dbnb.UnsupportedOnDialect) as info:
            call()
        assert feature in info.value.feature and info.value.backend == LABELS[db_backend]
        assert "; this database is " in str(info.value)
    with pytest.raises(dbnb.UnsupportedOnDialect):
        await adb.profile("users")


def test_upsert_many_where_inserts_return_rows(seeded: dbnb.Database, db_backend: str) -> None:
    users = dbnb.Repository(shop.User, seeded)
    rows = [{"email": "many-1@example.com", "name": "One"},
            {"email": "ana@example.com", "name": "Ana (upserted)"}]
    if db_backend == "mariadb":  # no RETURNING from ON DUPLICATE KEY UPDATE
        with pytest.raises(dbnb.UnsupportedOnDialect, match="from_frame"):
            users.upsert_many(rows, on=["email"])
        return
    got = users.upsert_many(rows, on=["email"])
    assert [u.email for u in got] == ["many-1@example.com", "ana@example.com"]
    assert got[1].id == shop.SEED_USERS[0]["id"] and got[1].name == "Ana (upserted)"
    assert got[1].updated_at > got[1].created_at
