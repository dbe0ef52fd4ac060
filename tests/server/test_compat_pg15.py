"""Version compatibility: the core paths against the machine's own PostgreSQL 15 (Debian).

The embedded PostgreSQL 18 is what the rest of the suite uses; this module starts a throwaway
PostgreSQL 15 cluster over TCP on 127.0.0.1 and runs both drivers, migrations and the frame
round trip against it. Where no PostgreSQL 15 binaries are installed it skips, saying why.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.orm import DeclarativeBase, Mapped

import dbnb
from dbnb import migrations
from dbnb.engine.registry import open_databases
from dbnb.examples import shop
from dbnb.orm.models import new_registry

BIN = Path("/usr/lib/postgresql/15/bin")


class V7Base(DeclarativeBase):
    registry = new_registry()
    metadata = registry.metadata


class Ticket(dbnb.UUIDv7PrimaryKey, V7Base):
    __tablename__ = "tickets"
    name: Mapped[str]
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg(command: str, *args: str, check: bool = True) -> None:
    """Run a PostgreSQL 15 program; as root, as the `postgres` user (the server refuses root)."""
    argv = [str(BIN / command), *args]
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    subprocess.run(argv, check=check, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def pg15() -> Iterator[str]:
    if not (BIN / "initdb").exists():
        pytest.skip(f"no PostgreSQL 15 binaries in {BIN}")
    home = Path(tempfile.mkdtemp(prefix="dbnb-pg15-"))
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
    data, port = str(home / "data"), _free_port()
    _pg("initdb", "-D", data, "-A", "trust", "-U", "postgres")
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1"
    _pg("pg_ctl", "-D", data, "-o", options, "-l", str(home / "log"), "-w", "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        for db in open_databases():
            if db.url.port == port:
                db.close()
        _pg("pg_ctl", "-D", data, "-m", "fast", "-w", "stop", check=False)
        shutil.rmtree(home, ignore_errors=True)


async def test_both_drivers_and_errors_on_postgresql_15(pg15: str) -> None:
    db = dbnb.connect(pg15, database="compat", reset=True)
    assert db.health().server_version.startswith("15")  # type: ignore[union-attr]
    db.execute("CREATE TABLE t (x int CONSTRAINT uq_t_x UNIQUE)")
    await db.asyncio.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(dbnb.UniqueViolation):
        db.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(dbnb.UniqueViolation):
        await db.asyncio.execute("INSERT INTO t VALUES (1)")
    assert (await db.asyncio.health()).ok
    await db.asyncio.refresh_pools()


def test_migrations_repositories_and_frames_on_postgresql_15(pg15: str) -> None:
    db = dbnb.connect(pg15, database="compat_shop", reset=True)
    applied = migrations.upgrade(db, config=ROOT / "alembic.ini")
    assert applied.from_revisions == () and [s.revision for s in applied.steps] == ["0001", "0002"]
    assert migrations.check(db, config=ROOT / "alembic.ini").ok
    shop.seed(db, create_tables=False)
    products = dbnb.Repository(shop.Product, db)
    frame = products.to_frame(columns=["sku", "price", "stock"], order_by="sku", decimal=True)
    assert str(frame["stock"].dtype) == "Int32" and isinstance(frame["price"].iloc[0], Decimal)
    extra = pd.DataFrame({"sku": ["PG-015"], "name": ["Fifteen"], "price": [15.5], "stock": [15]})
    assert products.from_frame(extra) == 1
    assert products.get_by(sku="PG-015").price == Decimal("15.50")  # type: ignore[union-attr]


def test_uuidv7_keys_on_postgresql_15(pg15: str) -> None:
    """PostgreSQL 15 has no uuidv7(): dbnb creates it with the table, a correct v7, not a v4."""
    import time
    import uuid

    import polars as pl

    from dbnb.migrations.config import context_options
    from dbnb.migrations.drift import compare

    db = dbnb.connect(pg15, database="compat_v7", reset=True)
    assert db.execute("SELECT to_regprocedure('uuidv7()')") == [(None,)]
    V7Base.metadata.create_all(db.engine)
    V7Base.metadata.create_all(db.engine)  # again: the function is there, nothing fails
    dbnb.Repository(Ticket, db).create(name="orm")
    dbnb.Repository(Ticket, db).from_frame(pl.DataFrame({"name": ["copy"]}))
    for i in range(5):
        db.execute("INSERT INTO tickets (name) VALUES (:n); SELECT pg_sleep(0.002)", n=f"s{i}")
    rows = db.execute("SELECT id, name FROM tickets")
    now_ms = time.time_ns() // 1_000_000
    for value, _ in rows:
        assert value.version == 7 and value.variant == uuid.RFC_4122
        assert abs((value.int >> 80) - now_ms) < 60_000  # 48 bits of Unix milliseconds
    ordered = [v for v, n in sorted(rows, key=lambda r: r[1]) if n.startswith("s")]
    assert ordered == sorted(ordered)  # server ids follow time (ms + 12 bits of sub-ms)
    made = db.execute("SELECT uuidv7() FROM generate_series(1, 2000)")
    assert len({v for (v,) in made}) == 2000
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql(
            "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef "
            "WHERE adrelid = 'tickets'::regclass"
        ).scalar() == "uuidv7()"
        assert compare(conn, V7Base.metadata, context_options()) == ()
    other = dbnb.connect(pg15, database="compat_v7_helper", reset=True)
    with other.engine.begin() as conn:
        dbnb.ensure_uuidv7(conn)
        dbnb.ensure_uuidv7(conn)
    assert other.execute("SELECT uuidv7()")[0][0].version == 7
