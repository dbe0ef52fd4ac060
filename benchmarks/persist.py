"""A new table from a DataFrame: dbnb's create_table_from_frame against pandas' to_sql, in one run.

Builds a pandas frame of ``--rows`` rows x 9 columns (int64 id, nullable Int32, short text,
Decimal(12,2) as pyarrow decimals, float, nullable boolean, tz-aware datetimes, UUID objects,
~30-char nullable text) and times, on the embedded PostgreSQL (a temporary DBNB_HOME, unix
socket), creating the table and loading every row:

- ``db.create_table_from_frame(name, df, primary_key="id", if_exists="replace")`` (psycopg),
  and its twin on ``db.asyncio`` (asyncpg), best of ``--repeat``;
- ``DataFrame.to_sql(name, engine, if_exists="replace", index=False)`` on the same
  SQLAlchemy + psycopg engine, once (it takes ten times longer).

It also lists the column types each one created. The table and the command go into the
"Tables from frames" section of benchmarks/RESULTS.md (other sections are left as they are)::

    python benchmarks/persist.py                  # 1M rows
    python benchmarks/persist.py --rows 100000    # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import platform
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

import dbnb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best, write_section

SECTION = "## Tables from frames (issue 14)"
TYPES_SQL = (
    "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
    "WHERE a.attrelid = to_regclass(:t) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
)


def frame(rows: int) -> pd.DataFrame:
    """The benchmark frame: nine columns of the kinds a notebook holds, with missing values."""
    rng = np.random.default_rng(14)
    missing = rng.random(rows) < 0.1
    start = pd.Timestamp("2026-01-01", tz="Europe/Paris")
    cents = rng.integers(0, 10_000_000, rows)
    return pd.DataFrame(
        {
            "id": np.arange(rows, dtype="int64"),
            "n": pd.array(np.where(missing, None, rng.integers(0, 1000, rows)), dtype="Int32"),
            "code": pd.Series(rng.choice(["north", "south", "east", "west"], rows), dtype="str"),
            "price": _prices(cents),
            "score": rng.random(rows),
            "active": pd.array(np.where(missing, None, rng.random(rows) < 0.5), dtype="boolean"),
            "created_at": start + pd.to_timedelta(rng.integers(0, 86_400 * 365, rows), unit="s"),
            "uid": [uuid.UUID(int=int(i)) for i in rng.integers(0, 2**62, rows)],
            "note": pd.Series(
                np.where(missing, None, [f"note {i:07d} about this row" for i in range(rows)]),
                dtype="str",
            ),
        }
    )


def _prices(cents: np.ndarray[Any, Any]) -> Any:
    exact = pa.array([Decimal(int(c)).scaleb(-2) for c in cents], pa.decimal128(12, 2))
    return pd.array(exact, dtype=pd.ArrowDtype(pa.decimal128(12, 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    began = time.perf_counter()
    df = frame(args.rows)
    with tempfile.TemporaryDirectory(prefix="dbnb-bench-persist-") as home:
        server = dbnb.embedded_server(Path(home), announce=False)
        db = dbnb.connect(server.url("postgres"), database="bench_persist", reset=True)
        loop = asyncio.new_event_loop()

        def sync_run() -> None:
            db.create_table_from_frame("made_sync", df, primary_key="id", if_exists="replace",
                                       progress=False)

        def async_run() -> None:
            loop.run_until_complete(db.asyncio.create_table_from_frame(
                "made_async", df, primary_key="id", if_exists="replace", progress=False))

        def to_sql() -> None:
            df.to_sql("made_to_sql", db.engine, if_exists="replace", index=False)

        results = [
            ("dbnb create_table_from_frame (sync, psycopg COPY)", args.repeat,
             best(sync_run, args.repeat)),
            ("dbnb create_table_from_frame (async, asyncpg COPY)", args.repeat,
             best(async_run, args.repeat)),
            ("DataFrame.to_sql(if_exists='replace')", 1, best(to_sql, 1)),
        ]
        counts = {t: db.execute(f"SELECT count(*) FROM {t}")[0][0]
                  for t in ("made_sync", "made_async", "made_to_sql")}
        assert set(counts.values()) == {args.rows}, counts
        ours = dict(db.execute(TYPES_SQL, t="made_sync"))
        theirs = dict(db.execute(TYPES_SQL, t="made_to_sql"))
        loop.run_until_complete(db.asyncio.close())
        loop.close()
        db.close()
        server.stop()
    base = results[0][2]
    lines = [
        SECTION,
        "",
        f"Command: `python benchmarks/persist.py --rows {args.rows}` "
        f"(total run time {time.perf_counter() - began:.0f} s)",
        "",
        f"Versions: Python {platform.python_version()}, "
        + ", ".join(f"{p} {importlib.metadata.version(p)}"
                    for p in ("pandas", "pyarrow", "SQLAlchemy", "psycopg", "asyncpg")),
        "",
        f"A new table with a primary key from a frame of {args.rows:,} rows x 9 columns, "
        "created and loaded (embedded PostgreSQL, unix socket, 2 shared cores)",
        "",
        "| writer | runs | s | rows/s | vs dbnb sync |",
        "|---|---:|---:|---:|---:|",
        *(f"| {name} | best of {runs} | {s:.2f} | {args.rows / s:,.0f} | {s / base:.2f}x |"
          for name, runs, s in results),
        "",
        "The types each one created",
        "",
        "| column | pandas dtype | dbnb | to_sql |",
        "|---|---|---|---|",
        *(f"| {c} | {df[c].dtype} | {ours[c]} | {theirs[c]} |" for c in df.columns),
        "",
    ]
    report = "\n".join(lines)
    print(report)
    write_section("persist", report)


if __name__ == "__main__":
    sys.exit(main())
