"""Dask reads: Repository.to_dask() against dask's own read_sql_table, on a 2-worker LocalCluster.

Builds the nine-column table of ``benchmarks/frames.py`` (``--rows``, default 10,000,000) on the
embedded PostgreSQL (a temporary DBNB_HOME, unix socket), starts a ``LocalCluster`` of two
worker processes (one thread each, loopback) and times, in turns, best of ``--repeat``:

- ``Repository.to_dask(partitions=N).compute()`` (ranges of pages, COPY on each worker);
- ``to_dask(partitions=N, partition_on="id")`` (ranges of the key, at its statistics);
- ``dask.dataframe.read_sql_table(table, uri, index_col="id", npartitions=N).compute()``
  (pandas' read_sql on each worker, through SQLAlchemy and psycopg, password-less URI).

Each compute gathers the whole frame into this process, the same for all. It records each
one's dtypes and each worker's peak RSS during the read (VmHWM, reset just before).

    pip install -e '.[bench]'          # dask comes with the dev extra
    python benchmarks/dask_read.py                       # 10M rows (about 5 minutes)
    python benchmarks/dask_read.py --rows 1000000        # a quick look
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import load, urls, versions, write_section
from frames import FILL, BenchBase, Columns

import dbnb
from dbnb import Repository


class Events(Columns, BenchBase):
    __tablename__ = "dask_bench"


def reset_peak() -> int:
    """On a worker: reset its peak RSS to the current RSS; return that, in KiB."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS")


def warm() -> None:
    """On a worker: import what the readers use, so no read pays for the imports."""
    import pandas  # noqa: F401
    import psycopg  # noqa: F401
    import pyarrow.csv  # noqa: F401

    import dbnb.frames.parallel
    import dbnb.frames.topandas  # noqa: F401


def peak() -> int:
    """On a worker: its peak RSS since the last reset, in KiB."""
    return _status_kib("VmHWM")


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    import dask.dataframe as dd
    from dask.distributed import Client, LocalCluster

    started = time.perf_counter()
    n = args.partitions
    with tempfile.TemporaryDirectory(prefix="dbnb-bench-") as home:
        os.environ["DBNB_HOME"] = home
        server = dbnb.embedded_server(Path(home), announce=False)
        db = dbnb.connect(server.url("postgres"), database="dask_bench", reset=True)
        BenchBase.metadata.create_all(db.engine, tables=[Events.__table__])  # type: ignore[list-item]
        built = time.perf_counter()
        db.execute(FILL.format(table="dask_bench", rows=args.rows))
        db.execute("ANALYZE dask_bench")
        build_s = time.perf_counter() - built
        _, libpq = urls(db)
        uri = libpq.replace("postgresql://", "postgresql+psycopg://", 1)
        events = Repository(Events, db)
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=":0")
        client = Client(cluster)
        client.run(warm)
        runs = {
            f"dbnb to_dask(partitions={n})": lambda: events.to_dask(partitions=n),
            f"dbnb to_dask(partitions={n}, partition_on='id')": lambda: events.to_dask(
                partitions=n, partition_on="id"),
            f"dask read_sql_table(npartitions={n})": lambda: dd.read_sql_table(
                "dask_bench", uri, index_col="id", npartitions=n),
        }
        times: dict[str, list[float]] = {name: [] for name in runs}
        peaks: dict[str, list[int]] = {name: [0, 0] for name in runs}
        dtypes: dict[str, Any] = {}
        rows: dict[str, int] = {}
        for make in runs.values():  # connections and pools made, once each, on both workers
            make().partitions[:2].compute()
        for _ in range(args.repeat):
            for name, make in runs.items():
                base = client.run(reset_peak)
                start = time.perf_counter()
                frame = make().compute()
                times[name].append(time.perf_counter() - start)
                after = client.run(peak)
                grown = [after[w] - base[w] for w in after]
                peaks[name] = [max(a, b) for a, b in zip(peaks[name], sorted(grown), strict=True)]
                dtypes[name] = frame.dtypes
                rows[name] = len(frame)
                del frame
        reading: dict[str, list[int]] = {}
        for name, make in runs.items():  # the reads alone, on fresh workers: rows counted there
            client.restart()
            client.run(warm)
            make().partitions[:2].map_partitions(len, meta=(None, "int64")).compute()
            base = client.run(reset_peak)
            sizes = make().map_partitions(len, meta=(None, "int64")).compute()
            assert int(sizes.sum()) == rows[name]
            after = client.run(peak)
            reading[name] = sorted(after[w] - base[w] for w in after)
        client.close()
        cluster.close()
        db.close()
    best = {name: min(t) for name, t in times.items()}
    dbnb_name = next(iter(runs))
    dask_name = list(runs)[-1]
    lines = [
        f"Command: `python benchmarks/dask_read.py --rows {args.rows} --partitions {n} "
        f"--repeat {args.repeat}` ({versions('dask', 'distributed', 'pandas', 'pyarrow')}; "
        f"total run time {time.perf_counter() - started:.0f} s; the table took {build_s:.0f} s "
        "to generate)",
        "",
        f"Table `dask_bench`: {args.rows:,} rows x 9 columns (the columns of frames.py), embedded "
        f"PostgreSQL on a unix socket; a LocalCluster of 2 worker processes x 1 thread on "
        f"loopback, {n} partitions; {load()} at the end. Each `.compute()` gathers the whole "
        "frame into the client. Best of "
        f"{args.repeat}, in turns. Peak memory: growth of each worker's peak RSS (VmHWM) over "
        "what it held before, the larger first: while reading (`map_partitions(len)` on freshly "
        "restarted workers, warmed with two partitions: every partition read on a worker, only "
        "counts gathered) and during the timed `.compute()`s (where dask also concatenates all "
        "partitions on one worker before sending them to the client).",
        "",
        "| read | rows | s | rows/s | vs dbnb | worker peak, reading (MiB) "
        "| worker peak, compute() (MiB) |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for name, seconds in best.items():
        read_peak = " / ".join(f"{kib / 1024:.0f}" for kib in reversed(reading[name]))
        grown = " / ".join(f"{kib / 1024:.0f}" for kib in reversed(peaks[name]))
        lines.append(
            f"| {name} | {rows[name]:,} | {seconds:.1f} | {rows[name] / seconds:,.0f} | "
            f"{seconds / best[dbnb_name]:.2f}x | {read_peak} | {grown} |"
        )
    ratio = best[dask_name] / best[dbnb_name]
    lines += [
        "",
        f"**dbnb to_dask is {ratio:.1f}x faster than dask's read_sql_table** (target: 3x).",
        "",
        "dtypes (dbnb's come from the column types; read_sql_table's from pandas' guesses on "
        "the values, and it makes `id` the index):",
        "",
        "| column | " + " | ".join([dbnb_name, dask_name]) + " |",
        "|---|---|---|",
    ]
    for column in dtypes[dbnb_name].index:
        theirs = dtypes[dask_name].get(column, "(index)")
        lines.append(f"| {column} | {dtypes[dbnb_name][column]} | {theirs} |")
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("dask", "## Dask reads (issue 16)\n\n" + text)


if __name__ == "__main__":
    main()
