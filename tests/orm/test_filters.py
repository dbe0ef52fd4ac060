"""The lookup grammar and order_by parsing: SQL shape, bound parameters, clear errors (no I/O)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import ColumnElement, select
from sqlalchemy.dialects import postgresql

from dbnb import FilterError
from dbnb.examples.shop import Product, User
from dbnb.orm.filters import OPERATORS, check_values, order_by_clauses, where_clauses

DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def sql(clauses: list[ColumnElement[Any]]) -> str:
    rendered = str(select(User.id).where(*clauses).compile(dialect=DIALECT))
    return re.sub(r"::[A-Z]+", "", rendered)  # the casts psycopg's dialect adds to parameters


def params(clauses: list[ColumnElement[Any]]) -> dict[str, Any]:
    return dict(select(User.id).where(*clauses).compile(dialect=DIALECT).params)


@pytest.mark.parametrize(
    ("lookup", "value", "fragment"),
    [
        ("age", 30, "users.age = %(age_1)s"),
        ("age__eq", None, "users.age IS NULL"),
        ("age__ne", 30, "users.age != %(age_1)s"),
        ("age__ne", None, "users.age IS NOT NULL"),
        ("age__lt", 30, "users.age < %(age_1)s"),
        ("age__lte", 30, "users.age <= %(age_1)s"),
        ("age__gt", 30, "users.age > %(age_1)s"),
        ("age__gte", 30, "users.age >= %(age_1)s"),
        ("age__in", [1, 2], "users.age IN (__[POSTCOMPILE_age_1])"),
        ("age__not_in", (1, 2), "(users.age NOT IN (__[POSTCOMPILE_age_1]))"),
        ("name__like", "A%", "users.name LIKE %(name_1)s"),
        ("name__ilike", "a%", "users.name ILIKE %(name_1)s"),
        ("name__contains", "n", "users.name LIKE '%%' || %(name_1)s || '%%' ESCAPE '/'"),
        ("name__startswith", "A", "users.name LIKE %(name_1)s || '%%' ESCAPE '/'"),
        ("name__endswith", "a", "users.name LIKE '%%' || %(name_1)s ESCAPE '/'"),
        ("age__isnull", True, "users.age IS NULL"),
        ("age__isnull", False, "users.age IS NOT NULL"),
        ("age__between", (18, 65), "users.age BETWEEN %(age_1)s AND %(age_2)s"),
    ],
)
def test_every_operator_builds_its_sql(lookup: str, value: Any, fragment: str) -> None:
    assert fragment in sql(where_clauses(User, [], {lookup: value}))


def test_operator_table_is_the_documented_one() -> None:
    assert OPERATORS == (
        "eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "like", "ilike",
        "contains", "startswith", "endswith", "icontains", "istartswith", "iendswith",
        "isnull", "between",
    )


def test_values_are_bound_never_interpolated() -> None:
    hostile = "x'; DROP TABLE users; --"
    clauses = where_clauses(User, [], {"name": hostile, "email__contains": "50%_off"})
    rendered = sql(clauses)
    assert "DROP" not in rendered
    assert hostile in params(clauses).values()
    # Wildcards in a contains value are escaped: they match literally.
    assert "50/%/_off" in params(clauses).values()


def test_positional_expressions_combine_with_lookups() -> None:
    clauses = where_clauses(User, [User.email.ilike("%@example.com")], {"is_active": True})
    rendered = sql(clauses)
    assert "users.email ILIKE %(email_1)s" in rendered
    assert "users.is_active = true" in rendered


def test_unknown_field_names_the_valid_ones_and_suggests() -> None:
    with pytest.raises(FilterError) as info:
        where_clauses(User, [], {"emial": "a"})
    message = str(info.value)
    assert "User has no column 'emial'" in message
    assert "Did you mean 'email'?" in message
    assert "created_at" in message


def test_unknown_operator_names_the_valid_ones_and_suggests() -> None:
    with pytest.raises(FilterError) as info:
        where_clauses(User, [], {"age__gtee": 3})
    assert "unknown operator 'gtee'" in str(info.value)
    assert "Did you mean 'gte'?" in str(info.value)
    assert "between" in str(info.value)


def test_relationships_and_methods_are_not_filterable_columns() -> None:
    with pytest.raises(FilterError, match="no column 'orders'"):
        where_clauses(User, [], {"orders": 1})
    with pytest.raises(FilterError, match="no column 'to_dict'"):
        where_clauses(User, [], {"to_dict__eq": 1})


@pytest.mark.parametrize(
    ("lookup", "value", "message"),
    [
        ("age__in", "abc", "__in takes a list"),
        ("age__in", 5, "__in takes a list"),
        ("age__between", (1, 2, 3), "__between takes a"),
        ("age__isnull", "yes", "__isnull takes True or False"),
    ],
)
def test_bad_values_for_an_operator_are_rejected(lookup: str, value: Any, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        where_clauses(User, [], {lookup: value})


def test_sql_text_is_refused_as_a_positional_filter() -> None:
    with pytest.raises(FilterError, match="must be SQLAlchemy expressions"):
        where_clauses(User, ["age > 3"], {})


def test_order_by_strings_lists_and_expressions() -> None:
    def rendered(order_by: Any) -> str:
        return str(select(User.id).order_by(*order_by_clauses(User, order_by)))

    assert rendered("-created_at").endswith("ORDER BY users.created_at DESC")
    assert rendered(["name", "-age"]).endswith("ORDER BY users.name ASC, users.age DESC")
    assert rendered(User.email).endswith("ORDER BY users.email")
    assert rendered([User.age.desc().nulls_last(), "+id"]).endswith(
        "ORDER BY users.age DESC NULLS LAST, users.id ASC"
    )
    assert order_by_clauses(User, None) == []
    with pytest.raises(FilterError, match="Did you mean 'created_at'"):
        order_by_clauses(User, "-creatd_at")
    with pytest.raises(FilterError, match="order_by takes column names"):
        order_by_clauses(User, [3])  # type: ignore[list-item]


def test_check_values_accepts_columns_only() -> None:
    assert check_values(Product, {"stock": 3}, what="in update") == {"stock": 3}
    with pytest.raises(FilterError, match="Product has no column 'stok' \\(in update\\)"):
        check_values(Product, {"stok": 3}, what="in update")


def test_unmapped_class_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="not a mapped class"):
        where_clauses(dict, [], {"a": 1})
