"""Bad input gets a dbnb error naming the argument or column and what is accepted.

Each case runs on both shells (psycopg and asyncpg): the error class and its wording must be
the same, and nothing may be written. Property tests (hypothesis) then throw generated filters
and frames at a real table: the outcome is a dbnb error with the table unchanged, or a correct
round trip.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import JSON, Boolean, DateTime, String, Text, insert
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import dbnb


class _Base(DeclarativeBase):
    pass


class Gadget(_Base):
    __tablename__ = "bad_input_gadgets"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    tags: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    meta: Mapped[Any] = mapped_column(JSONB, nullable=True)
    doc: Mapped[Any] = mapped_column(JSON, nullable=True)
    seen_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


@pytest.fixture(scope="module")
def gadgets(db: dbnb.Database) -> dbnb.Database:
    _Base.metadata.create_all(db.engine)
    db.execute("TRUNCATE bad_input_gadgets")
    dbnb.Repository(Gadget, db).create_many(
        [{"id": i, "name": f"g{i}", "is_active": i % 2 == 0, "tags": ["x"], "meta": {"i": i}}
         for i in range(1, 6)]
    )
    return db


def _snapshot(db: dbnb.Database) -> list[Any]:
    return [tuple(r) for r in db.execute("SELECT * FROM bad_input_gadgets ORDER BY id")]


Call = Callable[[Any], Any]
CASES: dict[str, tuple[type[dbnb.DbnbError], str, Call]] = {
    "order_by=5": (dbnb.FilterError, "order_by takes", lambda r: r.list(order_by=5)),
    "order_by='+-name'": (dbnb.FilterError, "at most one leading '-'",
                          lambda r: r.list(order_by="+-name")),
    "order_by='--name'": (dbnb.FilterError, "at most one leading",
                          lambda r: r.list(order_by="--name")),
    "name__contains=None": (dbnb.FilterError, "takes a string",
                            lambda r: r.list(name__contains=None)),
    "id='x'": (dbnb.FilterError, "Gadget.id takes an integer", lambda r: r.list(id="x")),
    "id__in=[1, 'a']": (dbnb.FilterError, "takes an integer", lambda r: r.list(id__in=[1, "a"])),
    "get_many(None)": (dbnb.FilterError, "get_many takes", lambda r: r.get_many(None)),
    "limit=True": (dbnb.PaginationError, "limit must be", lambda r: r.list(limit=True)),
    "offset=-1": (dbnb.PaginationError, "offset must be", lambda r: r.list(offset=-1)),
    "create(is_active='maybe')": (dbnb.InvalidValue, "Gadget.is_active (create) takes True",
                                  lambda r: r.create(id=90, name="n", is_active="maybe")),
    "create(tags='abc')": (dbnb.InvalidValue, "Gadget.tags (create) takes a list",
                           lambda r: r.create(id=91, name="n", tags="abc")),
    "create(meta={1, 2})": (dbnb.InvalidValue, "Gadget.meta (create) takes JSON",
                            lambda r: r.create(id=92, name="n", meta={1, 2})),
    "create(doc=object())": (dbnb.InvalidValue, "Gadget.doc (create) takes JSON",
                             lambda r: r.create(id=93, name="n", doc=object())),
    "create(name={'a': 1})": (dbnb.InvalidValue, "Gadget.name (create) takes a string",
                              lambda r: r.create(id=94, name={"a": 1})),
    "update(1, name=5)": (dbnb.InvalidValue, "Gadget.name (update) takes a string",
                          lambda r: r.update(1, name=5)),
    "create_many(tags='abc')": (dbnb.InvalidValue, "Gadget.tags (create_many) takes a list",
                                lambda r: r.create_many([{"id": 95, "name": "n", "tags": "ab"}])),
    "upsert(is_active=2)": (dbnb.InvalidValue, "Gadget.is_active (upsert) takes True",
                            lambda r: r.upsert({"id": 1, "name": "n", "is_active": 2}, on=["id"])),
    "from_frame([...])": (dbnb.FrameError, "or a pyarrow Table, got list",
                          lambda r: r.from_frame([{"id": 96, "name": "n"}])),
    "from_frame({...})": (dbnb.FrameError, "or a pyarrow Table, got dict",
                          lambda r: r.from_frame({"id": [96], "name": ["n"]})),
    "from_frame(None)": (dbnb.FrameError, "or a pyarrow Table, got NoneType",
                         lambda r: r.from_frame(None)),
    "from_frame(Series)": (dbnb.FrameError, "got Series (turn a Series",
                           lambda r: r.from_frame(pd.Series([1, 2], name="id"))),
    "from_frame(tags='abc')": (dbnb.FrameError, "column 'tags' (array): takes lists",
                               lambda r: r.from_frame(pd.DataFrame(
                                   {"id": [97], "name": ["n"], "tags": ["abc"]}))),
    "from_frame(meta={1,2})": (dbnb.FrameError, "column 'meta' (json)",
                               lambda r: r.from_frame(pd.DataFrame(
                                   {"id": [98], "name": ["n"], "meta": [{1, 2}]}))),
    "from_frame(name=dict)": (dbnb.FrameError, "column 'name' (text): takes strings",
                              lambda r: r.from_frame(pd.DataFrame(
                                  {"id": [99], "name": [{"a": 1}]}))),
    "from_frame(name=int)": (dbnb.FrameError, "column 'name' (text): takes strings",
                             lambda r: r.from_frame(pd.DataFrame({"id": [99], "name": [7]}))),
    "from_frame(tags={'a'})": (dbnb.FrameError, "column 'tags' (array): takes lists",
                               lambda r: r.from_frame(pd.DataFrame(
                                   {"id": [97], "name": ["n"], "tags": [{"a"}]}))),
    "from_frame(naive_as=123)": (dbnb.FrameError, "naive_as=123 is not a time zone",
                                 lambda r: r.from_frame(pd.DataFrame(
                                     {"id": [100], "name": ["n"],
                                      "seen_at": [dt.datetime(2024, 1, 1)]}), naive_as=123)),
}


async def _outcome(repo: Any, call: Call) -> BaseException:
    try:
        result = call(repo)
        if hasattr(result, "__await__"):
            await result
    except BaseException as exc:
        return exc
    pytest.fail("no error was raised")


@pytest.mark.parametrize("case", list(CASES))
async def test_bad_input_is_refused_the_same_way_on_both_drivers(
    gadgets: dbnb.Database, adb: dbnb.AsyncDatabase, case: str
) -> None:
    expected, words, call = CASES[case]
    before = _snapshot(gadgets)
    sync = await _outcome(dbnb.Repository(Gadget, gadgets), call)
    asynchronous = await _outcome(dbnb.AsyncRepository(Gadget, gadgets), call)
    assert isinstance(sync, expected), repr(sync)
    assert type(asynchronous) is type(sync) and str(asynchronous) == str(sync)
    assert words in str(sync), str(sync)
    assert _snapshot(gadgets) == before  # nothing was written


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"DB_POOL_TIMEOUT": "inf"}, "finite"),
        ({"DB_POOL_TIMEOUT": "1e309"}, "finite"),
        ({"DB_POOL_TIMEOUT": "nan"}, "finite"),
        ({"DB_COMMAND_TIMEOUT": "-1"}, "finite"),
        ({"DB_STATEMENT_TIMEOUT": "99999999999"}, "2,147,483,647"),
        ({"DB_IDLE_IN_TRANSACTION_TIMEOUT": "99999999999"}, "2,147,483,647"),
        ({"DB_POOLER": "sometimes"}, "transaction"),
    ],
)
def test_timeouts_must_be_finite_and_within_postgresqls_range(
    env: dict[str, str], needle: str
) -> None:
    name = next(iter(env))
    with pytest.raises(dbnb.ConfigError, match=name) as info:
        dbnb.Settings.resolve(environ=env)
    assert needle in str(info.value)
    with pytest.raises(dbnb.ConfigError, match="statement_timeout"):
        dbnb.Settings.resolve(environ={}, statement_timeout=2**31)
    with pytest.raises(dbnb.ConfigError, match="pool_timeout"):
        dbnb.Settings.resolve(environ={}, pool_timeout=float("inf"))


async def test_statement_errors_are_translated(
    gadgets: dbnb.Database, adb: dbnb.AsyncDatabase
) -> None:
    """Past the repositories (raw statements), SQLAlchemy's StatementError is a dbnb error."""
    bad = insert(Gadget).values(id=200, name="n", is_active="maybe")
    with pytest.raises(dbnb.InvalidValue, match="Not a boolean value"), gadgets.session() as s:
        s.execute(bad)
    with pytest.raises(dbnb.InvalidValue, match="Not a boolean value"):
        async with adb.session() as s:
            await s.execute(bad)
    assert not gadgets.execute("SELECT 1 FROM bad_input_gadgets WHERE id = 200")


