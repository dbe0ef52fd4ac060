"""What the server says about a result's columns, and the options that shape a read.

Light on purpose (no pyarrow, no pandas): the statement layer (:mod:`dbnb.frames.query`,
:mod:`dbnb.frames.describe`) and the engine import it while ``import dbnb`` stays cheap; the
rules that turn these columns into dtypes live in :mod:`dbnb.frames.dtypes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from dbnb.errors import FrameError, MissingExtra

__all__ = [
    "ARRAY_ELEMENTS",
    "Backend",
    "DtypeBackend",
    "JsonAs",
    "ResultColumn",
    "UuidAs",
    "options_of",
    "require_polars",
]

DtypeBackend = Literal["pyarrow"] | None
UuidAs = Literal["string", "uuid"]
JsonAs = Literal["object", "string"]
#: What a read returns: a pandas DataFrame, a ``pyarrow.Table`` or a polars DataFrame.
Backend = Literal["pandas", "arrow", "polars"]
BACKENDS: tuple[Backend, ...] = ("pandas", "arrow", "polars")

# PostgreSQL type OIDs (pg_type.oid; fixed for built-in types).
BOOL, BYTEA, INT8, INT2, INT4, JSON, FLOAT4, FLOAT8 = 16, 17, 20, 21, 23, 114, 700, 701
DATE, TIME, TIMESTAMP, TIMESTAMPTZ, INTERVAL = 1082, 1083, 1114, 1184, 1186
NUMERIC, UUID, JSONB = 1700, 2950, 3802

#: Array type OID -> the OID of its elements (the arrays whose elements dbnb can type; other
#: arrays read as lists of what their JSON form holds).
ARRAY_ELEMENTS: dict[int, int | None] = {
    1000: BOOL, 1005: INT2, 1007: INT4, 1016: INT8, 1021: FLOAT4, 1022: FLOAT8,
    1009: 25, 1015: 1043, 1014: 1042, 2951: UUID,
    1231: None, 1115: None, 1185: None, 1182: None, 1183: None, 1187: None, 199: None,
    3807: None, 1001: None,
}


@dataclass(frozen=True)
class ResultColumn:
    """One column of a result, as the server describes it (name, type OID, numeric typmod)."""

    name: str
    oid: int
    precision: int | None = None
    scale: int | None = None


def require_polars() -> None:
    """Make sure polars can be imported, else say how to install it.

    Raises:
        MissingExtra: polars is not installed.
    """
    try:
        import polars  # noqa: F401
    except ImportError as exc:
        raise MissingExtra(
            "polars is not installed; install it with pip install 'dbnb[polars]' (or read "
            "Arrow with backend='arrow' / to_arrow() and convert it yourself)"
        ) from exc


def options_of(
    dtype_backend: DtypeBackend = None,
    decimal: bool = False,
    uuid_as: UuidAs = "string",
    json_as: JsonAs = "object",
    backend: Backend = "pandas",
) -> dict[str, Any]:
    """Check a read's options (before anything is sent) and gather them.

    Raises:
        FrameError: an option has a value dbnb does not know, or one that does not apply
            to the backend.
        MissingExtra: ``backend="polars"`` and polars is not installed.
    """
    if backend not in BACKENDS:
        raise FrameError(
            f"backend={backend!r} is not supported; use 'pandas', 'arrow' or 'polars'"
        )
    if backend != "pandas" and dtype_backend is not None:
        raise FrameError(
            f"dtype_backend={dtype_backend!r} chooses pandas dtypes; a {backend} result always "
            "has Arrow's exact types (leave dtype_backend out)"
        )
    if backend == "polars":
        require_polars()
        if uuid_as == "uuid":
            raise FrameError(
                "uuid_as='uuid': polars has no UUID type, so uuids read as strings there "
                "(backend='arrow' gives Arrow's uuid type)"
            )
    if dtype_backend not in (None, "pyarrow"):
        raise FrameError(
            f"dtype_backend={dtype_backend!r} is not supported; use None (dbnb's nullable "
            "dtypes) or 'pyarrow'"
        )
    if uuid_as not in ("string", "uuid"):
        raise FrameError(f"uuid_as={uuid_as!r} is not supported; use 'string' or 'uuid'")
    if json_as not in ("object", "string"):
        raise FrameError(
            f"json_as={json_as!r} is not supported; use 'object' (parsed values) or 'string' "
            "(the JSON text)"
        )
    return {
        "dtype_backend": dtype_backend, "decimal": decimal, "uuid_as": uuid_as,
        "json_as": json_as, "backend": backend,
    }
