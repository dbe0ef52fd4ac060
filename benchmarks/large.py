"""Large reads at default dtypes: to_frame (one stream, partitions) and iter_frames at 5M/10M rows.

Builds the nine-column table of ``benchmarks/frames.py`` at each ``--rows`` size on the
embedded PostgreSQL (a temporary DBNB_HOME, unix socket), then:

- times ``Repository.to_frame()`` (one stream and ``partitions=2``, sync and async) against
  ConnectorX with 2 partitions, in turns, best of ``--repeat``;
- measures each read's peak RSS growth in a fresh process (VmHWM, reset just before the read)
  against the frame's size, and ``iter_frames(chunksize=100_000)``'s rate and peak against one
  chunk, sync and async.

    pip install -e '.[bench]'
    python benchmarks/large.py                      # 5M and 10M rows (about 15 minutes)
    python benchmarks/large.py --rows 1000000       # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import interleaved, load, urls, versions, write_section
from frames import FILL, BenchBase, Columns

import dbnb
from dbnb import AsyncRepository, Repository

MODES = {
    "to_frame()": ("sync", 1), "to_frame(partitions=2)": ("sync", 2),
    "async to_frame()": ("async", 1), "async to_frame(partitions=2)": ("async", 2),
}


def model(table: str) -> type[Any]:
    return type(f"Big_{table}", (Columns, BenchBase), {"__tablename__": table})


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(url: str, table: str, what: str, arg: str) -> None:
    """In a fresh process: one read's rate and peak RSS growth, printed as JSON."""
    db = dbnb.connect(url)
    big = model(table)
    repo, arepo = Repository(big, db), AsyncRepository(big, db)
    loop = asyncio.new_event_loop()
    repo.to_frame(limit=10)  # warm imports and the pools
    loop.run_until_complete(arepo.to_frame(limit=10))
    Path("/proc/self/clear_refs").write_text("5")
    base = _status_kib("VmRSS")
    started = time.perf_counter()
    rows = size = 0
    if what == "iter":
        for chunk in repo.iter_frames(chunksize=int(arg)):
            rows += len(chunk)
            size = max(size, int(chunk.memory_usage(deep=True).sum()))
    elif what == "aiter":
        async def stream() -> tuple[int, int]:
            n = most = 0
            async for chunk in arepo.iter_frames(chunksize=int(arg)):
                n += len(chunk)
                most = max(most, int(chunk.memory_usage(deep=True).sum()))
            return n, most

        rows, size = loop.run_until_complete(stream())
    else:
        shell, parts = MODES[arg]
        frame = (repo.to_frame(partitions=parts) if shell == "sync"
                 else loop.run_until_complete(arepo.to_frame(partitions=parts)))
        rows, size = len(frame), int(frame.memory_usage(deep=True).sum())
    seconds = time.perf_counter() - started
    growth = (_status_kib("VmHWM") - base) * 1024
    print(json.dumps({"rows": rows, "growth": growth, "size": size, "seconds": seconds}))


