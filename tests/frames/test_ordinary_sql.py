"""SQL as people write it, through db.frame / db.execute on both drivers.

Comments, trailing semicolons, casts, JSON literals, dollar quotes, data-modifying CTEs and
DML with RETURNING describe without wrapping and read through the typed COPY reader; errors
point at the SQL as written.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

import dbnb

pytestmark = pytest.mark.parametrize("driver", ["psycopg", "asyncpg"])


async def frame(db: dbnb.Database, driver: str, sql: str, **params: Any) -> pd.DataFrame:
    if driver == "asyncpg":
        return await db.asyncio.frame(sql, **params)
    return db.frame(sql, **params)


async def execute(db: dbnb.Database, driver: str, sql: str, **params: Any) -> Any:
    if driver == "asyncpg":
        return await db.asyncio.execute(sql, **params)
    return db.execute(sql, **params)


async def test_comments_semicolons_casts_and_literals(
    seeded: dbnb.Database, adb: dbnb.AsyncDatabase, driver: str
) -> None:
    df = await frame(seeded, driver, """
        -- the two cheapest
        SELECT sku, '{"a":1}'::jsonb AS j, ':n' AS colon, $$a;b$$ AS dollar, '$1' AS dollar_one,
               :limit::int AS asked, price::text AS price_text  /* : ; */
        FROM products ORDER BY price, sku LIMIT :limit;  -- done
    """, limit=2)
    assert len(df) == 2 and df["j"].tolist() == [{"a": 1}, {"a": 1}]
    assert df.loc[0, "colon"] == ":n" and df.loc[0, "dollar"] == "a;b"
    assert df.loc[0, "dollar_one"] == "$1" and df.loc[0, "asked"] == 2
    assert str(df["asked"].dtype) == "Int32"


async def test_data_modifying_cte_and_returning_keep_their_types(
    seeded: dbnb.Database, adb: dbnb.AsyncDatabase, driver: str
) -> None:
    sku = "KB-001"
    cte = await frame(seeded, driver, "WITH u AS (UPDATE products SET stock = stock + 0 "
                      "WHERE sku = :sku RETURNING id, stock) SELECT stock FROM u;", sku=sku)
    assert str(cte["stock"].dtype) == "Int32" and len(cte) == 1
    back = await frame(seeded, driver, "UPDATE products SET stock = stock + 0 WHERE sku = :sku "
                       "RETURNING stock, ARRAY[stock, 1] AS pair, price", sku=sku)
    assert str(back["stock"].dtype) == "Int32" and back.loc[0, "pair"][1] == 1
    assert str(back["price"].dtype) == "float64"
    none = await frame(seeded, driver, "UPDATE products SET stock = stock WHERE false "
                       "RETURNING stock")
    assert len(none) == 0 and str(none["stock"].dtype) == "Int32"


async def test_a_read_that_modifies_is_inside_the_sessions_transaction(
    seeded: dbnb.Database, adb: dbnb.AsyncDatabase, driver: str
) -> None:
    """The first statement of a session read through COPY runs in its transaction: rollback."""
    sql = "UPDATE products SET stock = stock + 1000 WHERE sku = 'KB-001' RETURNING stock"
    before = seeded.execute("SELECT stock FROM products WHERE sku = 'KB-001'")[0].stock
    if driver == "asyncpg":
        async with seeded.asyncio.session() as s:
            moved = await dbnb.aread_frame(s, sql)
            await s.rollback()
        async with seeded.sandbox():
            await seeded.asyncio.frame(sql)
    else:
        with seeded.session() as s:
            moved = dbnb.read_frame(s, sql)
            s.rollback()
        with seeded.sandbox():
            seeded.frame(sql)
    assert moved["stock"].tolist() == [before + 1000]
    assert seeded.execute("SELECT stock FROM products WHERE sku = 'KB-001'")[0].stock == before


async def test_a_statement_without_rows_is_refused_before_it_runs(
    seeded: dbnb.Database, adb: dbnb.AsyncDatabase, driver: str
) -> None:
    before = seeded.execute("SELECT count(*) AS n FROM order_items")[0].n
    with pytest.raises(dbnb.FrameError, match="returns none; nothing ran"):
        await frame(seeded, driver, "DELETE FROM order_items")
    assert seeded.execute("SELECT count(*) AS n FROM order_items")[0].n == before
    shown = await frame(seeded, driver, "SHOW TimeZone")  # rows COPY cannot read: fetched
    assert list(shown.columns) == ["TimeZone"]


async def test_syntax_and_column_errors_point_at_the_sql_as_written(
    seeded: dbnb.Database, adb: dbnb.AsyncDatabase, driver: str
) -> None:
    with pytest.raises(dbnb.QueryError) as syntax:
        await frame(seeded, driver, "SELEC 1")
    assert syntax.value.sqlstate == "42601" and "not a query" not in str(syntax.value)
    with pytest.raises(dbnb.QueryError) as column:
        await frame(seeded, driver, "SELECT email\nFROM users WHERE age >= :min_age AND agee > 1",
                    min_age=30)
    lines = str(column.value).splitlines()
    assert lines[1] == "LINE 2: FROM users WHERE age >= :min_age AND agee > 1"
    assert lines[2].index("^") == lines[1].index("agee")
    assert column.value.column == "agee" and "30" not in str(column.value)


async def test_parameters_named_like_anything_and_bad_values(
    seeded: dbnb.Database, adb: dbnb.AsyncDatabase, driver: str
) -> None:
    df = await frame(seeded, driver, "SELECT :self AS s, :fn AS f, :user AS u", self=1, fn=2,
                     user="x")
    assert df.iloc[0].tolist() == [1, 2, "x"]
    with pytest.raises(dbnb.ParameterError, match=":fn is a function"):
        await frame(seeded, driver, "SELECT :fn", fn=print)
    with pytest.raises(dbnb.ParameterError, match="limit given but the SQL has no such :name"):
        await frame(seeded, driver, "SELECT 1", limit=3)
    with pytest.raises(dbnb.ParameterError, match=r":x has no value; pass x=\.\.\."):
        await execute(seeded, driver, "SELECT :x")


async def test_a_script_runs_in_one_transaction_and_reports_each_statement(
    seeded: dbnb.Database, adb: dbnb.AsyncDatabase, driver: str
) -> None:
    table = f"victim_{driver}"
    rows = await execute(seeded, driver, f"""
        CREATE TABLE {table} (x int);
        INSERT INTO {table} VALUES (1), (2);
        DELETE FROM {table} WHERE false;
        SELECT count(*) AS n FROM {table};
    """)
    assert rows[0].n == 2
    assert [(s.keyword, s.rows, s.returned) for s in rows.steps] == [
        ("CREATE", -1, False), ("INSERT", 2, False), ("DELETE", 0, False), ("SELECT", 1, True)
    ]
    with pytest.raises(dbnb.QueryError) as failed:
        await execute(seeded, driver,
                      f"INSERT INTO {table} VALUES (3);\nSELECT agee FROM {table}")
    assert f"LINE 2: SELECT agee FROM {table}" in str(failed.value)
    assert seeded.execute(f"SELECT count(*) AS n FROM {table}")[0].n == 2  # all or nothing
    last = await frame(seeded, driver, f"INSERT INTO {table} VALUES (5); "
                       f"SELECT x FROM {table} ORDER BY x")
    assert last["x"].tolist() == [1, 2, 5] and str(last["x"].dtype) == "Int32"
    with pytest.raises(dbnb.FrameError):
        await frame(seeded, driver, f"INSERT INTO {table} VALUES (6); DELETE FROM {table}")
    assert seeded.execute(f"SELECT count(*) AS n FROM {table}")[0].n == 3  # rolled back
