"""The dialect seam: one capability table, asked by every layer; PostgreSQL-only things refused."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects import mysql, postgresql, sqlite

import dbnb
from dbnb.dialects import BACKENDS, capabilities
from dbnb.settings import Settings


def test_the_table_says_what_each_backend_can_do() -> None:
    pg, lite, my, maria = (BACKENDS[n] for n in ("postgresql", "sqlite", "mysql", "mariadb"))
    assert pg.copy and not lite.copy and not my.copy
    assert pg.partial_index and lite.partial_index and not my.partial_index
    assert pg.returning and lite.returning and not my.insert_returning
    assert maria.insert_returning and maria.delete_returning and not maria.update_returning
    assert pg.upsert == lite.upsert == "on_conflict" and my.upsert == "on_duplicate_key"
    assert pg.advisory_locks and pg.server_sessions and pg.pooler
    assert not any((lite.advisory_locks, lite.server_sessions, lite.pooler, my.pooler))
    assert all(b.savepoints for b in BACKENDS.values())
    assert (lite.sync_driver, lite.async_driver) == ("pysqlite", "aiosqlite")
    assert (my.sync_driver, my.async_driver) == ("pymysql", "aiomysql")


@pytest.mark.parametrize(
    ("target", "name"),
    [
        ("postgresql+asyncpg", "postgresql"),
        ("postgres", "postgresql"),
        ("sqlite+aiosqlite", "sqlite"),
        ("mysql+pymysql", "mysql"),
        ("mariadb", "mariadb"),
        (postgresql.dialect(), "postgresql"),
        (sqlite.dialect(), "sqlite"),
        (mysql.dialect(), "mysql"),
    ],
)
def test_capabilities_of_a_scheme_or_a_dialect(target: object, name: str) -> None:
    assert capabilities(target).name == name


def test_a_connected_mariadb_dialect_refines_returning() -> None:
    dialect = mysql.dialect()
    dialect.is_mariadb = True
    dialect.insert_returning = dialect.delete_returning = True
    caps = capabilities(dialect)
    assert caps.label == "MariaDB" and caps.insert_returning and not caps.update_returning


def test_require_names_feature_backend_and_alternative() -> None:
    BACKENDS["postgresql"].require("sessions", "anything")  # PostgreSQL has everything
    with pytest.raises(dbnb.UnsupportedOnDialect) as info:
        BACKENDS["sqlite"].require("sessions", "use the server's own tools")
    assert isinstance(info.value, dbnb.DbnbError)
    assert (info.value.feature, info.value.backend) == ("sessions", "SQLite")
    assert "sessions needs PostgreSQL; this database is SQLite: use the server's own tools" in (
        str(info.value)
    )


@pytest.mark.parametrize("url", ["sqlite:///x.db", "mysql://u@h/db"])
@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("pooler", "transaction", "pooler='transaction'"),
        ("statement_timeout", 1000, "statement_timeout"),
        ("command_timeout", 5, "command_timeout"),
    ],
)
def test_postgresql_only_settings_are_refused_elsewhere(
    url: str, option: str, value: object, named: str
) -> None:
    with pytest.raises(dbnb.UnsupportedOnDialect, match=named):
        Settings.resolve(url, environ={}, **{option: value})


def test_postgresql_settings_with_defaults_are_not_applied_elsewhere() -> None:
    settings = Settings.resolve("sqlite:///x.db", environ={})
    assert settings.idle_in_transaction_timeout == 600_000  # the default, kept but unused
    assert settings.backend == "sqlite"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("sqlite://", "sqlite:///:memory:"),
        ("sqlite:///data/shop.db", "sqlite:///data/shop.db"),
        ("sqlite+aiosqlite:////tmp/a.db", "sqlite:////tmp/a.db"),
        ("mysql+pymysql://app:hunter2@db.example.com/shop", "mysql://app:***@db.example.com/shop"),
        ("mariadb://app@127.0.0.1:3307/shop", "mariadb://app@127.0.0.1:3307/shop"),
    ],
)
def test_urls_of_other_backends_are_driver_neutral_and_masked(url: str, shown: str) -> None:
    settings = Settings.resolve(url, environ={})
    assert repr(settings).startswith(f"Settings(url={shown},")
    assert "hunter2" not in repr(settings)


def test_a_mysql_url_needs_a_database() -> None:
    with pytest.raises(dbnb.ConfigError, match="names no database"):
        Settings.resolve("mysql://app@127.0.0.1", environ={})


def test_an_unreachable_mysql_server_fails_without_showing_its_password() -> None:
    db = dbnb.connect("mysql://app:Sup3r-s3cret@127.0.0.1:1/shop", connect_timeout=2)
    try:
        report = db.health()
        assert not report.ok and report.error == "ConnectionFailed"
        with pytest.raises(dbnb.ConnectionFailed) as info:
            db.execute("SELECT 1")
        shown = [repr(db), repr(db.settings), repr(report), str(info.value)]
        cause = info.value.__cause__
        while cause is not None:
            shown.append(str(cause))
            cause = cause.__cause__
        assert all("Sup3r-s3cret" not in text for text in shown)
    finally:
        db.close()


def test_a_missing_async_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "aiosqlite" else real(name, *a))
    db = dbnb.connect("sqlite:///:memory:")
    try:
        assert db.health().ok  # the sync side needs only the standard library
        with pytest.raises(dbnb.ConfigError, match=r"pip install 'dbnb\[sqlite\]'"):
            db.async_engine  # noqa: B018 (creating it is the point)
    finally:
        db.close()
