from __future__ import annotations

import re

import pytest

from dbnb import ConfigError, Settings


def test_defaults_without_environment() -> None:
    s = Settings.resolve(environ={})
    assert s.url is None  # embedded
    assert (s.pool_size, s.max_overflow, s.pool_timeout, s.pool_recycle) == (5, 10, 30.0, 1800)
    assert s.echo is False and s.statement_timeout is None
    assert s.application_name.startswith("dbnb:")


def test_dbnb_url_wins_over_database_url() -> None:
    env = {"DBNB_URL": "postgresql://a@h1/one", "DATABASE_URL": "postgresql://b@h2/two"}
    assert Settings.resolve(environ=env).url.host == "h1"  # type: ignore[union-attr]
    assert Settings.resolve(environ={"DATABASE_URL": "postgres://b@h2/two"}).url.host == "h2"  # type: ignore[union-attr]


def test_argument_wins_over_environment() -> None:
    env = {"DBNB_URL": "postgresql://a@h1/one", "DB_POOL_SIZE": "7", "DB_ECHO": "yes"}
    s = Settings.resolve("postgresql+asyncpg://c@h3/three", environ=env, pool_size=2)
    assert s.url is not None and s.url.host == "h3" and s.url.drivername == "postgresql"
    assert s.pool_size == 2 and s.echo is True


def test_environment_pool_options() -> None:
    env = {
        "DB_POOL_SIZE": "3",
        "DB_MAX_OVERFLOW": "0",
        "DB_POOL_TIMEOUT": "0.5",
        "DB_POOL_RECYCLE": "60",
        "DB_STATEMENT_TIMEOUT": "250",
        "DB_ECHO": "off",
    }
    s = Settings.resolve(environ=env)
    assert (s.pool_size, s.max_overflow, s.pool_timeout, s.pool_recycle) == (3, 0, 0.5, 60)
    assert s.statement_timeout == 250 and s.echo is False


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"DB_POOL_SIZE": "ten"}, "DB_POOL_SIZE"),
        ({"DB_POOL_SIZE": "0"}, "DB_POOL_SIZE"),
        ({"DB_MAX_OVERFLOW": "-1"}, "DB_MAX_OVERFLOW"),
        ({"DB_POOL_TIMEOUT": "soon"}, "DB_POOL_TIMEOUT"),
        ({"DB_ECHO": "maybe"}, "DB_ECHO"),
        ({"DB_STATEMENT_TIMEOUT": "1.5"}, "DB_STATEMENT_TIMEOUT"),
        ({"DBNB_URL": "oracle://root@localhost/db"}, "DBNB_URL"),
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://u@h:99999/db"}, "DATABASE_URL"),
    ],
)
def test_bad_environment_values_name_the_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as info:
        Settings.resolve(environ=env)
    message = str(info.value)
    assert re.search(r"\buse\b|expected|set it to", message)  # says what is accepted


def test_unknown_scheme_lists_accepted_ones() -> None:
    with pytest.raises(ConfigError, match=r"postgresql\+asyncpg://"):
        Settings.resolve("oracle://root:hunter2@localhost/db", environ={})


def test_bad_url_error_hides_password() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.resolve("oracle://root:hunter2@localhost/db", environ={})
    assert "hunter2" not in str(info.value)
    with pytest.raises(ConfigError) as info2:
        Settings.resolve("postgresql://root:hunter2@localhost:notaport/db", environ={})
    assert "hunter2" not in str(info2.value)


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="pool_size"):
        Settings.resolve(environ={}, pool_size="5")
    with pytest.raises(ConfigError, match="unknown option"):
        Settings.resolve(environ={}, pool_sise=5)


def test_settings_are_frozen_and_repr_hides_password() -> None:
    s = Settings.resolve("postgresql://app:s3cret@localhost/shop", environ={})
    with pytest.raises(AttributeError):
        s.pool_size = 3  # type: ignore[misc]
    assert "s3cret" not in repr(s) and "***" in repr(s)
