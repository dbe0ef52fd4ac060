"""Field reliability figures, re-measured on real components (issue 10's closing numbers).

    DBNB_HOME=$PWD/build/drills-home .venv/bin/python benchmarks/field_drills.py

Prints, on this machine: operations through PgBouncer (pool_mode=transaction) and their
failures, seconds until a silent network path fails (both engines, default settings), seconds
until a SIGKILLed kernel's row lock is free (both drivers), calls failing after DDL (18
scenarios), password leaks among the outputs of malformed URLs, and bad inputs by outcome.
Needs Debian's pgbouncer for the first figure (skipped with a note otherwise). The tests in
tests/engine and tests/orm assert the same facts; this script only counts and times them.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
import psycopg  # noqa: E402
from sqlalchemy import text  # noqa: E402

import dbnb  # noqa: E402
from dbnb import migrations  # noqa: E402
from dbnb.server.admin import psycopg_conninfo  # noqa: E402
from tests.conftest import running_pgbouncer  # noqa: E402
from tests.engine.test_bounded_waits import SilentProxy  # noqa: E402
from tests.engine.test_pooler import PooledItem, _Base  # noqa: E402
from tests.orm.test_bad_input import CASES, Gadget  # noqa: E402
from tests.orm.test_bad_input import _Base as GadgetBase  # noqa: E402
from tests.test_secrets import SECRET, SHAPES  # noqa: E402

INI = ROOT / "alembic.ini"


def pooler_load(server: dbnb.EmbeddedServer, direct: dbnb.Database) -> str:
    program = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(program).exists():
        return "pgbouncer: not installed (apt-get install pgbouncer), not measured"
    _Base.metadata.create_all(direct.engine)
    with running_pgbouncer(program, server.url("postgres")) as url:
        pooled = dbnb.connect(url.set(database=direct.database), pooler="transaction",
                              application_name="dbnb-drill-pooled", pool_size=4)
        ops, failures = 0, 0
        stop = threading.Event()
        lock = threading.Lock()

        def count(n: int = 1, failed: bool = False) -> None:
            nonlocal ops, failures
            with lock:
                ops += n
                failures += failed

        def migrate() -> None:
            while not stop.is_set():
                for step in (lambda: migrations.upgrade(pooled, config=INI),
                             lambda: migrations.downgrade(pooled, "base", config=INI)):
                    try:
                        step()
                        count()
                    except dbnb.DbnbError:
                        count(failed=True)

        async def worker(repo: Any, key: int) -> None:
            for call in (lambda: repo.create(id=key, name="a", qty=1), lambda: repo.get(key),
                         lambda: repo.update(key, qty=2), lambda: repo.count(qty__gte=0),
                         lambda: repo.delete(key)):
                try:
                    await call()
                    count()
                except dbnb.DbnbError:
                    count(failed=True)

        async def load() -> None:
            items = dbnb.Repository(PooledItem, pooled)
            aitems = dbnb.AsyncRepository(PooledItem, pooled)
            base = 0
            while ops < 3_200:
                for key in range(base, base + 20):
                    for call in (lambda k=key: items.create(id=k, name="s", qty=k),
                                 lambda k=key: items.get(k), lambda k=key: items.update(k, qty=1),
                                 lambda: items.list(limit=5)):
                        try:
                            call()
                            count()
                        except dbnb.DbnbError:
                            count(failed=True)
                try:
                    items.to_frame()
                    items.from_frame(pd.DataFrame({"id": range(10**6 + base, 10**6 + base + 20),
                                                   "name": "f", "qty": 1}))
                    await aitems.to_frame()
                    count(3)
                except dbnb.DbnbError:
                    count(failed=True)
                await asyncio.gather(*(worker(aitems, 2 * 10**6 + base + w) for w in range(4)))
                base += 100
            await pooled.asyncio.close()

        migrator = threading.Thread(target=migrate)
        migrator.start()
        try:
            asyncio.run(load())
        finally:
            stop.set()
            migrator.join()
        locks = direct.execute("SELECT count(*) AS n FROM pg_locks WHERE locktype='advisory'")
        pooled.close()
        return (f"pgbouncer 1.18 transaction mode: {ops} operations, {failures} failures, "
                f"{locks[0].n} advisory locks left")


def silent_path(server: dbnb.EmbeddedServer, direct: dbnb.Database) -> str:
    socket_path = os.path.join(str(server.socket_dir), f".s.PGSQL.{server.port}")
    import socket

    proxy = SilentProxy((socket.AF_UNIX, socket_path))
    url = dbnb.connect(direct.url).url.set(host="127.0.0.1", port=proxy.port, query={})
    victim = dbnb.connect(url, application_name="dbnb-drill-silent", pool_size=2)

    async def run() -> list[float]:
        victim.execute("SELECT 1")
        await victim.asyncio.execute("SELECT 1")
        proxy.silence()
        seconds = []
        start = time.monotonic()
        with contextlib.suppress(dbnb.ConnectionFailed):
            victim.execute("SELECT 1")
        seconds.append(time.monotonic() - start)
        start = time.monotonic()
        with contextlib.suppress(dbnb.ConnectionFailed):
            await victim.asyncio.execute("SELECT 1")
        seconds.append(time.monotonic() - start)
        proxy.resume()
        victim.execute("SELECT 1")
        await victim.asyncio.execute("SELECT 1")
        await victim.asyncio.close()
        return seconds

    try:
        sync_s, async_s = asyncio.run(run())
    finally:
        proxy.close()
    return (f"silent path, default settings: psycopg failed after {sync_s:.1f} s, asyncpg after "
            f"{async_s:.1f} s (ConnectionFailed naming host and bounds), both recovered")


_KERNEL = """
import asyncio, sys
from sqlalchemy import text
import dbnb
db = dbnb.connect(sys.argv[1])
if sys.argv[2] == "sync":
    with db.session() as s:
        s.execute(text("UPDATE drill_rows SET v = v + 1 WHERE id = 1")); print("ready", flush=True)
        s.execute(text("SELECT pg_sleep(60)"))
