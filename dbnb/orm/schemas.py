"""Rows as plain data: ``to_dict()`` for JSON, ``to_schema()`` for pydantic and msgspec.

IO-free. A row (a model instance), a schema object or a page's items become dicts of column
values (``mode="python"``), or of values ``json.dumps`` takes as they are (``mode="json"``:
datetimes and dates as ISO 8601, UUIDs and decimals as strings, enums as their value).
``to_schema`` validates a row into a pydantic ``BaseModel`` (``model_validate`` with
``from_attributes=True``) or a ``msgspec.Struct`` (``msgspec.convert`` with
``from_attributes=True``); neither library is imported until a schema of its own is given.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Any, Literal, TypeVar

from sqlalchemy import inspect

__all__ = ["Mode", "dump", "fields_of", "jsonable", "to_schema"]

Mode = Literal["python", "json"]
S = TypeVar("S")


def jsonable(value: Any) -> Any:
    """``value`` as JSON takes it: ISO 8601 times, UUIDs and decimals as text, containers too."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return value


def fields_of(item: Any) -> dict[str, Any]:
    """The fields of a row: a mapped instance's loaded columns, a schema's fields.

    Never loads anything: a mapped instance gives the columns already in its ``__dict__``.
    """
    state = inspect(item, raiseerr=False)
    mapper = getattr(state, "mapper", None)
    if mapper is not None:
        loaded = state.dict
        return {a.key: loaded[a.key] for a in mapper.column_attrs if a.key in loaded}
    if hasattr(item, "model_dump"):  # pydantic
        found: dict[str, Any] = item.model_dump()
        return found
    if hasattr(type(item), "__struct_fields__"):  # msgspec
        return {name: getattr(item, name) for name in type(item).__struct_fields__}
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return dataclasses.asdict(item)
    if isinstance(item, dict):
        return dict(item)
    raise TypeError(f"cannot turn a {type(item).__name__} into a dict of fields")


def dump(item: Any, mode: Mode = "python") -> dict[str, Any]:
    """One row as a dict; with ``mode="json"``, of JSON-ready values."""
    if mode not in ("python", "json"):
        raise ValueError(f"mode={mode!r}: use 'python' or 'json'")
    fields = fields_of(item)
    return {k: jsonable(v) for k, v in fields.items()} if mode == "json" else fields


def to_schema(item: Any, schema: type[S]) -> S:
    """Validate ``item`` (a model instance, read by attribute) into ``schema``.

    Args:
        item: the row.
        schema: a pydantic ``BaseModel`` subclass or a ``msgspec.Struct`` subclass.

    Raises:
        TypeError: ``schema`` is neither (the message names the extras to install).
    """
    if hasattr(schema, "model_validate"):
        validated: S = schema.model_validate(item, from_attributes=True)  # type: ignore[attr-defined]
        return validated
    if hasattr(schema, "__struct_fields__"):
        import msgspec

        converted: S = msgspec.convert(item, schema, from_attributes=True)
        return converted
    raise TypeError(
        f"to_schema takes a pydantic BaseModel or a msgspec.Struct class, got {schema!r}; "
        "install one with pip install 'dbnb[pydantic]' or pip install 'dbnb[msgspec]'"
    )
