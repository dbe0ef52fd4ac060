"""Named connections: the files, the ``default`` entry, and passwords from everywhere but a file.

Passwords are tested for real against the ``password_server`` fixture (a PostgreSQL that asks
for one), through both drivers. HOME is a temporary directory in every test, and ``getpass``
the only thing patched (it stands for the person typing).
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

import dbnb
from dbnb.engine import connections
from tests.conftest import PASSWORD_SERVER_SECRET as SECRET


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary HOME (and working directory); the suite's DBNB_CONNECTIONS="" is lifted."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("DBNB_CONNECTIONS", raising=False)
    for name in ("PGPASSWORD", "PGPASSFILE", "DBNB_URL", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    return tmp_path


def write_user_file(home: Path, text: str) -> Path:
    path = home / ".config" / "dbnb" / "connections.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def both_drivers_answer(db: dbnb.Database) -> None:
    assert db.health().ok, db.health()
    assert dbnb.run(db.asyncio.health()).ok
    assert db.execute("SELECT current_user")[0][0] == "ana"


def no_secret_in(*things: object) -> None:
    for thing in things:
        assert SECRET not in repr(thing) and SECRET not in str(thing)


def test_files_are_found_and_the_project_wins(home: Path) -> None:
    user = write_user_file(home, """
[default]
url = "postgresql://ana@db.example.com:5433/analytics"
[warehouse]
host = "wh.example.com"
user = "ana"
database = "sales"
password_env = "WH_PASSWORD"
statement_timeout = 30000
""")
    (home / "project" / "pyproject.toml").write_text("""
[project]
name = "x"
[tool.dbnb.connections.default]
url = "postgresql://app@localhost/app_dev"
""")
    listed = connections.connections(current="warehouse")
    assert listed.names == ("default", "warehouse")
    text = repr(listed)
    assert "postgresql://app@localhost/app_dev" in text and "db.example.com" not in text
    assert "warehouse (in use)" in text and "postgresql://ana@wh.example.com/sales" in text
    assert "$WH_PASSWORD (not set)" in text and str(user) in text
    assert "<table" in listed._repr_html_()
    url, settings = connections.resolve("default")
    assert url.render_as_string(hide_password=False) == "postgresql://app@localhost/app_dev"
    with pytest.raises(dbnb.ConfigError, match="WH_PASSWORD, which is not set"):
        connections.resolve("warehouse")
    os.environ["WH_PASSWORD"] = SECRET
    try:
        url, settings = connections.resolve("warehouse")
    finally:
        del os.environ["WH_PASSWORD"]
    assert url.password == SECRET and settings == {"statement_timeout": 30000}
    no_secret_in(url, listed)
    with pytest.raises(dbnb.ConfigError, match="by that name; known: default, warehouse"):
        connections.resolve("nope")


def test_a_password_written_in_a_file_is_refused_and_never_shown(home: Path) -> None:
    write_user_file(home, f"""
[inline]
url = "postgresql://ana:{SECRET}@db.example.com/x"
[keyed]
host = "db.example.com"
password = "{SECRET}"
""")
    listed = connections.connections()
    assert repr(listed).count("refused: written in the file") == 2
    no_secret_in(listed, *listed.entries)
    for name in ("inline", "keyed"):
        with pytest.raises(dbnb.ConfigError, match="password is written in the file") as caught:
            dbnb.connect(name)
        no_secret_in(caught.value)


def test_bad_files_say_which_and_what(home: Path) -> None:
    write_user_file(home, "[x]\nurl = 'postgresql://h/d'\npasword_env = 'P'\n")
    with pytest.raises(dbnb.ConfigError, match=r"\[x\] in .*connections.toml: unknown key"):
        connections.load()
    write_user_file(home, "[x\n")
    with pytest.raises(dbnb.ConfigError, match="is not valid TOML"):
        connections.load()


def test_the_default_entry_is_what_connect_uses(
    home: Path, monkeypatch: pytest.MonkeyPatch, server_url: object
) -> None:
    url = make_url(str(server_url)).set(database="t_default_entry")
    write_user_file(home, f'[default]\nurl = "{url.render_as_string(hide_password=False)}"\n'
                          "pool_size = 2\n")
    db = dbnb.connect(database="t_default_entry")
    assert db.database == "t_default_entry" and db.settings.pool_size == 2
    assert db.execute("SELECT 1")[0][0] == 1
    monkeypatch.setenv("DBNB_CONNECTIONS", "")
    assert dbnb.connect(database="t_default_entry").settings.pool_size != 2  # the file is off


def test_passwords_from_the_environment_reach_both_drivers(
    home: Path, password_server: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    host, port = password_server
    write_user_file(home, f"""
