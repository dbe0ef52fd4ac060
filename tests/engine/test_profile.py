"""Profiles, value counts and histograms computed by the server, on both drivers."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pandas as pd
import pytest

import dbnb

SETUP = """
DROP TABLE IF EXISTS events;
CREATE TABLE events (
    id bigint PRIMARY KEY, kind text, amount numeric(10, 2), ok boolean,
    at timestamptz, doc json, tags text[], "Odd Name" int
);
INSERT INTO events
SELECT i, CASE WHEN i % 10 = 0 THEN NULL WHEN i % 3 = 0 THEN 'view' ELSE 'click' END,
       i * 1.5, i % 4 = 0, timestamptz '2026-01-01 00:00+00' + i * interval '1 hour',
       json_build_object('n', i % 2), ARRAY['t' || (i % 2)], i % 5
FROM generate_series(1, 100) AS i;
"""


@pytest.fixture(scope="module")
def events(db: dbnb.Database) -> dbnb.Database:
    db.execute(SETUP)
    return db


@pytest.fixture(params=["sync", "async"])
def on(request: pytest.FixtureRequest, events: dbnb.Database, adb: dbnb.AsyncDatabase) -> Any:
    """Call a Database method by name on the chosen shell, awaiting the async one."""

    async def call(name: str, *args: Any, **kwargs: Any) -> Any:
        if request.param == "sync":
            return getattr(events, name)(*args, **kwargs)
        return await getattr(adb, name)(*args, **kwargs)

    return call


async def test_profile_matches_what_pandas_computes_on_the_whole_table(
    events: dbnb.Database, on: Any
) -> None:
    report = await on("profile", "events")
    whole = events.frame("SELECT * FROM events", decimal=False)
    assert report.rows == 100 and [c.name for c in report.columns] == list(whole.columns)
    kind = report["kind"]
    assert (kind.count, kind.nulls, kind.distinct) == (90, 10, 2)
    expected = whole["kind"].value_counts()
    assert kind.top == tuple(expected.items()) == (("click", 60), ("view", 30))
    assert (kind.min, kind.max) == ("click", "view")
    amount = report["amount"]
    assert amount.min == whole["amount"].min() and amount.max == whole["amount"].max()
    assert math.isclose(amount.mean or 0, whole["amount"].mean())
    assert math.isclose(amount.std or 0, whole["amount"].std())  # sample std, as pandas
    assert amount.distinct == 100 and amount.top[0][1] == 1
    ok = report["ok"]
    assert (ok.min, ok.max, ok.mean) == (False, True, 0.25)
    at = report["at"]
    assert at.min == dt.datetime(2026, 1, 1, 1, tzinfo=dt.UTC) and at.mean is None
    assert report["doc"].distinct == 2 and report["doc"].min is None  # json: text groups
    assert report["tags"].top == (("{t0}", 50), ("{t1}", 50))
    assert report["Odd Name"].distinct == 5
    frame = report.frame
    assert frame.loc["kind", "distinct"] == 2 and frame.loc["amount", "nulls"] == 0
    text = repr(report)
    assert "events: 100 rows, 8 columns" in text and "10 (10.0 %)" in text
    assert "click (60), view (30)" in text and "<table" in report._repr_html_()


async def test_profile_some_columns_and_bad_names(on: Any) -> None:
    report = await on("profile", "events", columns="kind, ok", top=1)
    assert [c.name for c in report.columns] == ["kind", "ok"]
    assert report["kind"].top == (("click", 60),)
    assert [c.name for c in (await on("profile", "events", columns=["id"])).columns] == ["id"]
    with pytest.raises(dbnb.FilterError, match="no column 'nope'; its columns are: id, kind"):
        await on("profile", "events", columns=["nope"])
    with pytest.raises(dbnb.NotFound, match="no table named 'nowhere'"):
        await on("profile", "nowhere")
    with pytest.raises(dbnb.NotFound, match="no table named"):
        await on("profile", "events; DROP TABLE events")


async def test_value_counts_and_histogram_are_frames_for_plot(on: Any) -> None:
    counts = await on("value_counts", "events", "kind")
    assert counts.index.name == "kind" and counts["count"].to_dict() == {"click": 60, "view": 30}
    hist = await on("histogram", "events", "amount", bins=4)
    assert isinstance(hist.index, pd.IntervalIndex) and hist["count"].tolist() == [25, 25, 25, 25]
    assert hist.index[0].left == 1.5 and hist.index[-1].right == 150.0
    times = await on("histogram", "events", "at", bins=2)
    assert times["count"].sum() == 100 and str(times.index.dtype).startswith("interval[datetime64")
    assert times.index[0].left == pd.Timestamp("2026-01-01 01:00", tz="UTC")
    with pytest.raises(dbnb.FilterError, match="histogram needs numbers, dates or timestamps"):
        await on("histogram", "events", "kind")


def test_profile_command_in_the_magic(events: dbnb.Database, ipython: Any) -> None:
    magics = ipython.magics_manager.registry["DbMagics"]
    before = magics.database
    magics.database = events
    try:
        report = ipython.run_line_magic("db", "profile events --columns kind,amount --top 1")
        assert [c.name for c in report.columns] == ["kind", "amount"]
    finally:
        magics.database = before
