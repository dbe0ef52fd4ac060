"""Check Python values against their columns' types before anything is sent.

IO-free. psycopg and asyncpg reject a wrong value differently (or, worse, accept it: a string
into a ``text[]`` column becomes an array of characters, a ``set`` into JSON its repr), so
repositories and filters check each value here first: a mistake raises the same dbnb error,
naming the column and what it accepts, whichever driver would have run the statement.
SQL expressions (``func.now()``, a column) always pass: the server types them.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import numbers
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import types as sqltypes
from sqlalchemy.sql.elements import ClauseElement

__all__ = ["accepted", "problem"]


def _impl(type_: Any) -> Any:
    return type_.impl_instance if isinstance(type_, sqltypes.TypeDecorator) else type_


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real | decimal.Decimal) and not isinstance(v, bool)


def _is_bool(v: Any) -> bool:
    # numpy.bool_ is not a bool subclass but says it is one through its type name.
    return isinstance(v, bool) or type(v).__name__ == "bool_"


def _is_uuid(v: Any) -> bool:
    if isinstance(v, uuid.UUID):
        return True
    if not isinstance(v, str):
        return False
    try:
        uuid.UUID(v)
    except ValueError:
        return False
    return True


def _is_json(v: Any) -> bool:
    try:
        json.dumps(v, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _rule(type_: Any) -> tuple[Callable[[Any], bool], str] | None:
    """How to check a value for ``type_``, and how to say what it accepts (None: anything)."""
    t = _impl(type_)
    if isinstance(t, sqltypes.Boolean):
        return _is_bool, "True or False"
    if isinstance(t, sqltypes.Integer):
        return _is_int, "an integer"
    if isinstance(t, sqltypes.Float | sqltypes.Numeric):
        return _is_number, "a number (int, float or Decimal)"
    if isinstance(t, sqltypes.Enum):
        names = list(t.enums)
        members = t.enum_class
        return (
            lambda v: (isinstance(v, str) and v in names)
            or (members is not None and isinstance(v, members)),
            f"one of {', '.join(map(repr, names))}",
        )
    if isinstance(t, sqltypes.Uuid):
        return _is_uuid, "a uuid.UUID or its text"
    if isinstance(t, sqltypes.String):
        return (lambda v: isinstance(v, str)), "a string (str)"
    if isinstance(t, sqltypes.DateTime):
        return (lambda v: isinstance(v, dt.datetime)), "a datetime"
    if isinstance(t, sqltypes.Date):
        return (lambda v: isinstance(v, dt.date)), "a date"
    if isinstance(t, sqltypes.Time):
        return (lambda v: isinstance(v, dt.time)), "a time"
    if isinstance(t, sqltypes.Interval):
        return (lambda v: isinstance(v, dt.timedelta)), "a timedelta"
    if isinstance(t, sqltypes.LargeBinary):
        return (lambda v: isinstance(v, bytes | bytearray | memoryview)), "bytes"
    if isinstance(t, sqltypes.JSON):
        return _is_json, "JSON data (dict, list, str, int, float, bool or None; no sets)"
    if isinstance(t, sqltypes.ARRAY):
        return (lambda v: isinstance(v, list | tuple)), "a list (not a string)"
    return None


def accepted(type_: Any) -> str | None:
    """Say what a column of ``type_`` accepts (None when dbnb does not check it)."""
    rule = _rule(type_)
    return None if rule is None else rule[1]


def problem(type_: Any, value: Any) -> str | None:
    """Return what a column of ``type_`` accepts when ``value`` does not fit it, else None.

    ``None`` (NULL) and SQL expressions always fit; an ARRAY's items are checked against its
    item type; an ``enum.Enum`` member fits a text column (its name is stored).
    """
    if value is None or isinstance(value, ClauseElement) or hasattr(value, "__clause_element__"):
        return None
    rule = _rule(type_)
    if rule is None:
        return None
    check, says = rule
    if isinstance(value, enum.Enum) and isinstance(_impl(type_), sqltypes.String):
        return None
    if not check(value):
        return says
    item_type = getattr(_impl(type_), "item_type", None)
    if isinstance(_impl(type_), sqltypes.ARRAY) and item_type is not None:
        for item in value:
            nested = item if isinstance(item, list | tuple) else [item]
            for element in nested:
                if problem(item_type, element) is not None:
                    return f"a list of {accepted(item_type)}"
    return None


def describe(value: Any) -> str:
    """Name a rejected value for a message: its type, and a short repr for plain values."""
    name = type(value).__name__
    if isinstance(value, str | int | float | bool):
        text = repr(value)
        return f"{name} {text[:40] + '…' if len(text) > 40 else text}"
    return name
