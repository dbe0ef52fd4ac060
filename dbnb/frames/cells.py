"""One cell at a time: JSON, ARRAY and text values on their way to ``COPY``'s CSV.

IO-free helpers of :mod:`dbnb.frames.convert` for the columns Arrow cannot convert in bulk.
A text column takes strings (and enum members, stored by name), an ARRAY column lists, a JSON
column JSON data: anything else is refused, naming the column, instead of being stored as its
repr or split into characters.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import uuid
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dbnb.errors import FrameError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["array_literal", "check_text", "enum_name", "json_text", "stringlike"]


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    raise TypeError(type(value).__name__)


def json_text(name: str, value: Any) -> str | None:
    """One cell of a JSON column as JSON text (None for a missing value), or refuse it."""
    import pandas as pd

    if value is None or (not isinstance(value, list | dict | str) and _is_na(pd, value)):
        return None
    try:
        return json.dumps(value, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise FrameError(
            f"column {name!r} (json): a {type(value).__name__} value holds {exc} data, which is "
            "not JSON; use dicts, lists, strings, numbers, booleans or None (a set: list(it))"
        ) from None


def _is_na(pd: Any, value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # array-likes: not a missing value
        return False


def array_literal(name: str, value: Any) -> str | None:
    """One cell of an ARRAY column as a PostgreSQL array literal (None when missing)."""
    import pandas as pd

    if value is None or (not hasattr(value, "__iter__") and _is_na(pd, value)):
        return None
    if isinstance(value, str | bytes | dict | set | frozenset) or not hasattr(value, "__iter__"):
        raise FrameError(
            f"column {name!r} (array): takes lists (or tuples, arrays) of values, got a "
            f"{type(value).__name__}; wrap a single value as [value]"
        )
    return "{" + ",".join(_array_element(name, v) for v in value) + "}"


def _array_element(name: str, value: Any) -> str:
    import pandas as pd

    if isinstance(value, list | tuple):
        return array_literal(name, value) or "NULL"
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "NULL"
    if isinstance(value, bool):
        return "t" if value else "f"
    text = str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def enum_name(value: Any) -> Any:
    """An enum member as the name its column stores; any other value as it is."""
    return value.name if isinstance(value, enum.Enum) else value


def check_text(name: str, kind: str, series: pd.Series[Any]) -> None:
    """Refuse non-strings in a text column: a dict or a number would be stored as its repr."""
    wrong = series.map(
        lambda v: not isinstance(v, str | enum.Enum | uuid.UUID), na_action="ignore"
    )
    if bool(wrong.fillna(False).any()):
        first = series[wrong.fillna(False).astype(bool)].iloc[0]
        raise FrameError(
            f"column {name!r} ({kind}): takes strings, got a {type(first).__name__} value; "
            "convert the column first (df[col].astype(str)) if its text is what you want"
        )


def stringlike(type_: pa.DataType) -> bool:
    """Tell whether an Arrow type holds text (or only nulls) for a text column."""
    if pa.types.is_dictionary(type_):
        return stringlike(type_.value_type)
    return bool(
        pa.types.is_string(type_) or pa.types.is_large_string(type_) or pa.types.is_null(type_)
        or getattr(pa.types, "is_string_view", lambda _t: False)(type_)
    )