else:
    async def main():
        async with db.async_session() as s:
            await s.execute(text("UPDATE drill_rows SET v = v + 1 WHERE id = 1"))
            print("ready", flush=True); await s.execute(text("SELECT pg_sleep(60)"))
    asyncio.run(main())
"""


def killed_kernel(direct: dbnb.Database) -> str:
    direct.execute("CREATE TABLE IF NOT EXISTS drill_rows (id int PRIMARY KEY, v int)")
    direct.execute("INSERT INTO drill_rows VALUES (1, 0) ON CONFLICT DO NOTHING")
    figures = []
    for mode in ("sync", "async"):
        child = subprocess.Popen([sys.executable, "-c", _KERNEL,
                                  direct.url.render_as_string(hide_password=False), mode],
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        child.kill()
        child.wait()
        start = time.monotonic()
        while True:
            try:
                with direct.session() as s:
                    s.execute(text("SET LOCAL lock_timeout = '100ms'"))
                    s.execute(text("UPDATE drill_rows SET v = v + 1 WHERE id = 1"))
                break
            except dbnb.QueryError:
                time.sleep(0.02)
        figures.append(f"{mode} {time.monotonic() - start:.1f} s")
    return "SIGKILLed kernel mid-query, row lock free after: " + ", ".join(figures)


def after_ddl(direct: dbnb.Database) -> str:
    alters = ["ALTER TABLE {t} ALTER COLUMN v TYPE bigint", "ALTER TABLE {t} ADD COLUMN w text",
              "ALTER TABLE {t} DROP COLUMN v"]

    async def run() -> tuple[int, int]:
        failed = total = 0
        for n, alter in enumerate(alters):
            for source in ("kernel", "db.execute", "async engine"):
                table = f"drill_ddl_{n}_{source.replace(' ', '_').replace('.', '_')}"
                direct.execute(f"CREATE TABLE {table} (id int, v int)")
                direct.execute(f"INSERT INTO {table} VALUES (1, 2)")
                for _ in range(8):
                    direct.execute(f"SELECT * FROM {table}")
                    await direct.asyncio.execute(f"SELECT * FROM {table}")
                sql = alter.format(t=table)
                if source == "kernel":
                    with psycopg.connect(psycopg_conninfo(direct.url), autocommit=True) as c:
                        c.execute(sql)
                elif source == "db.execute":
                    direct.execute(sql)
                else:
                    await direct.asyncio.execute(sql)
                for call in (direct.execute, direct.asyncio.execute):
                    total += 1
                    try:
                        result = call(f"SELECT * FROM {table}")
                        if asyncio.iscoroutine(result):
                            await result
                    except dbnb.DbnbError:
                        failed += 1
        await direct.asyncio.refresh_pools()
        return failed, total

    failed, total = asyncio.run(run())
    return f"first call after DDL: {failed} of {total} calls failed (3 DDL x 3 sources x 2 engines)"


def secrets() -> str:
    from IPython.core.error import UsageError
    from IPython.testing.globalipapp import start_ipython

    from dbnb.cli import main as cli

    shell: Any = start_ipython()
    shell.run_line_magic("load_ext", "dbnb")
    outputs = []
    for bad in SHAPES:
        for attempt in (lambda b=bad: dbnb.connect(b),
                        lambda b=bad: dbnb.Settings.resolve(environ={"DBNB_URL": b})):
            try:
                attempt()
            except dbnb.DbnbError as exc:
                outputs += [str(exc), repr(exc)]
        os.environ["DBNB_DRILL_URL"] = bad
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            cli(["--url", "env:DBNB_DRILL_URL", "health"])
        outputs.append(err.getvalue())
        try:
            shell.run_line_magic("db", "connect env:DBNB_DRILL_URL")
        except UsageError as exc:
            outputs.append(str(exc))
    leaks = sum(SECRET in o for o in outputs)
    return (f"malformed URLs ({len(SHAPES)} shapes x 4 sources): {leaks} leaks in "
            f"{len(outputs)} outputs")


def bad_inputs(direct: dbnb.Database) -> str:
    GadgetBase.metadata.create_all(direct.engine)
    outcomes: dict[str, int] = {}

    async def run() -> None:
        for _expected, _words, call in CASES.values():
            texts = []
            for repo in (dbnb.Repository(Gadget, direct), dbnb.AsyncRepository(Gadget, direct)):
                try:
                    result = call(repo)
                    if asyncio.iscoroutine(result):
                        await result
                    texts.append(("accepted", ""))
                except BaseException as exc:  # every outcome is counted by its kind
                    kind = "dbnb error" if isinstance(exc, dbnb.DbnbError) else "raw exception"
                    texts.append((kind, f"{type(exc).__name__}: {exc}"))
            kind = texts[0][0]
            if kind == "dbnb error" and texts[0] == texts[1]:
                kind = "dbnb error, same words on both drivers"
            outcomes[kind] = outcomes.get(kind, 0) + 1
        await direct.asyncio.refresh_pools()

    asyncio.run(run())
    return f"bad inputs ({len(CASES)} kinds x 2 drivers): " + ", ".join(
        f"{n} {k}" for k, n in sorted(outcomes.items())
    )


def main() -> None:
    home = Path(os.environ.get("DBNB_HOME") or tempfile.mkdtemp(prefix="dbnb-drills-"))
    server = dbnb.embedded_server(home, announce=False)
    direct = dbnb.connect(server.url("postgres"), database="drills", reset=True)
    for figure in (lambda: pooler_load(server, direct), lambda: silent_path(server, direct),
                   lambda: killed_kernel(direct), lambda: after_ddl(direct), secrets,
                   lambda: bad_inputs(direct)):
        print(figure(), flush=True)
    direct.close()
    with contextlib.suppress(dbnb.DbnbError):
        server.stop()
    signal.signal(signal.SIGINT, signal.SIG_DFL)


if __name__ == "__main__":
    main()
