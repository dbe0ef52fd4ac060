"""The command table: parsers derived from signatures, help from docstrings, no drift."""

from __future__ import annotations

import pytest

from dbnb import migrations
from dbnb.notebook import catalog
from dbnb.notebook.commands import COMMANDS, CommandUsageError, find


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_argument_is_documented_in_the_docstring(name: str) -> None:
    command = COMMANDS[name]
    assert command.summary and not command.summary.endswith(".")
    parser = command.parser("dbnb")
    for action in parser._actions:
        assert action.help, f"{name}: {action.dest} has no Args: entry in the docstring"


def test_parsers_follow_the_signatures() -> None:
    assert find("migrate").function is migrations.upgrade
    assert find("upgrade") is find("migrate")
    assert find("describe").function is catalog.describe
    assert find("downgrade").parse([]) == {"revision": "-1", "sql": False, "config": None}
    assert find("downgrade").parse(["base"])["revision"] == "base"
    parsed = find("revision").parse(["-m", "add coupons", "--autogenerate"])
    assert parsed == {"message": "add coupons", "autogenerate": True, "empty": False,
                      "baseline": False, "models": None, "config": None}
    assert find("connect").parse(["env:X", "--database", "d", "--reset"]) == {
        "url": "env:X", "database": "d", "reset": True, "ask_password": False,
        "replicas": None, "max_replica_lag": None, "replica_recheck": None,
    }
    replicated = find("connect").parse(["x", "--replicas", "postgresql://a, postgresql://b"])
    assert replicated["replicas"] == "postgresql://a, postgresql://b"
    assert find("connect").parse(["warehouse", "--password"])["ask_password"] is True
    assert find("stamp").parse(["--help"]) is None


def test_bad_command_lines() -> None:
    with pytest.raises(CommandUsageError, match="did you mean describe"):
        find("descrbe")
    with pytest.raises(CommandUsageError, match="unknown command 'zzz'; \\(help"):
        find("zzz")
    with pytest.raises(CommandUsageError, match="required: table"):
        find("describe").parse([])
    with pytest.raises(CommandUsageError, match="unrecognized arguments: --autogen"):
        find("revision").parse(["-m", "x", "--autogen"])  # no abbreviations


def test_a_parser_is_built_once_per_spelling() -> None:
    pool = find("pool")
    assert pool.parser("%db") is pool.parser("%db")
    assert pool.parser("dbnb") is not pool.parser("%db")
    assert pool.parse([], prog="%db") == {} and pool.parse([], prog="%db") == {}


def test_load_ext_leaves_alembic_pandas_and_pyarrow_for_first_use() -> None:
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\n"
        "ip.run_line_magic('load_ext', 'dbnb')\n"
        "print(sorted(m for m in ('alembic', 'pandas', 'pyarrow') if m in sys.modules))\n"
        "ip.run_line_magic('db', 'help migrate')\n"
        "print(sorted(m for m in ('alembic', 'pandas', 'pyarrow') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    at_load, after_help = done.stdout.splitlines()[-2:]
    assert at_load == "[]"
    assert "alembic" in after_help
