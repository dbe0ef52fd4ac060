"""%db, %%db and the CLI on every backend: SQL as written, :name binding, catalog, snapshots."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import dbnb
from dbnb.cli import main

#: Run on each backend (tests/conftest.py); a difference shows as a failing case.
BACKENDS = ("postgresql", "sqlite", "mariadb")
URL_VARIABLE = "DBNB_MAGIC_BACKEND_URL"


@pytest.fixture(scope="module")
def ip(seeded: dbnb.Database, ipython: InteractiveShell) -> Iterator[InteractiveShell]:
    """The test shell connected (through an env variable: no URL in a cell) to the module's db."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(URL_VARIABLE, seeded.url.render_as_string(hide_password=False))
        ipython.run_line_magic("db", f"connect env:{URL_VARIABLE}")
        yield ipython


def line(ip: InteractiveShell, text: str) -> Any:
    return ip.run_line_magic("db", text)


def test_a_cell_of_sql_with_bound_names(ip: InteractiveShell) -> None:
    ip.user_ns["threshold"] = 50
    frame = ip.run_cell_magic(
        "db", "-o low",
        "-- products that run out first\nSELECT sku, stock FROM products\n"
        "WHERE stock < :threshold ORDER BY sku;",
    )
    assert isinstance(frame, pd.DataFrame)
    # SQL you write runs as written: the soft-deleted webcam is there too.
    assert frame["sku"].tolist() == ["DK-006", "HD-004", "KB-001", "LM-007", "MN-003", "WC-008"]
    assert ip.user_ns["low"] is frame


def test_a_script_runs_in_one_transaction_and_a_sandbox_rolls_back(ip: InteractiveShell) -> None:
    script = (
        "UPDATE products SET stock = stock + 1 WHERE sku = 'KB-001';\n"
        "SELECT stock FROM products WHERE sku = 'KB-001'"
    )
    before = line(ip, "SELECT stock FROM products WHERE sku = 'KB-001'")["stock"].iloc[0]
    inside = ip.run_cell_magic("db", "--sandbox", script)
    assert inside["stock"].iloc[0] == before + 1
    after = line(ip, "SELECT stock FROM products WHERE sku = 'KB-001'")["stock"].iloc[0]
    assert after == before


def test_tables_describe_health_pool_info(ip: InteractiveShell) -> None:
    listed = line(ip, "tables")
    assert {"users", "products", "orders", "order_items"} <= set(listed.names)
    described = line(ip, "describe users")
    assert [c[0] for c in described.columns][:3] == ["id", "email", "name"]
    assert any("email" in d for d in described.definitions("index").values()) or any(
        "email" in d for d in described.definitions("constraint").values()
    )
    assert line(ip, "health").ok
    assert line(ip, "pool").pools[0].started
    assert line(ip, "info").database


def test_errors_are_one_usage_line(ip: InteractiveShell, db_backend: str) -> None:
    with pytest.raises(UsageError) as missing:
        line(ip, "describe no_such_table")
    assert str(missing.value).startswith("NotFound: no table named 'no_such_table'")
    with pytest.raises(UsageError) as bad:
        line(ip, "SELECT * FROM no_such_table")
    assert str(bad.value).startswith("QueryError: ")
    if db_backend != "postgresql":
        with pytest.raises(UsageError) as unsupported:
            line(ip, "sessions")
        assert str(unsupported.value).startswith(
            "UnsupportedOnDialect: sessions needs PostgreSQL; this database is "
        )


def test_the_cli_speaks_to_the_same_database(
    seeded: dbnb.Database, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = seeded.url.render_as_string(hide_password=False)
    assert main(["--url", url, "health"]) == 0
    out = capsys.readouterr().out
    label = seeded.capabilities.label
    assert out.startswith("healthy: ") and f"({label} " in out
    assert main(["--url", url, "tables"]) == 0
    assert "products" in capsys.readouterr().out


def test_a_sandbox_across_cells_rolls_back(ip: InteractiveShell) -> None:
    line(ip, "sandbox")
    try:
        line(ip, "UPDATE products SET stock = 999 WHERE sku = 'LM-007'")
        assert line(ip, "SELECT stock FROM products WHERE sku = 'LM-007'")["stock"][0] == 999
    finally:
        line(ip, "sandbox --end")
    assert line(ip, "SELECT stock FROM products WHERE sku = 'LM-007'")["stock"][0] == 15
