"""The settings apps bring: DATABASE_* aliases, a .env file, and typos that are named."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import dbnb
from dbnb import environ
from dbnb.settings import Settings


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each name is warned about once per process; every test starts afresh.
    monkeypatch.setattr(environ, "_warned", set())


@pytest.mark.parametrize(
    ("alias", "value", "field", "expected"),
    [
        ("DATABASE_POOL_SIZE", "12", "pool_size", 12),
        ("DATABASE_MAX_OVERFLOW", "3", "max_overflow", 3),
        ("DATABASE_POOL_TIMEOUT", "7.5", "pool_timeout", 7.5),
        ("DATABASE_POOL_RECYCLE", "60", "pool_recycle", 60),
        ("DATABASE_POOL_PRE_PING", "false", "pool_pre_ping", False),
        ("DATABASE_ECHO", "true", "echo", True),
        ("DATABASE_ECHO_POOL", "yes", "echo_pool", True),
    ],
)
def test_database_aliases_set_dbnbs_settings(
    alias: str, value: str, field: str, expected: object
) -> None:
    settings = Settings.resolve("sqlite://", environ={alias: value})
    assert getattr(settings, field) == expected
    default = getattr(Settings.resolve("sqlite://", environ={}), field)
    assert default != expected  # the alias changed something


def test_an_alias_and_dbnbs_name_that_agree_are_fine_and_that_disagree_are_an_error() -> None:
    same = {"DB_POOL_SIZE": "9", "DATABASE_POOL_SIZE": "9"}
    assert Settings.resolve("sqlite://", environ=same).pool_size == 9
    with pytest.raises(dbnb.ConfigError) as info:
        Settings.resolve("sqlite://", environ={"DB_POOL_SIZE": "5", "DATABASE_POOL_SIZE": "10"})
    assert "DB_POOL_SIZE='5' and DATABASE_POOL_SIZE='10' disagree" in str(info.value)


def test_pre_ping_and_pool_echo_reach_the_engine() -> None:
    db = dbnb.connect("sqlite:///:memory:", pool_pre_ping=False, echo_pool=True)
    try:
        assert db.settings.pool_pre_ping is False
        assert db.engine.pool.echo is True  # SQLAlchemy logs checkouts on sqlalchemy.pool
    finally:
        db.close()


def test_a_misspelt_variable_warns_with_the_closest_name() -> None:
    with pytest.warns(dbnb.ConfigWarning, match="DB_POOL_SIZ; did you mean DB_POOL_SIZE"):
        Settings.resolve("sqlite://", environ={"DB_POOL_SIZ": "3"})
    with pytest.warns(dbnb.ConfigWarning, match="DATABASE_ECO; did you mean DATABASE_ECHO"):
        Settings.resolve("sqlite://", environ={"DATABASE_ECO": "1"})


def test_known_variables_give_no_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Settings.resolve("sqlite://", environ={"DB_SLOW_QUERY_MS": "10", "DATABASE_ECHO": "0",
                                               "DATABASE_URL": "sqlite://"})


def _project(tmp_path: Path, dotenv: str) -> Path:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / ".env").write_text(dotenv)
    work = tmp_path / "notebooks"
    work.mkdir()
    return work


def test_dotenv_in_the_project_root_is_read_under_the_real_environment(tmp_path: Path) -> None:
    work = _project(tmp_path, "DATABASE_URL=sqlite:///from-dotenv.db\nDB_POOL_SIZE=4\n"
                              "DATABASE_MAX_OVERFLOW=2\n")
    settings = Settings.resolve(environ={"DB_POOL_SIZE": "7"}, dotenv=work)
    assert settings.url is not None and settings.url.database == "from-dotenv.db"
    assert settings.pool_size == 7  # the real environment wins
    assert settings.max_overflow == 2


def test_dotenv_in_the_working_directory_wins_over_the_root(tmp_path: Path) -> None:
    work = _project(tmp_path, "DB_POOL_SIZE=4\n")
    (work / ".env").write_text("DB_POOL_SIZE=6\n")
    assert Settings.resolve("sqlite://", environ={}, dotenv=work).pool_size == 6


def test_dotenv_is_never_read_from_outside_the_project(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DB_POOL_SIZE=4\n")  # above the project root
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / ".git").mkdir()
    assert environ.dotenv_path(project / "notebooks") is None
    assert Settings.resolve("sqlite://", environ={}, dotenv=project / "notebooks").pool_size == 5


def test_dotenv_can_be_switched_off(tmp_path: Path) -> None:
    work = _project(tmp_path, "DB_POOL_SIZE=4\n")
    assert Settings.resolve("sqlite://", environ={}, dotenv=False).pool_size == 5
    off = {"DBNB_DOTENV": "0"}
    assert Settings.resolve("sqlite://", environ=off, dotenv=work).pool_size == 5


def test_the_process_environment_reads_the_working_directorys_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = _project(tmp_path, "DB_POOL_SIZE=4\n")
    monkeypatch.chdir(work)
    monkeypatch.delenv("DBNB_DOTENV")  # the suite switches it off; here it is on
    assert Settings.resolve("sqlite://").pool_size == 4
    db = dbnb.connect("sqlite:///:memory:", dotenv=False)
    assert db.settings.pool_size == 5
    db.close()


def test_dotenv_typos_warn_too(tmp_path: Path) -> None:
    work = _project(tmp_path, "DB_POOL_SIZEE=4\n")
    with pytest.warns(dbnb.ConfigWarning, match="did you mean DB_POOL_SIZE"):
        Settings.resolve("sqlite://", environ={}, dotenv=work)
