"""``%db persist df --table NAME [--append | --replace]`` through a real IPython shell."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import dbnb

URL_VARIABLE = "DBNB_PERSIST_TEST_URL"


@pytest.fixture(scope="module")
def ip(db: dbnb.Database, ipython: InteractiveShell) -> Iterator[InteractiveShell]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(URL_VARIABLE, db.url.render_as_string(hide_password=False))
        assert ipython.run_line_magic("db", f"connect env:{URL_VARIABLE}") is db
        yield ipython


def line(ip: InteractiveShell, text: str) -> Any:
    return ip.run_line_magic("db", text)


def test_persist_creates_appends_and_replaces(ip: InteractiveShell, db: dbnb.Database) -> None:
    ip.user_ns["sales"] = pd.DataFrame(
        {"id": [1, 2], "qty": pd.array([3, None], dtype="Int32"), "region": ["n", "s"]}
    )
    done = line(ip, "persist sales --table sales_2026 --primary-key id")
    assert done.action == "created" and done.rows == 2 and done.primary_key == ("id",)
    assert "created table sales_2026: 2 rows loaded, primary key (id)" in repr(done)
    assert "<table" in done._repr_html_() and "integer" in done._repr_html_()
    with pytest.raises(UsageError, match="already exists; pass if_exists='replace'"):
        line(ip, "persist sales --table sales_2026")
    ip.user_ns["more"] = pd.DataFrame({"id": [3], "qty": [1], "region": ["e"]})
    assert line(ip, "persist more --table sales_2026 --append").rows == 1
    assert db.execute("SELECT count(*) FROM sales_2026")[0][0] == 3
    assert line(ip, "persist more --table sales_2026 --replace").action == "replaced"
    assert db.execute("SELECT id FROM sales_2026") == [(3,)]


def test_persist_refuses_what_it_cannot_do_in_one_line(ip: InteractiveShell) -> None:
    ip.user_ns["not_a_frame"] = 42
    for text, says in [
        ("persist nowhere --table t", "nowhere is not defined"),
        ("persist not_a_frame --table t", "not_a_frame is a int"),
        ("persist sales --table t --append --replace", "--append or --replace, not both"),
        ("persist sales", "the following arguments are required: --table"),
    ]:
        with pytest.raises(UsageError) as caught:
            line(ip, text)
        assert says in str(caught.value) and "\n" not in str(caught.value)
