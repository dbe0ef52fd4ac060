"""Named connections in the magic: %load_ext's default, %db connect/connections, %%db --db."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from sqlalchemy import create_engine
from sqlalchemy.engine import URL

import dbnb
from dbnb.notebook.magic import DbMagics
from tests.conftest import PASSWORD_SERVER_SECRET as SECRET


@pytest.fixture
def home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ipython: InteractiveShell
) -> Iterator[Path]:
    """A temporary HOME whose connections file the test writes; the shell's magics restored."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("DBNB_CONNECTIONS", raising=False)
    for name in ("PGPASSWORD", "PGPASSFILE", "DBNB_URL", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    registered = ipython.magics_manager.registry["DbMagics"]
    state = (registered.database, registered.connection_name, dict(registered.named))
    yield tmp_path
    registered.database, registered.connection_name, registered.named = state


def write(home: Path, entries: dict[str, str]) -> None:
    path = home / ".config" / "dbnb" / "connections.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f'[{n}]\nurl = "{u}"\n' for n, u in entries.items()))


def url_of(server_url: URL, database: str) -> str:
    return server_url.set(database=database).render_as_string(hide_password=False)


def line(ip: InteractiveShell, text: str) -> Any:
    return ip.run_line_magic("db", text)


def test_load_ext_connects_the_default_entry_and_says_so(
    home: Path, ipython: InteractiveShell, server_url: URL, capsys: pytest.CaptureFixture[str]
) -> None:
    dbnb.connect(server_url, database="t_magic_default")  # the database exists
    write(home, {"default": url_of(server_url, "t_magic_default")})
    capsys.readouterr()
    magics = DbMagics(ipython)  # what %load_ext dbnb does
    assert magics.database is not None and magics.database.database == "t_magic_default"
    assert magics.connection_name == "default"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(connection 'default' in " in err
    write(home, {"default": "postgresql://ana:" + SECRET + "@nowhere/x"})
    broken = DbMagics(ipython)  # a broken default must not break %load_ext
    assert broken.database is None
    err = capsys.readouterr().err
    assert "default connection is not usable" in err and SECRET not in err


def test_connect_by_name_list_and_run_one_cell_elsewhere(
    home: Path, ipython: InteractiveShell, server_url: URL
) -> None:
    for name in ("t_magic_main", "t_magic_other"):
        dbnb.connect(server_url, database=name).execute(
            f"DROP TABLE IF EXISTS here; CREATE TABLE here AS SELECT '{name}' AS name"
        )
    write(home, {"main": url_of(server_url, "t_magic_main"),
                 "other": url_of(server_url, "t_magic_other")})
    db = line(ipython, "connect main")
    assert db.database == "t_magic_main"
    listed = line(ipython, "connections")
    assert listed.names == ("main", "other") and "main (in use)" in repr(listed)
    frame = ipython.run_cell_magic("db", "--db other", "SELECT name FROM here")
    assert frame["name"].tolist() == ["t_magic_other"]
    assert line(ipython, "SELECT name FROM here")["name"].tolist() == ["t_magic_main"]
    with pytest.raises(UsageError, match="no connection by that name; known: main, other"):
        ipython.run_cell_magic("db", "--db nope", "SELECT 1")
    with pytest.raises(UsageError, match="no connection by that name; did you mean 'main'"):
        line(ipython, "connect mian")


def test_connect_takes_a_database_or_an_engine_from_the_notebook(
    home: Path, ipython: InteractiveShell, server_url: URL
) -> None:
    mine = dbnb.connect(server_url, database="t_magic_object")
    ipython.user_ns["mine"] = mine
    assert line(ipython, "connect mine") is mine
    ipython.user_ns["async_mine"] = mine.asyncio
    assert line(ipython, "connect async_mine") is mine
    engine = create_engine(url_of(server_url, "t_magic_object").replace(
        "postgresql://", "postgresql+psycopg://"))
    ipython.user_ns["engine"] = engine
    through = line(ipython, "connect engine")
    assert isinstance(through, dbnb.Database) and through.database == "t_magic_object"
    assert ipython.run_cell_magic("db", "--db engine", "SELECT 7 AS n")["n"].tolist() == [7]
    engine.dispose()


def test_connect_with_a_typed_password(
    home: Path, ipython: InteractiveShell, password_server: tuple[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host, port = password_server
    write(home, {"guarded": f"postgresql://ana@{host}:{port}/postgres"})
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": SECRET)
    db = line(ipython, "connect guarded --password")
    assert db.execute("SELECT current_user")[0][0] == "ana"
    assert ipython.run_cell_magic("db", "--db guarded", "SELECT 1 AS one")["one"].tolist() == [1]
    shown = repr(db) + repr(line(ipython, "connections")) + db._repr_html_()
    assert SECRET not in shown
    db.close()
