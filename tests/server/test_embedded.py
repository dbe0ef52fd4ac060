"""The embedded PostgreSQL: default only without a URL, shared by concurrent processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

import dbnb

ASK_FOR_EMBEDDED = textwrap.dedent(
    """
    import os, pathlib, sys, time
    import dbnb
    from sqlalchemy import text
    db = dbnb.connect(database="shared_check")
    started = db.execute("SELECT pg_postmaster_start_time()::text AS t")[0].t
    with db.session() as s:  # concurrent CREATE TABLE IF NOT EXISTS races in the catalog
        s.execute(text("SELECT pg_advisory_xact_lock(42)"))
        s.execute(text("CREATE TABLE IF NOT EXISTS hits (pid int)"))
    db.execute("INSERT INTO hits VALUES (pg_backend_pid())")
    # Barrier: stay attached until the other process has used the server too, so both really
    # run at the same time (the server stops when its last user exits).
    barrier = pathlib.Path(os.environ["BARRIER"])
    (barrier / sys.argv[1]).touch()
    deadline = time.monotonic() + 60
    while len(list(barrier.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    n = db.execute("SELECT count(*) AS n FROM hits")[0].n
    print(started, "|", db.execute("SHOW data_directory")[0][0], "|", n, sep="")
    """
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DBNB_URL", "DATABASE_URL"}}
    env.update(extra)
    return env


@pytest.fixture
def own_home(tmp_path: Path, embedded: dbnb.EmbeddedServer | None) -> Path:
    if embedded is None:
        pytest.skip("DBNB_TEST_URL is set: the embedded server is not in use for this run")
    return tmp_path / "home"


def test_two_processes_share_one_server(own_home: Path, tmp_path: Path) -> None:
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ASK_FOR_EMBEDDED, f"p{i}"],
            env=_env(DBNB_HOME=str(own_home), BARRIER=str(barrier)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    results = [out.strip().split("|") for out, _ in outputs]
    assert len({(started, data) for started, data, _ in results}) == 1, results
    assert sorted(int(n) for _, _, n in results) == [2, 2]  # both see both rows
    assert any("embedded PostgreSQL" in err for _, err in outputs)  # said where it lives


def test_embedded_is_not_started_when_a_url_is_configured(
    own_home: Path, server_url: URL, db: dbnb.Database
) -> None:
    url = server_url.set(database=db.database).render_as_string(hide_password=False)
    code = "import dbnb; print(dbnb.connect().execute('SELECT current_database() AS d')[0].d)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=_env(DBNB_HOME=str(own_home), DATABASE_URL=url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == db.database
    assert not (own_home / "pgdata").exists()
    assert "embedded" not in done.stderr


def test_embedded_urls_use_the_socket_and_no_password(embedded: dbnb.EmbeddedServer | None) -> None:
    if embedded is None:
        pytest.skip("DBNB_TEST_URL is set")
    url = embedded.url("anything")
    assert url.password is None and url.database == "anything"
    assert Path(str(url.query["host"])).is_dir()
    assert "~" in embedded.describe() or str(embedded.home) in embedded.describe()
