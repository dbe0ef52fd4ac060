"""Reading the other column types: dbnb against ADBC and ConnectorX on what each can read.

A table of ``--rows`` rows with jsonb, text[], int[] (with NULL elements), date, time,
interval, numeric(20,6), bytea and inet (plus a bigint key) on the embedded PostgreSQL.
ConnectorX cannot read text[], int[] with NULLs or interval; ADBC reads all of them. Each
comparison is on the columns the other reader can read, timed in turns (best of
``--repeat``), connect and conversion to pandas included. dbnb parses jsonb into Python
values by default; neither alternative does (they return its text), so dbnb is also timed
with ``json_as="string"``, which returns the same text.

    python benchmarks/types.py                  # 500,000 rows
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import interleaved, load, urls, versions, write_section

import dbnb

COLUMNS = ["doc", "tags", "ints", "day", "t", "iv", "num", "b", "ip"]
CONNECTORX_READS = ["doc", "day", "t", "num", "b", "ip"]
TABLE = """
CREATE TABLE oddities (id bigint PRIMARY KEY, doc jsonb, tags text[], ints int[], day date,
  t time, iv interval, num numeric(20, 6), b bytea, ip inet)
"""
FILL = """
INSERT INTO oddities SELECT g,
  jsonb_build_object('id', g, 'name', 'n' || g, 'tags', jsonb_build_array('a', 'b'), 'v', g * 0.5),
  ARRAY['t' || g, 'x,y', 'q"z'], ARRAY[g, g + 1, NULL, g + 3], date '2024-01-01' + (g % 1000),
  time '00:00' + g * interval '1.5 second',
  make_interval(months => g % 13, days => g % 31, secs => g * 0.001), g * 1.000001,
  decode(md5(g::text), 'hex'), ('10.0.' || (g % 256) || '.' || (g % 200))::inet
FROM generate_series(1, {rows}) AS g
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    import adbc_driver_postgresql.dbapi as adbc
    import connectorx as cx

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dbnb-bench-") as home:
        os.environ["DBNB_HOME"] = home
        server = dbnb.embedded_server(Path(home), announce=False)
        db = dbnb.connect(server.url("postgres"), database="types", reset=True)
        db.execute(TABLE)
        db.execute(FILL.format(rows=args.rows))
        db.execute("ANALYZE oddities")
        cx_url, libpq = urls(db)
        loop = asyncio.new_event_loop()

        def sql(columns: list[str]) -> str:
            return f"SELECT id, {', '.join(columns)} FROM oddities"

        def adbc_read(columns: list[str]) -> None:
            with adbc.connect(libpq) as conn, conn.cursor() as cur:
                cur.execute(sql(columns))
                cur.fetch_arrow_table().to_pandas()

        def runs(columns: list[str]) -> dict[str, object]:
            query = sql(columns)
            return {
                "dbnb (sync)": lambda: db.frame(query),
                "dbnb (async)": lambda: loop.run_until_complete(db.asyncio.frame(query)),
                "dbnb, json_as='string'": lambda: db.frame(query, json_as="string"),
                "dbnb, dtype_backend='pyarrow'": lambda: db.frame(query,
                                                                  dtype_backend="pyarrow"),
            }

        everything = runs(COLUMNS) | {"ADBC -> Arrow -> pandas": lambda: adbc_read(COLUMNS)}
        cx_query = sql(CONNECTORX_READS)
        subset = runs(CONNECTORX_READS) | {
            "ConnectorX -> pandas": lambda: cx.read_sql(cx_url, cx_query, return_type="pandas"),
            "ConnectorX -> pandas, 2 partitions": lambda: cx.read_sql(
                cx_url, cx_query, return_type="pandas", partition_on="id", partition_num=2),
        }
        for fn in [*everything.values(), *subset.values()]:
            fn()  # warm: imports, pools, caches
        table_all = interleaved(everything, args.repeat)
        table_cx = interleaved(subset, args.repeat)
        loop.run_until_complete(db.asyncio.close())
        loop.close()
        db.close()
        server.stop()
    elapsed = time.perf_counter() - started
    text = render(args, table_all, table_cx, elapsed)
    print(text)
    if not args.no_write:
        write_section("types", text)


def render(args: argparse.Namespace, all_cols: dict[str, float], cx_cols: dict[str, float],
           elapsed: float) -> str:
    rows = args.rows
    lines = [
        "## Other column types",
        "",
        f"Command: `{' '.join(['python', 'benchmarks/types.py', *sys.argv[1:]])}`",
        "",
        f"{rows:,} rows: bigint key, jsonb, text[], int[] (NULL elements), date, time, interval, "
        f"numeric(20,6), bytea, inet; best of {args.repeat}, timed in turns; {load()} at the "
        f"end of the run ({elapsed:.0f} s).",
        "",
        "Versions: " + versions("pandas", "pyarrow", "psycopg", "asyncpg", "connectorx",
                                "adbc-driver-postgresql"),
        "",
    ]
    for title, table, other in (
        ("All nine columns (what ADBC reads)", all_cols, "ADBC -> Arrow -> pandas"),
        ("jsonb, date, time, numeric, bytea, inet (what ConnectorX reads)", cx_cols,
         min((k for k in cx_cols if k.startswith("ConnectorX")), key=cx_cols.__getitem__)),
    ):
        base = table[other]
        lines += [f"{title}:", "", f"| reader | s | rows/s | vs {other} |", "|---|---:|---:|---:|"]
        for name, s in table.items():
            lines.append(f"| {name} | {s:.2f} | {rows / s:,.0f} | {s / base:.2f}x |")
        lines.append("")
    fastest_all = all_cols["ADBC -> Arrow -> pandas"]
    fastest_cx = min(v for k, v in cx_cols.items() if k.startswith("ConnectorX"))
    text_json = "dbnb, json_as='string'"
    lines += [
        "Targets (dbnb's time / the faster alternative's, on the columns it reads; <= 1.0x):",
        "",
        f"- all columns vs ADBC: {all_cols['dbnb (sync)'] / fastest_all:.2f}x "
        f"(JSON as text, as ADBC returns it: {all_cols[text_json] / fastest_all:.2f}x)",
        f"- ConnectorX's columns vs its faster run: {cx_cols['dbnb (sync)'] / fastest_cx:.2f}x "
        f"(JSON as text: {cx_cols[text_json] / fastest_cx:.2f}x)",
        "",
        "What each returns: ConnectorX gives jsonb as text, time as text, numeric as float64 and "
        "cannot read text[], int[] with NULLs (it panics) or interval; ADBC gives jsonb as text, "
        "numeric as text and inet as PostgreSQL's binary form. dbnb gives parsed JSON, "
        "`datetime.time`, exact `DateOffset` intervals, `bytes`, lists (Arrow types with the "
        "pyarrow backend).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