[guarded]
url = "postgresql://ana@{host}:{port}/postgres"
password_env = "GUARDED_PASSWORD"
""")
    monkeypatch.setenv("GUARDED_PASSWORD", SECRET)
    db = dbnb.connect("guarded")
    both_drivers_answer(db)
    no_secret_in(db, db.settings, db.url, connections.connections())
    db.close()


def test_pgpass_is_read_by_both_drivers(home: Path, password_server: tuple[str, int]) -> None:
    host, port = password_server
    write_user_file(home, f'[guarded]\nurl = "postgresql://ana@{host}:{port}/postgres"\n')
    pgpass = home / ".pgpass"
    pgpass.write_text(f"{host}:{port}:*:ana:{SECRET}\n")
    pgpass.chmod(0o600)
    assert str(pgpass) in repr(connections.connections())  # where the password comes from
    db = dbnb.connect("guarded", pool_size=1)  # other options: another Database, fresh pools
    both_drivers_answer(db)
    db.close()
    pgpass.unlink()
    other = home / "elsewhere.pgpass"
    other.write_text(f"*:*:*:ana:{SECRET}\n")
    other.chmod(0o600)
    os.environ["PGPASSFILE"] = str(other)
    try:
        db = dbnb.connect("guarded", pool_size=3)
        both_drivers_answer(db)
        db.close()
    finally:
        del os.environ["PGPASSFILE"]


def test_a_prompted_password_is_used_and_kept_nowhere(
    home: Path, password_server: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    host, port = password_server
    path = write_user_file(home, f'[guarded]\nurl = "postgresql://ana@{host}:{port}/postgres"\n')
    asked: list[str] = []

    def typed(prompt: str = "") -> str:
        asked.append(prompt)
        return SECRET

    monkeypatch.setattr(getpass, "getpass", typed)
    db = dbnb.connect("guarded", ask_password=True, pool_size=4)
    assert asked == [f"Password for ana@{host}/postgres (guarded): "]
    both_drivers_answer(db)
    no_secret_in(db, db.settings, connections.connections())
    assert SECRET not in path.read_text()
    db.close()
    bad = dbnb.connect(f"postgresql://ana@{host}:{port}/postgres", pool_size=5)
    with pytest.raises(dbnb.ConnectionFailed) as caught:
        bad.execute("SELECT 1")
    assert "password" in str(caught.value).lower()
    no_secret_in(caught.value)
    bad.close()


@pytest.fixture
def file_keyring(home: Path) -> Iterator[Any]:
    """The keyring library on a real backend that keeps its store in a file under HOME."""
    import keyring
    from keyrings.alt.file import PlaintextKeyring

    previous = keyring.get_keyring()
    store = PlaintextKeyring()
    keyring.set_keyring(store)
    yield keyring
    keyring.set_keyring(previous)


def test_a_password_from_the_keyring_reaches_both_drivers(
    home: Path, password_server: tuple[str, int], file_keyring: Any
) -> None:
    host, port = password_server
    path = write_user_file(home, f"""
[vaulted]
url = "postgresql://ana@{host}:{port}/postgres"
keyring = "dbnb-tests"
""")
    with pytest.raises(dbnb.ConfigError, match="keyring set dbnb-tests ana"):
        dbnb.connect("vaulted")
    file_keyring.set_password("dbnb-tests", "ana", SECRET)
    assert "keyring 'dbnb-tests'" in repr(connections.connections())
    db = dbnb.connect("vaulted", pool_size=2)
    both_drivers_answer(db)
    no_secret_in(db, db.settings, db.url, connections.connections())
    assert SECRET not in path.read_text()
    db.close()


def test_keyring_entries_need_a_user_and_only_one_password_source(
    home: Path, file_keyring: Any
) -> None:
    write_user_file(home, '[anon]\nhost = "db.example.com"\nkeyring = "svc"\n')
    with pytest.raises(dbnb.ConfigError, match="give the entry a user"):
        connections.resolve("anon")
    write_user_file(home, '[both]\nhost = "h"\nuser = "u"\nkeyring = "s"\npassword_env = "P"\n')
    with pytest.raises(dbnb.ConfigError, match="password_env or keyring, not both"):
        connections.load()


def test_without_the_keyring_library_the_error_names_the_extra(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_user_file(home, '[vaulted]\nhost = "h"\nuser = "ana"\nkeyring = "svc"\n')
    monkeypatch.setitem(sys.modules, "keyring", None)  # as if it were not installed
    with pytest.raises(dbnb.MissingExtra, match=r"pip install 'dbnb\[keyring\]'") as caught:
        connections.resolve("vaulted")
    assert isinstance(caught.value, ImportError) and caught.value.__cause__ is not None
