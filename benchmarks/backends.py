"""DataFrames in and out of SQLite and MariaDB: dbnb's generic path against pandas, in one run.

The SQLite and MariaDB rows of the frame benchmarks (``benchmarks/frames.py`` measures
PostgreSQL's COPY path). The same nine columns as there (bigint id, int, short text,
numeric(12,2), double, boolean, timestamp with zone, uuid, ~30-char nullable text), ``--rows``
rows, on a SQLite file in a temporary directory and on a throwaway MariaDB server (Debian's
``mariadb-server``, started here on a loopback port and stopped by pid). Best of ``--repeat``,
connect and every conversion included:

- reads: dbnb ``Repository.to_frame()`` (sync and async) against ``pandas.read_sql`` on the
  same SQLAlchemy engine (sqlite3; PyMySQL);
- writes: dbnb ``Repository.from_frame()`` (sync) against ``DataFrame.to_sql`` (default), both
  from the frame dbnb read.

It prints a table and writes it into benchmarks/RESULTS.md as its own section (the rest of the
file is left as it is)::

    python benchmarks/backends.py                   # 200,000 rows
    python benchmarks/backends.py --rows 50000 --backends sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.metadata
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pandas as pd
from sqlalchemy import BigInteger, Boolean, DateTime, Double, Integer, Numeric, Text, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import dbnb
from dbnb import AsyncRepository, Repository

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best, write_section

HERE = Path(__file__).resolve().parent


class BenchBase(DeclarativeBase):
    pass


class Columns:
    """The nine benchmark columns of benchmarks/frames.py."""

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    n: Mapped[int | None] = mapped_column(Integer)
    code: Mapped[str | None] = mapped_column(Text)
    price: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    score: Mapped[float | None] = mapped_column(Double)
    active: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    uid: Mapped[str | None] = mapped_column(Uuid(as_uuid=False))
    note: Mapped[str | None] = mapped_column(Text)


class Bench(Columns, BenchBase):
    __tablename__ = "bench"


class BenchW(Columns, BenchBase):
    __tablename__ = "bench_w"


def source_frame(rows: int) -> pd.DataFrame:
    """The benchmark rows, made in Python (the same shape as frames.py's generate_series)."""
    rng = random.Random(7)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    ids = range(1, rows + 1)
    return pd.DataFrame({
        "id": list(ids),
        "n": [(g * 7) % 100_000 for g in ids],
        "code": [f"c{g % 1000}" for g in ids],
        "price": [round(rng.random() * 10_000, 2) for _ in ids],
        "score": [rng.random() for _ in ids],
        "active": [g % 2 == 0 for g in ids],
        "created_at": pd.to_datetime([start + dt.timedelta(seconds=1.5 * g) for g in ids]),
        "uid": [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in ids],
        "note": [None if g % 5 == 0 else f"{g:030x}"[:30] for g in ids],
    })


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def mariadb() -> Iterator[str]:
    """A throwaway MariaDB server on a loopback port (as tests/conftest.py starts one)."""
    program = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
    home = Path(tempfile.mkdtemp(prefix="dbnb-bench-mariadb-"))
    user = ["--user=root"] if os.geteuid() == 0 else []
    subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={home / 'data'}", *user,
                    "--auth-root-authentication-method=normal", "--skip-test-db"],
                   check=True, capture_output=True)
    port = free_port()
    process = subprocess.Popen(
        [program, "--no-defaults", f"--datadir={home / 'data'}", f"--socket={home / 'sock'}",
         f"--port={port}", "--bind-address=127.0.0.1", *user, "--skip-grant-tables",
         "--innodb-flush-log-at-trx-commit=2", f"--log-error={home / 'error.log'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        yield f"mariadb://root@127.0.0.1:{port}/mysql"
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)


def measure(db: dbnb.Database, source: pd.DataFrame, repeat: int) -> dict[str, float]:
    """Read and write timings (seconds, best of ``repeat``) on one Database."""
    BenchBase.metadata.drop_all(db.engine)
    BenchBase.metadata.create_all(db.engine)
    Repository(Bench, db).from_frame(source)
    engine = db.engine
    loop = asyncio.new_event_loop()
    found: dict[str, float] = {}
    found["dbnb to_frame (sync)"] = best(lambda: Repository(Bench, db).to_frame(), repeat)
    found["dbnb to_frame (async)"] = best(
        lambda: loop.run_until_complete(AsyncRepository(Bench, db).to_frame()), repeat
    )
    found["pandas.read_sql"] = best(lambda: pd.read_sql("SELECT * FROM bench", engine), repeat)
    frame = Repository(Bench, db).to_frame()

    def empty() -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM bench_w")

    def dbnb_write() -> None:
        empty()
        Repository(BenchW, db).from_frame(frame)

    def to_sql() -> None:
        empty()
        frame.to_sql("bench_w", engine, if_exists="append", index=False)

    found["dbnb from_frame (sync)"] = best(dbnb_write, repeat)
    found["DataFrame.to_sql (default)"] = best(to_sql, repeat)
    loop.run_until_complete(db.asyncio.close())
    loop.close()
    return found


def versions() -> str:
    names = ["dbnb", "pandas", "pyarrow", "SQLAlchemy", "PyMySQL", "aiomysql", "aiosqlite"]
    found = [f"{n} {importlib.metadata.version(n)}" for n in names]
    return ", ".join([f"Python {platform.python_version()}", f"SQLite "
                      f"{__import__('sqlite3').sqlite_version}", *found])


def render(rows: int, repeat: int, results: dict[str, dict[str, float]]) -> str:
    lines = [f"dbnb's generic path (no COPY) against pandas on the same engine: {rows:,} rows x "
             f"9 columns, best of {repeat}", "",
             "| backend | operation | s | rows/s | vs pandas |", "|---|---|---:|---:|---:|"]
    for backend, found in results.items():
        for name, seconds in found.items():
            pandas = found["pandas.read_sql" if "read" in name or "to_frame" in name
                           else "DataFrame.to_sql (default)"]
            lines.append(f"| {backend} | {name} | {seconds:.2f} | {rows / seconds:,.0f} | "
                         f"{seconds / pandas:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,mariadb")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md")
    args = parser.parse_args()
    started = time.perf_counter()
    source = source_frame(args.rows)
    results: dict[str, dict[str, float]] = {}
    wanted = args.backends.split(",")
    if "sqlite" in wanted:
        with tempfile.TemporaryDirectory(prefix="dbnb-bench-sqlite-") as home:
            db = dbnb.connect(f"sqlite:///{home}/bench.db")
            results["SQLite (file)"] = measure(db, source, args.repeat)
            db.close()
    if "mariadb" in wanted:
        with mariadb() as url:
            db = dbnb.connect(url, database="bench", reset=True)
            results["MariaDB (TCP, loopback)"] = measure(db, source, args.repeat)
            db.close()
    table = render(args.rows, args.repeat, results)
    elapsed = time.perf_counter() - started
    command = "python benchmarks/backends.py " + " ".join(sys.argv[1:])
    print(table)
    section = (
        f"## SQLite and MariaDB\n\nCommand: `{command.strip()}`\n\n"
        f"Versions: {versions()}; MariaDB from Debian's mariadb-server. Total run time "
        f"{elapsed:.0f} s on the same shared 2-core machine.\n\n{table}\n\n"
        "Reads fetch the rows through the session's DBAPI cursor and build each column in "
        "Arrow with the type the model declares (timestamps parsed from SQLite's text by "
        "Arrow, not by Python); writes are one prepared INSERT run with executemany in "
        "batches of 20,000 rows (PyMySQL folds them into multi-row INSERTs)."
    )
    if not args.no_write:
        write_section("backends", section)


if __name__ == "__main__":
    main()