# -- property tests ------------------------------------------------------------------------------

_NAMES = st.sampled_from(["id", "name", "is_active", "nope"])
_OPS = st.sampled_from(
    ["", "__eq", "__ne", "__lt", "__gte", "__in", "__not_in", "__isnull", "__between",
     "__contains", "__startswith", "__bogus"]
)
_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 8), st.text("abg0123", max_size=3),
    st.floats(allow_nan=True), st.lists(st.integers(0, 6), max_size=3),
    st.tuples(st.integers(0, 6), st.integers(0, 6)), st.sets(st.integers(0, 3), max_size=2),
    st.dictionaries(st.text("ab", max_size=1), st.integers(), max_size=1),
)


def _expected(rows: list[dict[str, Any]], name: str, op: str, value: Any) -> list[int]:
    """The ids a correct filter returns, evaluated in Python with SQL's NULL rules."""

    def keep(row: dict[str, Any]) -> bool:
        v = row[name]
        if op == "isnull":
            return (v is None) == value
        if v is None:
            return op == "eq" and value is None
        match op:
            case "eq":
                return value is not None and v == value
            case "ne":
                return value is None or v != value
            case "lt":
                return bool(v < value)
            case "gte":
                return bool(v >= value)
            case "in":
                return v in list(value)
            case "not_in":
                return v not in list(value)
            case "between":
                return bool(value[0] <= v <= value[1])
            case "contains":
                return value in v
            case "startswith":
                return bool(v.startswith(value))
        raise AssertionError(op)

    return sorted(r["id"] for r in rows if keep(r))


