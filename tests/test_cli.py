"""The dbnb console script: output and exit code of each command, on success and on failure."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import dbnb
from dbnb.cli import main
from dbnb.notebook.commands import COMMANDS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def url(db: dbnb.Database) -> str:
    return db.url.render_as_string(hide_password=False)


@pytest.fixture(autouse=True)
def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_migrate_current_history_heads_check_downgrade_stamp(
    capsys: pytest.CaptureFixture[str], url: str
) -> None:
    code, out, err = run(capsys, "--url", url, "migrate")
    assert (code, err) == (0, "")
    assert out.startswith("upgrade: base -> 0002 (2 revisions)")
    assert run(capsys, "--url", url, "migrate")[1].startswith("upgrade: already at 0002")
    code, out, _ = run(capsys, "--url", url, "current")
    assert code == 0 and "current     0002" in out and "up to date  yes" in out
    code, out, _ = run(capsys, "--url", url, "history")
    assert code == 0 and out.index("0002") < out.index("0001")
    assert run(capsys, "--url", url, "heads")[0] == 0
    code, out, _ = run(capsys, "--url", url, "check")
    assert code == 0 and out.startswith("no drift")
    code, out, _ = run(capsys, "--url", url, "downgrade", "-1")
    assert code == 0 and out.startswith("downgrade: 0002 -> 0001")
    code, out, _ = run(capsys, "--url", url, "check")
    assert code == 1 and "run migrate" in out  # not at head: check fails
    code, out, _ = run(capsys, "--url", url, "stamp", "0002")
    assert code == 0 and out.startswith("stamp: 0001 -> 0002")
    run(capsys, "--url", url, "stamp", "0001")
    assert run(capsys, "--url", url, "upgrade")[0] == 0


def test_check_exits_non_zero_on_drift(
    capsys: pytest.CaptureFixture[str], url: str, db: dbnb.Database
) -> None:
    run(capsys, "--url", url, "migrate")
    db.execute("DROP INDEX uq_products_sku")
    db.execute("CREATE UNIQUE INDEX uq_products_sku ON products (sku)")
    try:
        code, out, _ = run(capsys, "--url", url, "check")
        assert code == 1
        assert "modify_index_where" in out and "uq_products_sku" in out
    finally:
        db.execute("DROP INDEX uq_products_sku")
        db.execute("CREATE UNIQUE INDEX uq_products_sku ON products (sku) "
                   "WHERE deleted_at IS NULL")
    assert run(capsys, "--url", url, "check")[0] == 0


def test_failures_print_one_line_on_stderr(capsys: pytest.CaptureFixture[str], url: str) -> None:
    code, out, err = run(capsys, "--url", url, "migrate", "no_such_revision")
    assert code == 1 and out == ""
    assert err.startswith("dbnb: MigrationError: upgrade failed") and err.count("\n") == 1
    code, _, err = run(capsys, "--url", url, "describe", "userz")
    assert code == 1 and "did you mean users" in err


def test_sandbox_is_refused_in_a_terminal(capsys: pytest.CaptureFixture[str], url: str) -> None:
    code, out, err = run(capsys, "--url", url, "sandbox")
    assert code == 2 and out == "" and "%db sandbox" in err and err.count("\n") == 1
    assert "with db.sandbox()" in err
    code, _, err = run(capsys, "config", "frame=polars")
    assert code == 2 and "%db config" in err and "db.polars(sql)" in err


def test_catalog_health_info_pool_connect(capsys: pytest.CaptureFixture[str], url: str) -> None:
    run(capsys, "--url", url, "migrate")
    code, out, _ = run(capsys, "--url", url, "tables")
    assert code == 0 and "order_items" in out
    code, out, _ = run(capsys, "--url", url, "describe", "products")
    assert code == 0 and "ix_products_category" in out and "category" in out
    code, out, _ = run(capsys, "--url", url, "health")
    assert code == 0 and out.startswith("healthy: psycopg answered in ") and out.count("\n") == 1
    info = run(capsys, "--url", url, "info")[1]
    assert info.startswith("server\n") and "database             t_test_cli" in info
    pools = run(capsys, "--url", url, "pool")[1].splitlines()
    assert pools[0] == "connection pools" and pools[1].split()[:2] == ["engine", "driver"]
    assert pools[3].split()[:2] == ["sync", "psycopg"]
    code, out, _ = run(capsys, "--url", url, "connect")
    assert code == 0 and out.startswith("connected: database 't_test_cli' on ")
    for command in ("tables", "describe products", "health", "info", "pool", "connect",
                    "current", "history", "heads", "check", "help"):
        out = run(capsys, "--url", url, *command.split())[1]
        reprs = ("<", "HealthReport(", "PoolStatus(", "ServerInfo(", "CommandHelp(")
        assert not out.startswith(reprs) and "object at 0x" not in out, command


def test_an_unreachable_server_fails_without_leaking_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret_url = "postgresql://app:s3cret@127.0.0.1:1/shop"
    code, out, err = run(capsys, "--url", secret_url, "health")
    assert code == 1 and out.startswith("unhealthy: psycopg: ConnectionFailed")
    code2, out2, err2 = run(capsys, "--url", secret_url, "current")
    assert code2 == 1 and err2.startswith("dbnb: ConnectionFailed")
    assert "s3cret" not in out + err + out2 + err2


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], url: str) -> None:
    code, _, err = run(capsys, "migrat")
    assert code == 2 and "did you mean migrate" in err
    code, _, err = run(capsys, "--url", url, "downgrade", "--bogus")
    assert code == 2 and "unrecognized arguments: --bogus" in err
    code, _, err = run(capsys, "--url", "env:DBNB_NOT_SET_ANYWHERE", "current")
    assert code == 2 and "DBNB_NOT_SET_ANYWHERE is not set" in err


def test_bare_dbnb_prints_help_and_version_comes_from_the_package(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from importlib.metadata import version

    code, out, err = run(capsys)
    assert (code, err) == (0, "") and out.startswith("usage: dbnb") and "migrate" in out
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"dbnb {version('dbnb')}\n"


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "help")
    assert code == 0
    for name in COMMANDS:
        assert f"dbnb {name}" in out
    code, out, _ = run(capsys, "help", "revision")
    assert code == 0 and "usage: dbnb revision -m MESSAGE" in out and "--autogenerate" in out
    assert run(capsys, "stamp", "--help")[1].startswith("usage: dbnb stamp")


def test_init_and_revision(capsys: pytest.CaptureFixture[str], url: str, tmp_path: Path) -> None:
    target = tmp_path / "fresh"
    target.mkdir()
    code, out, _ = run(capsys, "init", str(target))
    assert code == 0 and "alembic.ini" in out
    code, _, err = run(capsys, "init", str(target))
    assert code == 1 and "already exist" in err
    project = tmp_path / "copy"
    project.mkdir()
    shutil.copy(ROOT / "alembic.ini", project / "alembic.ini")
    shutil.copytree(ROOT / "migrations", project / "migrations",
                    ignore=shutil.ignore_patterns("__pycache__"))
    run(capsys, "--url", url, "migrate")
    code, out, _ = run(capsys, "--url", url, "revision", "-m", "nothing new", "--autogenerate",
                       "--config", str(project))
    assert code == 0 and "none written" in out and "--empty writes an empty one" in out
    assert len(list((project / "migrations" / "versions").glob("*.py"))) == 2
    code, out, _ = run(capsys, "--url", url, "revision", "-m", "nothing new", "--autogenerate",
                       "--empty", "--config", str(project))
    assert code == 0 and "operations     none detected" in out
    assert len(list((project / "migrations" / "versions").glob("*.py"))) == 3


def test_console_script_end_to_end(url: str) -> None:
    env = {**os.environ, "DBNB_CLI_TEST_URL": url, "PYTHONWARNINGS": "error"}
    ok = subprocess.run([sys.executable, "-m", "dbnb", "--url", "env:DBNB_CLI_TEST_URL",
                         "current"], capture_output=True, text=True, env=env, cwd=ROOT,
                        timeout=120, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "current" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "dbnb", "histroy"], capture_output=True,
                         text=True, env=env, cwd=ROOT, timeout=120, check=False)
    assert bad.returncode == 2 and "did you mean history" in bad.stderr


def test_messages_name_cli_commands(
    capsys: pytest.CaptureFixture[str], url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "--url", url, "current")
    assert code == 1 and "run `dbnb init` in the project root" in err
    assert "--config path/to/alembic.ini" in err


def test_bad_input_exits_2_with_one_line_and_no_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["--url", "postgres:s3cret-pw@db.example.com/shop", "health"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("dbnb: ConfigError: ") and err.count("\n") == 1
    assert "s3cret-pw" not in err
