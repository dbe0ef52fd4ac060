"""``%%db --polars`` / ``--arrow`` / ``--pandas`` and ``%db config frame=...`` in a real IPython."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import dbnb

URL_VARIABLE = "DBNB_FRAMES_MAGIC_TEST_URL"
SQL = "SELECT 12.50::numeric(6, 2) AS price, :n::int AS n, now() AS at"


@pytest.fixture(scope="module")
def ip(db: dbnb.Database, ipython: InteractiveShell) -> Iterator[InteractiveShell]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(URL_VARIABLE, db.url.render_as_string(hide_password=False))
        assert ipython.run_line_magic("db", f"connect env:{URL_VARIABLE}") is db
        ipython.user_ns["n"] = 7
        yield ipython
        ipython.run_line_magic("db", "config frame=pandas")


def cell(ip: InteractiveShell, line: str, sql: str = SQL) -> Any:
    return ip.run_cell_magic("db", line, sql)


def test_cell_flags_choose_the_frame(ip: InteractiveShell) -> None:
    frame = cell(ip, "--polars -o recent")
    assert isinstance(frame, pl.DataFrame) and ip.user_ns["recent"] is frame
    assert frame.schema["price"] == pl.Decimal(6, 2) and frame["n"].to_list() == [7]
    assert frame.schema["at"] == pl.Datetime("us", "UTC")
    table = cell(ip, "--arrow")
    assert isinstance(table, pa.Table)
    assert table.to_pylist()[0]["price"] == Decimal("12.50")
    assert isinstance(cell(ip, "--pandas"), pd.DataFrame)
    with pytest.raises(UsageError, match="choose one of --pandas, --polars and --arrow"):
        cell(ip, "--polars --arrow")


def test_config_sets_the_sessions_default(ip: InteractiveShell) -> None:
    shown = ip.run_line_magic("db", "config")
    assert "frame = pandas  (pandas | arrow | polars)" in repr(shown)
    assert "<table" in shown._repr_html_()
    assert "frame = polars" in repr(ip.run_line_magic("db", "config frame=polars"))
    assert isinstance(cell(ip, ""), pl.DataFrame)
    assert isinstance(ip.run_line_magic("db", "SELECT 1 AS one"), pl.DataFrame)
    assert isinstance(cell(ip, "--pandas"), pd.DataFrame)  # the cell's own flag wins
    assert isinstance(cell(ip, "", "SELECT 1 AS x; SELECT 2 AS y"), pl.DataFrame)
    ip.run_line_magic("db", "config frame=pandas")
    assert isinstance(cell(ip, ""), pd.DataFrame)


def test_config_refuses_in_one_line(ip: InteractiveShell) -> None:
    for text, says in [
        ("config frame=excel", "takes pandas | arrow | polars, not 'excel'"),
        ("config colour=red", "no setting 'colour'"),
    ]:
        with pytest.raises(UsageError) as caught:
            ip.run_line_magic("db", text)
        assert says in str(caught.value) and "\n" not in str(caught.value)


def test_without_polars_the_magic_names_the_extra(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "polars", None)
    with pytest.raises(UsageError, match=r"pip install 'dbnb\[polars\]'"):
        cell(ip, "--polars")
    with pytest.raises(UsageError, match=r"pip install 'dbnb\[polars\]'"):
        ip.run_line_magic("db", "config frame=polars")


def test_persist_takes_a_polars_frame(ip: InteractiveShell, db: dbnb.Database) -> None:
    ip.user_ns["pl_sales"] = pl.DataFrame({"id": [1, 2], "amount": [Decimal("1.50"), None]})
    done = ip.run_line_magic("db", "persist pl_sales --table pl_sales --primary-key id")
    assert done.rows == 2 and ("amount", "numeric(38, 2)", True) in done.columns
    assert db.execute("SELECT amount FROM pl_sales ORDER BY id") == [(Decimal("1.50"),), (None,)]