_FITTING = {
    "id": st.one_of(st.integers(-1, 7), st.lists(st.integers(0, 6), max_size=3),
                    st.tuples(st.integers(0, 6), st.integers(0, 6))),
    "name": st.one_of(st.sampled_from(["g1", "g3", "g", "1", "x"]),
                      st.lists(st.sampled_from(["g1", "g2", "q"]), max_size=2),
                      st.tuples(st.sampled_from(["g1", "g4"]), st.sampled_from(["g2", "g5"]))),
    "is_active": st.one_of(st.booleans(), st.lists(st.booleans(), max_size=2)),
    "nope": st.integers(),
}


@st.composite
def _lookup(draw: st.DrawFn) -> tuple[str, str, Any]:
    name, op = draw(_NAMES), draw(_OPS)
    # Mostly values that fit the column, often not: both paths must hold.
    value = draw(st.one_of(_FITTING[name], _FITTING[name], st.none(), _VALUES))
    return name, op, value


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lookup=_lookup())
def test_filters_give_a_dbnb_error_or_the_right_rows(
    gadgets: dbnb.Database, lookup: tuple[str, str, Any]
) -> None:
    name, op, value = lookup
    before = _snapshot(gadgets)
    rows = [dict(r._mapping) for r in gadgets.execute("SELECT id, name, is_active FROM "
                                                      "bad_input_gadgets")]
    try:
        found = dbnb.Repository(Gadget, gadgets).list(**{f"{name}{op}": value})
    except dbnb.DbnbError as exc:
        event(f"refused: {type(exc).__name__}")
        assert _snapshot(gadgets) == before
        return
    event("rows compared")
    assert name != "nope" and op != "__bogus"
    assert sorted(g.id for g in found) == _expected(rows, name, op.lstrip("_") or "eq", value)


