"""DbnbErrors in IPython: compact (the user's frame and the message), the full chain via %tb."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from IPython.core.interactiveshell import InteractiveShell

import dbnb

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def ip(seeded: dbnb.Database, ipython: InteractiveShell) -> InteractiveShell:
    shell = ipython
    shell.user_ns.update(dbnb=dbnb, db=seeded)
    shell.run_cell("from dbnb.examples import shop\nusers = dbnb.Repository(shop.User, db)")
    return shell


def run(ip: InteractiveShell, capsys: pytest.CaptureFixture[str], source: str) -> list[str]:
    capsys.readouterr()
    ip.run_cell(source)
    out, err = capsys.readouterr()
    return ANSI.sub("", out + err).rstrip("\n").splitlines()


def test_a_unique_violation_is_compact(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = run(ip, capsys, 'users.create(email="ana@example.com", name="Ana again")')
    assert len(lines) <= 15, "\n".join(lines)
    text = "\n".join(lines)
    assert lines[1].startswith("UniqueViolation ")
    assert '----> 1 users.create(email="ana@example.com", name="Ana again")' in text
    assert 'UniqueViolation: duplicate key value violates unique constraint "uq_users_email"' in (
        text
    )
    assert "DETAIL:  Key (email)=(ana@example.com) already exists." in text
    assert "use another, or update the existing row" in text  # what to do
    assert "%tb" in lines[-1]
    for internal in ("sqlalchemy", "psycopg", "contextlib", "dbnb/", "IntegrityError"):
        assert internal not in text
    assert isinstance(sys.last_value, dbnb.UniqueViolation)  # for %tb and %debug


def test_tb_shows_the_whole_chain(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    run(ip, capsys, 'db.frame("SELECT agee FROM users")')
    full = "\n".join(run(ip, capsys, "%tb"))
    assert "UndefinedColumn" in full  # the driver error, first in the chain
    assert "The above exception was the direct cause" in full
    assert "dbnb/frames/" in full


def test_user_functions_stay_visible(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_cell("def adults(n):\n    return users.list(agee__gte=n)\n")
    lines = run(ip, capsys, "adults(18)")
    text = "\n".join(lines)
    assert "line 2, in adults\n----> 2 return users.list(agee__gte=n)" in text
    assert "----> 1 adults(18)" in text
    assert "FilterError: User has no column 'agee'" in text and "Did you mean 'age'?" in text
    assert "dbnb/orm" not in text and len(lines) <= 12


def test_verbose_mode_shows_everything(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("xmode", "Verbose")
    try:
        text = "\n".join(run(ip, capsys, 'users.create(email="ana@example.com", name="Twin")'))
    finally:
        ip.run_line_magic("xmode", "Context")
    assert "psycopg" in text and "sqlalchemy" in text


def test_other_errors_are_left_to_ipython(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "\n".join(run(ip, capsys, "{}['missing']"))
    assert "KeyError" in text and "%tb shows the whole chain" not in text


def test_plain_python_keeps_ordinary_tracebacks(seeded: dbnb.Database) -> None:
    script = (
        "import sys, dbnb\n"
        "db = dbnb.connect(sys.argv[1])\n"
        "db.frame('SELECT agee FROM users')\n"
    )
    url = seeded.url.render_as_string(hide_password=False)
    done = subprocess.run([sys.executable, "-c", script, url], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 1
    assert "The above exception was the direct cause" in done.stderr
    assert "dbnb.errors.QueryError: column \"agee\" does not exist" in done.stderr
    assert "%tb" not in done.stderr
