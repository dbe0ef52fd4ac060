"""Small things that happen often: a 10-row query, a magic, a repository call, importing dbnb.

All in one run on the embedded PostgreSQL (a temporary DBNB_HOME, unix socket), each timed in
turns with its alternative (medians):

- a 10-row ``db.frame()`` against ``pandas.read_sql`` over the same engine;
- a 10-row ``%%db`` cell against JupySQL's ``%%sql`` with ``autopandas`` (same shell, same
  server), and ``%db pool`` against ``db.pool_status()``;
- repository calls (get, list, create_many, to_frame of 20 rows) against the same work written
  with SQLAlchemy sessions by hand;
- cold start, in fresh processes: ``import dbnb`` (and ``import sqlalchemy.orm`` for scale),
  ``%load_ext dbnb`` in a fresh IPython, and the first query on a running server against
  SQLAlchemy's.

    pip install -e '.[bench]'
    python benchmarks/small.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd
from _common import interleaved, load, versions, write_section
from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

import dbnb
from dbnb import Base, BigIntPrimaryKey, Repository

QUERY = "SELECT * FROM t WHERE id <= 10"


class Person(BigIntPrimaryKey, Base):
    __tablename__ = "people"
    name: Mapped[str] = mapped_column(String(40))
    age: Mapped[int | None]


def fresh(code: str, runs: int) -> float:
    """Median seconds that ``code`` takes in a fresh interpreter (it prints its own time)."""
    times = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                             text=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def cold_start(url: str, runs: int) -> dict[str, float]:
    timed = "import time; t = time.perf_counter(); {}; print(time.perf_counter() - t)"
    load_ext = (
        "from IPython.core.interactiveshell import InteractiveShell; import time; "
        "ip = InteractiveShell.instance(); t = time.perf_counter(); "
        "ip.run_line_magic('load_ext', 'dbnb'); print(time.perf_counter() - t)"
    )
    first_dbnb = timed.format(
        f"import dbnb; db = dbnb.connect({url!r}); db.execute('SELECT 1')")
    first_sqlalchemy = timed.format(
        "from sqlalchemy import create_engine, text; "
        f"e = create_engine({url!r}); c = e.connect(); c.execute(text('SELECT 1')); c.close()")
    return {
        "import dbnb": fresh(timed.format("import dbnb"), runs),
        "import sqlalchemy.orm": fresh(timed.format("import sqlalchemy.orm"), runs),
        "%load_ext dbnb (IPython already imported)": fresh(load_ext, runs),
        "first query: dbnb.connect(url) + db.execute": fresh(first_dbnb, runs),
        "first query: SQLAlchemy engine + execute": fresh(first_sqlalchemy, runs),
    }


def magics(db: dbnb.Database, url: str, repeat: int) -> dict[str, float]:
    from IPython.core.interactiveshell import InteractiveShell

    os.environ.setdefault("PLOOMBER_STATS_ENABLED", "false")
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "dbnb")
    ip.run_line_magic("db", f"connect {url}")
    ip.run_line_magic("load_ext", "sql")
    ip.run_line_magic("config", "SqlMagic.autopandas = True")
    ip.run_line_magic("config", "SqlMagic.displaycon = False")
    ip.run_line_magic("config", "SqlMagic.feedback = 0")
    ip.run_line_magic("sql", url)
    cells = {
        "%%db (10 rows)": lambda: ip.run_cell_magic("db", "", QUERY),
        "JupySQL %%sql, autopandas (10 rows)": lambda: ip.run_cell_magic("sql", "", QUERY),
    }
    for fn in cells.values():
        fn()
    result = interleaved(cells, repeat, median=True)
    direct = {"%db pool": lambda: ip.run_line_magic("db", "pool"),
              "db.pool_status()": db.pool_status}
    for fn in direct.values():
        fn()
    result |= interleaved(direct, repeat * 10, median=True)
    return result


def repositories(db: dbnb.Database, repeat: int) -> dict[str, tuple[float, float]]:
    """(dbnb, hand-written SQLAlchemy) medians for a few repository calls."""
    people = Repository(Person, db)
    engine = db.engine
    batch = [{"name": f"p{i}", "age": i % 90} for i in range(100)]

    def by_hand_get() -> Any:
        with Session(engine) as s:
            return s.get(Person, 7)

    def by_hand_list() -> Any:
        with Session(engine) as s:
            return list(s.scalars(select(Person).where(Person.age >= 30)
                                  .order_by(Person.id).limit(20)))

    def by_hand_create() -> None:
        with Session(engine) as s:
            s.add_all([Person(**row) for row in batch])
            s.commit()

    def by_hand_frame() -> Any:
        with engine.connect() as conn:
            return pd.read_sql(select(Person).limit(20), conn)

    pairs: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
        "get(id)": (lambda: people.get(7), by_hand_get),
        "list(age__gte=30, limit=20)": (
            lambda: people.list(age__gte=30, order_by="id", limit=20), by_hand_list),
        "create_many(100 rows)": (lambda: people.create_many(batch), by_hand_create),
        "to_frame(limit=20) vs read_sql": (lambda: people.to_frame(limit=20), by_hand_frame),
    }
    out = {}
    for name, (mine, theirs) in pairs.items():
        mine(), theirs()
        timed = interleaved({"dbnb": mine, "sqlalchemy": theirs}, repeat, median=True)
        out[name] = (timed["dbnb"], timed["sqlalchemy"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--processes", type=int, default=15, help="fresh processes per figure")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dbnb-bench-") as home:
        os.environ["DBNB_HOME"] = home
        server = dbnb.embedded_server(Path(home), announce=False)
        db = dbnb.connect(server.url("postgres"), database="small", reset=True)
        url = db.url.render_as_string(hide_password=False).replace("+psycopg", "")
        db.execute("CREATE TABLE t (id bigint PRIMARY KEY, n int, code text, "
                   "price numeric(12, 2), created_at timestamptz)")
        db.execute("INSERT INTO t SELECT g, g * 7, 'c' || g, g * 1.5, now() "
                   "FROM generate_series(1, 1000) g")
        Person.__table__.create(db.engine)  # type: ignore[attr-defined]
        Repository(Person, db).create_many([{"name": f"p{i}", "age": i % 90}
                                            for i in range(1000)])

        def read_sql() -> pd.DataFrame:
            with db.engine.connect() as conn:
                return pd.read_sql(QUERY, conn)

        frames = {"db.frame (10 rows)": lambda: db.frame(QUERY),
                  "pandas.read_sql (10 rows, same engine)": read_sql}
        for fn in frames.values():
            fn()
        small = interleaved(frames, args.repeat, median=True)
        magic = magics(db, url, args.repeat)
        repos = repositories(db, args.repeat)
        cold = cold_start(url, args.processes)
        asyncio.run(db.asyncio.close())
        db.close()
        server.stop()
    text_ = render(args, small, magic, repos, cold, time.perf_counter() - started)
    print(text_)
    if not args.no_write:
        write_section("small", text_)


def render(args: argparse.Namespace, small: dict[str, float], magic: dict[str, float],
           repos: dict[str, tuple[float, float]], cold: dict[str, float], elapsed: float) -> str:
    us = 1e6
    frame, read_sql = small["db.frame (10 rows)"], small["pandas.read_sql (10 rows, same engine)"]
    cell, jupysql = magic["%%db (10 rows)"], magic["JupySQL %%sql, autopandas (10 rows)"]
    added = (magic["%db pool"] - magic["db.pool_status()"]) * us
    lines = [
        "## Small results, magics, repositories, cold start",
        "",
        f"Command: `{' '.join(['python', 'benchmarks/small.py', *sys.argv[1:]])}`",
        "",
        f"Medians of {args.repeat} calls timed in turns with their alternative (cold start: "
        f"of {args.processes} fresh processes); {load()} at the end of the run "
        f"({elapsed:.0f} s).",
        "",
        "Versions: " + versions("SQLAlchemy", "psycopg", "pandas", "pyarrow", "ipython",
                                "jupysql"),
        "",
        "| what | dbnb | alternative | ratio |",
        "|---|---:|---:|---:|",
        f"| 10-row `db.frame()` vs `pandas.read_sql` (same engine) | {frame * us:,.0f} µs | "
        f"{read_sql * us:,.0f} µs | {frame / read_sql:.2f}x |",
        f"| 10-row `%%db` vs JupySQL `%%sql` (autopandas) | {cell * us:,.0f} µs | "
        f"{jupysql * us:,.0f} µs | {cell / jupysql:.2f}x |",
        f"| `%db pool` vs `db.pool_status()` | {magic['%db pool'] * us:,.1f} µs | "
        f"{magic['db.pool_status()'] * us:,.1f} µs | +{added:,.1f} µs |",
    ]
    for name, (mine, theirs) in repos.items():
        lines.append(f"| repository `{name}` vs SQLAlchemy by hand | {mine * us:,.0f} µs | "
                     f"{theirs * us:,.0f} µs | {mine / theirs:.2f}x |")
    lines += ["", "| cold start (fresh process) | median s |", "|---|---:|"]
    lines += [f"| {name} | {s:.3f} |" for name, s in cold.items()]
    first = cold["first query: dbnb.connect(url) + db.execute"]
    lines += [
        "",
        "Targets:",
        "",
        f"- 10-row `db.frame()`: {frame / read_sql:.2f}x `pandas.read_sql` (target <= 1.0x)",
        f"- 10-row `%%db`: {cell / jupysql:.2f}x JupySQL `%%sql` (target <= 1.0x)",
        f"- `%db <command>` adds {added:,.1f} µs over the direct call (target <= 50 µs)",
        f"- `import dbnb`: {cold['import dbnb']:.3f} s (target <= 0.35 s); "
        f"`%load_ext dbnb`: {cold['%load_ext dbnb (IPython already imported)']:.3f} s; first "
        f"query {first / cold['first query: SQLAlchemy engine + execute']:.2f}x SQLAlchemy's",
        "- repositories vs SQLAlchemy by hand: "
        + ", ".join(f"{n} {m / t:.2f}x" for n, (m, t) in repos.items())
        + " (target <= 1.15x)",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