_CELLS = st.one_of(
    st.none(), st.integers(-5, 5), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4), st.booleans(), st.lists(st.text("ab", max_size=2), max_size=2),
    st.sets(st.integers(0, 3), max_size=2), st.dictionaries(st.text("k", max_size=1),
                                                            st.integers(), max_size=1),
)
_FITTING_CELLS = {
    "name": st.text(max_size=6),
    "is_active": st.one_of(st.none(), st.booleans()),
    "tags": st.one_of(st.none(), st.lists(st.one_of(st.none(), st.text(max_size=3)),
                                          max_size=3)),
    "meta": st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.text(max_size=3),
                  st.floats(allow_nan=False, allow_infinity=False)),
        lambda inner: st.one_of(st.lists(inner, max_size=2),
                                st.dictionaries(st.text(max_size=2), inner, max_size=2)),
        max_leaves=4,
    ),
    "nope": st.integers(),
}
_COLUMNS = st.lists(st.sampled_from(["name", "is_active", "tags", "meta"] * 3 + ["nope"]),
                    min_size=1, max_size=3, unique=True)


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(columns=_COLUMNS, cells=st.data())
def test_from_frame_gives_a_dbnb_error_or_a_round_trip(
    gadgets: dbnb.Database, columns: list[str], cells: st.DataObject
) -> None:
    before = _snapshot(gadgets)
    n = 3
    data: dict[str, list[Any]] = {"id": list(range(1000, 1000 + n))}
    for column in columns:
        good = _FITTING_CELLS[column]
        data[column] = [cells.draw(st.one_of(good, good, good, _CELLS)) for _ in range(n)]
    if "name" not in data:
        data["name"] = ["n"] * n
    frame = pd.DataFrame(data)
    try:
        dbnb.Repository(Gadget, gadgets).from_frame(frame)
    except dbnb.DbnbError as exc:
        event(f"refused: {type(exc).__name__}: {str(exc)[:40]}")
        assert _snapshot(gadgets) == before
        return
    event("round trip")
    try:
        back = {r.id: r for r in gadgets.execute(
            "SELECT * FROM bad_input_gadgets WHERE id >= 1000 ORDER BY id")}
        assert sorted(back) == data["id"]
        for i, key in enumerate(data["id"]):
            for column in columns:
                sent, got = data[column][i], getattr(back[key], column)
                if sent is None or (isinstance(sent, float) and sent != sent):
                    assert got is None
                elif isinstance(sent, float) and not isinstance(got, bool):
                    # JSON numbers are decimals: the shortest repr reads back as the same float.
                    assert float(got) == sent, (column, sent, got)
                else:
                    assert got == sent, (column, sent, got)
    finally:
        gadgets.execute("DELETE FROM bad_input_gadgets WHERE id >= 1000")
    assert _snapshot(gadgets) == before


# -- SQL text: parameters, the magic, migration config ---------------------------------------------


async def test_bad_parameters_of_sql_text_on_both_drivers(
    gadgets: dbnb.Database, adb: dbnb.AsyncDatabase
) -> None:
    cases = [
        ("SELECT :fn AS x", {"fn": print}, ":fn is a function"),
        ("SELECT 1 AS x", {"fn": 1}, "fn given but the SQL has no such :name"),
        ("SELECT ':name' AS x", {"name": "bound"}, "name given but the SQL has no such :name"),
    ]
    for sql, params, words in cases:
        with pytest.raises(dbnb.DbnbError) as sync:
            gadgets.frame(sql, **params)
        with pytest.raises(dbnb.DbnbError) as asynchronous:
            await adb.frame(sql, **params)
        assert words in str(sync.value)
        assert type(sync.value) is type(asynchronous.value)
        assert str(sync.value) == str(asynchronous.value)
    # Inside a string literal :name is text, never bound.
    assert gadgets.frame("SELECT ':name' AS x")["x"].tolist() == [":name"]


def test_bad_input_in_the_magic_is_one_usage_line(
    gadgets: dbnb.Database, ipython: Any, tmp_path: Any
) -> None:
    from IPython.core.error import UsageError

    magics = ipython.magics_manager.registry["DbMagics"]
    previous, magics.database = magics.database, gadgets
    ipython.user_ns["fn"] = print
    ipython.user_ns.pop("self", None)  # another test's cell may have defined it
    not_ini = tmp_path / "alembic.ini"
    not_ini.write_text("not an ini {{{")
    try:
        for call, words in (
            (lambda: ipython.run_cell_magic("db", "", "SELECT :fn AS x"), ":fn is a function"),
            (lambda: ipython.run_cell_magic("db", "", "SELECT :self AS x"), ":self is not defined"),
            (lambda: ipython.run_line_magic("db", f"migrate --config {not_ini}"),
             "is not an alembic.ini"),
        ):
            with pytest.raises(UsageError, match=words) as info:
                call()
            assert "\n" not in str(info.value).strip()
    finally:
        magics.database = previous  # the shell is shared with the magic's own tests
        ipython.user_ns.pop("fn", None)
