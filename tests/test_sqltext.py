"""Splitting and :name parameters, read by PostgreSQL's own lexer (no server needed)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import postgresql

import dbnb
from dbnb.sqltext import split

SCRIPT = """-- a leading comment; with a semicolon
SELECT name, age FROM customers        -- trailing comment ;
WHERE age >= :min_age AND tags = '{"a":1}'::jsonb;
;  /* only a comment ; :x */ ;
CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; -- :no $body$ LANGUAGE sql;
WITH u AS (UPDATE t SET x = 1 RETURNING id) SELECT * FROM u
"""


def test_statements_are_split_where_the_server_would() -> None:
    found = split(SCRIPT)
    assert [s.keyword for s in found] == ["SELECT", "CREATE", "WITH"]
    assert found[0].text == (
        "SELECT name, age FROM customers        -- trailing comment ;\n"
        "WHERE age >= :min_age AND tags = '{\"a\":1}'::jsonb"
    )
    assert found[1].text.endswith("LANGUAGE sql") and found[1].names == ()
    assert found[2].text.startswith("WITH u AS (UPDATE") and found[2].copyable
    assert not found[1].copyable
    assert split("  -- nothing\n /* at all */ ;") == []


@pytest.mark.parametrize(
    ("sql", "names"),
    [
        ("SELECT :a, :b, :a", ("a", "b")),
        ("SELECT ':n', \"col:x\", $$ :x $$, $t$:y$t$, E'\\':z' /* :c */ -- :d", ()),
        ("SELECT :x::int, x::text, CAST(:y AS int)", ("x", "y")),
        ("SELECT a[1:n], a[lo:hi], a[lo\\:hi]", ()),
        ("SELECT :user, :from, :select, :self, :fn", ("user", "from", "select", "self", "fn")),
        ("SELECT f(a := 1), :naïve", ("naïve",)),
        ('SELECT :"quoted", : spaced', ()),
    ],
)
def test_parameters_only_where_a_value_can_stand(sql: str, names: tuple[str, ...]) -> None:
    (statement,) = split(sql)
    assert statement.names == names


def test_bindable_text_keeps_literals_casts_and_escapes() -> None:
    (statement,) = split("SELECT '{\"a\":1}'::jsonb, :x::int, a[lo\\:hi], 'a\\:b', ':y'")
    compiled = text(statement.bindable()).compile(dialect=postgresql.psycopg.dialect())
    assert list(compiled.params) == ["x"]
    assert str(compiled) == "SELECT '{\"a\":1}'::jsonb, %(x)s::int, a[lo:hi], 'a\\:b', ':y'"


def test_unterminated_text_is_a_syntax_error_with_its_position() -> None:
    with pytest.raises(dbnb.QueryError) as info:
        split("SELECT 1;\nSELECT 'oops")
    assert info.value.sqlstate == "42601" and info.value.position == 18
    assert str(info.value).splitlines() == [
        "unterminated quoted string at or near \"'oops\"",
        "LINE 2: SELECT 'oops",
        "               ^",
    ]


def test_values_reject_functions_modules_and_missing_names() -> None:
    import os

    (statement,) = split("SELECT :fn, :m")
    with pytest.raises(dbnb.ParameterError, match=r":fn is a function, not a value"):
        statement.values({"fn": print, "m": 1}, where="pass {name}=...")
    with pytest.raises(dbnb.ParameterError, match=r":m is a module"):
        statement.values({"fn": 1, "m": os}, where="pass {name}=...")
    with pytest.raises(dbnb.ParameterError, match=r":m has no value; pass m=\.\.\."):
        statement.values({"fn": 1}, where="pass {name}=...")
