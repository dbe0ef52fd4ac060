"""The keyword lookup grammar (``age__gte=30``) and ``order_by`` strings, as SQLAlchemy expressions.

IO-free: everything here builds expressions from a mapped class and raises
:class:`~dbnb.FilterError` for names the model does not have, before any query is sent.
Values always travel as bound parameters; nothing is interpolated into SQL text.

========================  ==========================================
lookup                    SQL
========================  ==========================================
``age=30``, ``age__eq``   ``age = 30`` (``IS NULL`` for ``None``)
``age__ne``               ``age != 30`` (``IS NOT NULL`` for ``None``)
``age__lt/lte/gt/gte``    ``<``, ``<=``, ``>``, ``>=``
``age__in/not_in``        ``IN (…)``, ``NOT IN (…)``
``name__like/ilike``      ``LIKE``/``ILIKE`` with your own wildcards
``name__contains``        ``LIKE '%…%'`` (wildcards in the value escaped)
``name__startswith``      ``LIKE '…%'``; ``__endswith``: ``LIKE '%…'``
``name__icontains``       ``ILIKE '%…%'``; ``__istartswith``, ``__iendswith`` likewise
``age__isnull=True``      ``IS NULL`` (``False``: ``IS NOT NULL``)
``age__between=(a, b)``   ``BETWEEN a AND b``
========================  ==========================================
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeAlias

from sqlalchemy import JSON, ColumnElement, String, inspect
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.types import ARRAY

from dbnb.errors import FilterError, InvalidValue
from dbnb.orm import values as typed

__all__ = [
    "OPERATORS",
    "OrderBy",
    "check_operand",
    "check_values",
    "columns_of",
    "is_descending",
    "order_by_clauses",
    "where_clauses",
]

Column: TypeAlias = "InstrumentedAttribute[Any]"
OrderItem: TypeAlias = "str | ColumnElement[Any] | InstrumentedAttribute[Any]"
OrderBy: TypeAlias = "OrderItem | Sequence[OrderItem] | None"


def _sequence(op: str, value: Any) -> list[Any]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise FilterError(f"__{op} takes a list or tuple of values, got {type(value).__name__}")
    return list(value)


def _pair(value: Any) -> tuple[Any, Any]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) != 2:
        raise FilterError(f"__between takes a (low, high) pair, got {typed.describe(value)}")
    return value[0], value[1]


def _operands(op: str, value: Any) -> list[Any]:
    """The values an operator compares with its column (checked against the column's type)."""
    if op in ("in", "not_in"):
        return _sequence(op, value)
    if op == "between":
        return list(_pair(value))
    if op == "isnull":
        return []
    return [value]


def check_operand(model: type[Any], key: str, column: Column, op: str, value: Any) -> None:
    """Refuse a filter value that cannot be compared with ``column`` (before any I/O).

    Raises:
        FilterError: naming the filter, the column and what it accepts.
    """
    text_match = op in (
        "like", "ilike", "contains", "startswith", "endswith", "icontains", "istartswith",
        "iendswith",
    )
    if text_match and isinstance(column.type, String):
        if not isinstance(value, str):
            raise FilterError(
                f"filter {key!r} on {model.__name__}.{column.key} takes a string, got "
                f"{typed.describe(value)}"
            )
        return
    if text_match:
        if op == "contains" and isinstance(column.type, ARRAY | JSON):
            return  # containment (@>): the operator's own operand rules apply
        raise FilterError(
            f"filter {key!r}: __{op} matches text, and {model.__name__}.{column.key} is not a "
            "text column; use __eq, __in or a comparison"
        )
    if op in ("lt", "lte", "gt", "gte") and (value is None or isinstance(value, bool)):
        raise FilterError(
            f"filter {key!r} compares {model.__name__}.{column.key} with {value!r}; give a "
            "value to compare with (for NULL use __isnull=True)"
        )
    for operand in _operands(op, value):
        says = typed.problem(column.type, operand)
        if says is not None:
            raise FilterError(
                f"filter {key!r} on {model.__name__}.{column.key} takes {says}, got "
                f"{typed.describe(operand)}"
            )


def _isnull(column: Column, value: Any) -> ColumnElement[bool]:
    if not isinstance(value, bool):
        raise FilterError(f"__isnull takes True or False, got {value!r}")
    return column.is_(None) if value else column.is_not(None)


def _text_match(kind: str) -> Callable[[Column, Any], ColumnElement[bool]]:
    def build(column: Column, value: Any) -> ColumnElement[bool]:
        if isinstance(column.type, String):
            # autoescape: a user's "50%" is matched literally, not as a wildcard.
            return getattr(column, kind)(value, autoescape=True)  # type: ignore[no-any-return]
        return getattr(column, kind)(value)  # type: ignore[no-any-return]

    return build


_BUILDERS: dict[str, Callable[[Column, Any], ColumnElement[bool]]] = {
    "eq": lambda c, v: c.is_(None) if v is None else c == v,
    "ne": lambda c, v: c.is_not(None) if v is None else c != v,
    "lt": lambda c, v: c < v,
    "lte": lambda c, v: c <= v,
    "gt": lambda c, v: c > v,
    "gte": lambda c, v: c >= v,
    "in": lambda c, v: c.in_(_sequence("in", v)),
    "not_in": lambda c, v: c.not_in(_sequence("not_in", v)),
    "like": lambda c, v: c.like(v),
    "ilike": lambda c, v: c.ilike(v),
    "contains": _text_match("contains"),
    "startswith": _text_match("startswith"),
    "endswith": _text_match("endswith"),
    "icontains": _text_match("icontains"),
    "istartswith": _text_match("istartswith"),
    "iendswith": _text_match("iendswith"),
    "isnull": _isnull,
    "between": lambda c, v: c.between(*_pair(v)),
}

OPERATORS: tuple[str, ...] = tuple(_BUILDERS)


def columns_of(model: type[Any]) -> dict[str, Column]:
    """Return the model's mapped column attributes by attribute name."""
    mapper = inspect(model, raiseerr=False)
    if mapper is None or not hasattr(mapper, "column_attrs"):
        raise TypeError(f"{model!r} is not a mapped class; pass a model such as User")
    return {attr.key: getattr(model, attr.key) for attr in mapper.column_attrs}


def _suggest(name: str, valid: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(valid), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def _column(model: type[Any], columns: Mapping[str, Column], name: str, what: str) -> Column:
    if name not in columns:
        raise FilterError(
            f"{model.__name__} has no column {name!r} ({what}).{_suggest(name, columns)} "
            f"Valid columns: {', '.join(columns)}"
        )
    return columns[name]


def _split(columns: Mapping[str, Column], key: str) -> tuple[str, str]:
    if key in columns or "__" not in key:
        return key, "eq"
    name, op = key.rsplit("__", 1)
    return name, op


def where_clauses(
    model: type[Any], expressions: Iterable[Any], lookups: Mapping[str, Any]
) -> list[ColumnElement[bool]]:
    """Turn positional SQLAlchemy expressions and keyword lookups into WHERE clauses.

    Raises:
        FilterError: an unknown column or operator, a bad value for an operator, or a plain
            string passed where an expression belongs (SQL text is never accepted).
    """
    columns = columns_of(model)
    clauses: list[ColumnElement[bool]] = []
    for expression in expressions:
        if not isinstance(expression, ColumnElement):
            raise FilterError(
                f"positional filters must be SQLAlchemy expressions such as "
                f"{model.__name__}.name == 'x', got {type(expression).__name__}; "
                "use keyword lookups (name='x') for simple comparisons"
            )
        clauses.append(expression)
    for key, value in lookups.items():
        name, op = _split(columns, key)
        column = _column(model, columns, name, f"in filter {key!r}")
        builder = _BUILDERS.get(op)
        if builder is None:
            raise FilterError(
                f"unknown operator {op!r} in filter {key!r}.{_suggest(op, OPERATORS)} "
                f"Valid operators: {', '.join(OPERATORS)}"
            )
        check_operand(model, key, column, op, value)
        clauses.append(builder(column, value))
    return clauses


def order_by_clauses(model: type[Any], order_by: OrderBy) -> list[ColumnElement[Any]]:
    """Turn ``"-created_at"``, ``["name", "-age"]`` or expressions into ORDER BY clauses."""
    if order_by is None:
        return []
    single = isinstance(order_by, str | ColumnElement | InstrumentedAttribute)
    if not single and (isinstance(order_by, bytes) or not isinstance(order_by, Sequence)):
        raise FilterError(
            f"order_by takes a column name ('-created_at'), a list of them or SQLAlchemy "
            f"expressions, got {typed.describe(order_by)}"
        )
    items: Sequence[OrderItem] = [order_by] if single else order_by  # type: ignore[assignment,list-item]
    columns = columns_of(model)
    clauses: list[ColumnElement[Any]] = []
    for item in items:
        if isinstance(item, str):
            descending = item.startswith("-")
            name = item[1:] if descending or item.startswith("+") else item
            if not name or name[0] in "+-":
                raise FilterError(
                    f"order_by {item!r}: use a column name with at most one leading '-' "
                    "(descending), such as '-created_at'"
                )
            column = _column(model, columns, name, f"in order_by {item!r}")
            clauses.append(column.desc() if descending else column.asc())
        elif isinstance(item, InstrumentedAttribute):
            clauses.append(item.__clause_element__())
        elif isinstance(item, ColumnElement):
            clauses.append(item)
        else:
            raise FilterError(
                "order_by takes column names ('-created_at') or SQLAlchemy expressions, got "
                f"{typed.describe(item)}"
            )
    return clauses


def is_descending(clause: ColumnElement[Any]) -> bool:
    """Tell whether an ORDER BY clause sorts descending."""
    return isinstance(clause, UnaryExpression) and clause.modifier is operators.desc_op


def check_values(
    model: type[Any], values: Mapping[str, Any], *, what: str, relationships: bool = False
) -> dict[str, Any]:
    """Check that every key of ``values`` is a mapped column; return them as a dict.

    Args:
        model: the mapped class.
        values: ``{attribute name: value}``.
        what: where the values come from, for the message (``"in update"``).
        relationships: also accept relationship names (``Order(items=[...])`` on create).

    Raises:
        FilterError: a key is not a column (or relationship) of the model.
        InvalidValue: a value does not fit its column's type (see :mod:`dbnb.orm.values`).
    """
    plain = columns_of(model)
    columns: dict[str, Any] = dict(plain)
    if relationships:
        columns.update({r.key: r for r in inspect(model).relationships})
    for key, value in values.items():
        _column(model, columns, key, what)
        says = typed.problem(plain[key].type, value) if key in plain else None
        if says is not None:
            raise InvalidValue(
                f"{model.__name__}.{key} ({what.removeprefix('in ')}) takes {says}, got "
                f"{typed.describe(value)}; nothing was written"
            )
    return dict(values)
