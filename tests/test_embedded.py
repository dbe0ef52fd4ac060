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
    import dbnb
    db = dbnb.connect(database="shared_check")
    row = db.execute("SELECT pg_postmaster_start_time()::text AS started, "
                     "current_setting('data_directory') AS data")[0]
    db.execute("CREATE TABLE IF NOT EXISTS hits (pid int)")
    db.execute("INSERT INTO hits VALUES (pg_backend_pid())")
    print(row.started, row.data, db.execute("SELECT count(*) AS n FROM hits")[0].n)
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


def test_two_processes_share_one_server(own_home: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ASK_FOR_EMBEDDED],
            env=_env(DBNB_HOME=str(own_home)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    lines = [out.split() for out, _ in outputs]
    started = {(line[0], line[1]) for line in lines}
    assert len(started) == 1, f"two servers were started: {lines}"
    assert sorted(int(line[-1]) for line in lines)[-1] == 2  # both wrote to the same table
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