def measure(url: str, table: str, what: str, arg: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--child", url, table, what, arg],
                          check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[5_000_000, 10_000_000])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    import connectorx as cx

    started = time.perf_counter()
    times: dict[int, dict[str, float]] = {}
    memory: dict[int, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="dbnb-bench-") as home:
        os.environ["DBNB_HOME"] = home
        server = dbnb.embedded_server(Path(home), announce=False)
        db = dbnb.connect(server.url("postgres"), database="large", reset=True)
        url = db.url.render_as_string(hide_password=False)
        cx_url, _ = urls(db)
        loop = asyncio.new_event_loop()
        for rows in args.rows:
            table = f"big_{rows}"
            db.execute(f"DROP TABLE IF EXISTS {table}")
            db.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, n int, code text, "
                       "price numeric(12, 2), score float8, active bool, created_at timestamptz, "
                       "uid uuid, note text)")
            db.execute(FILL.format(table=table, rows=rows))
            db.execute(f"ANALYZE {table}")
            big = model(table)
            repo, arepo = Repository(big, db), AsyncRepository(big, db)
            query = f"SELECT * FROM {table}"
            runs = {
                "to_frame()": repo.to_frame,
                "to_frame(partitions=2)": lambda r=repo: r.to_frame(partitions=2),
                "async to_frame()": lambda a=arepo: loop.run_until_complete(a.to_frame()),
                "async to_frame(partitions=2)": lambda a=arepo: loop.run_until_complete(
                    a.to_frame(partitions=2)),
                "ConnectorX, 2 partitions": lambda q=query: cx.read_sql(
                    cx_url, q, return_type="pandas", partition_on="id", partition_num=2),
            }
            times[rows] = interleaved(runs, args.repeat)
            memory[rows] = {name: measure(url, table, "whole", name) for name in MODES}
            memory[rows] |= {
                "iter_frames(100_000)": measure(url, table, "iter", "100000"),
                "async iter_frames(100_000)": measure(url, table, "aiter", "100000"),
            }
            db.execute(f"DROP TABLE {table}")
        loop.run_until_complete(db.asyncio.close())
        loop.close()
        db.close()
        server.stop()
    text = render(args, times, memory, time.perf_counter() - started)
    print(text)
    if not args.no_write:
        write_section("large", text)


def render(args: argparse.Namespace, times: dict[int, dict[str, float]],
           memory: dict[int, dict[str, dict[str, Any]]], elapsed: float) -> str:
    lines = [
        "## Large reads at default dtypes, partitions, streaming",
        "",
        f"Command: `{' '.join(['python', 'benchmarks/large.py', *sys.argv[1:]])}`",
        "",
        f"The nine-column table; times best of {args.repeat}, taken in turns; memory and "
        f"streaming each in a fresh process; {load()} at the end of the run "
        f"({elapsed:.0f} s).",
        "",
        "Versions: " + versions("pandas", "pyarrow", "psycopg", "asyncpg", "connectorx"),
        "",
    ]
    targets = []
    for rows, timed in times.items():
        cx2 = timed["ConnectorX, 2 partitions"]
        lines += [f"{rows:,} rows:", "",
                  "| read | s | rows/s | vs ConnectorX, 2 partitions | peak RSS growth | "
                  "frame | growth / frame |", "|---|---:|---:|---:|---:|---:|---:|"]
        for name, s in timed.items():
            mem = memory[rows].get(name)
            extra = (f"{mem['growth'] / 2**20:,.0f} MiB | {mem['size'] / 2**20:,.0f} MiB | "
                     f"{mem['growth'] / mem['size']:.2f}x" if mem else " | | ")
            lines.append(f"| {name} | {s:.2f} | {rows / s:,.0f} | {s / cx2:.2f}x | {extra} |")
        lines += ["", "| stream | rows/s | peak RSS growth | one chunk | growth / chunk |",
                  "|---|---:|---:|---:|---:|"]
        for name in ("iter_frames(100_000)", "async iter_frames(100_000)"):
            mem = memory[rows][name]
            lines.append(f"| {name} | {mem['rows'] / mem['seconds']:,.0f} | "
                         f"{mem['growth'] / 2**20:,.0f} MiB | {mem['size'] / 2**20:,.1f} MiB | "
                         f"{mem['growth'] / mem['size']:.2f}x |")
        lines.append("")
        whole = memory[rows]["to_frame()"]
        stream = memory[rows]["iter_frames(100_000)"]
        targets.append(
            f"- {rows:,} rows: to_frame() {timed['to_frame()'] / cx2:.2f}x ConnectorX with 2 "
            f"partitions (partitions=2: {timed['to_frame(partitions=2)'] / cx2:.2f}x; target "
            f"<= 0.9x), peak growth {whole['growth'] / whole['size']:.2f}x the frame (target "
            f"<= 1.3x); iter_frames {stream['rows'] / stream['seconds']:,.0f} rows/s (target "
            f">= 1,300,000), peak {stream['growth'] / stream['size']:.2f}x a chunk (target < 3x)")
    return "\n".join([*lines, "Targets:", "", *targets])


if __name__ == "__main__":
    main()
