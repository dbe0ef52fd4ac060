"""Bulk decoders: the columns the CSV reader cannot type by itself, decoded a column at a time.

IO-free, and never one Python call per value: each works on a parsed column's Arrow buffers
(numpy over the bytes, pyarrow's JSON reader, or one ``json.loads`` per block of rows). What
the server sends for them is chosen in :mod:`dbnb.frames.dtypes`:

- JSON values (and arrays read as lists) arrive as ``value,`` texts, so a block's bytes are the
  body of one JSON array: :func:`json_values` parses them with a single ``json.loads``;
- arrays of booleans, numbers, text and uuids arrive as ``{"v": [...]}`` objects, back to back:
  pyarrow's JSON reader parses a block into ``list<...>`` with the element type fixed up front;
- ``bytea`` arrives as ``\\x`` + hex digits (``bytea_output=hex``), decoded with numpy;
- ``interval`` arrives as its three fields (months, days, microseconds), assembled into Arrow's
  ``month_day_nano_interval``.
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.json as pajson

from dbnb.errors import FrameError

__all__ = [
    "hex_bytes", "intervals", "json_texts", "json_values", "no_cyclic_gc", "typed_lists", "uuids"
]

_NIBBLES = np.zeros(256, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _NIBBLES[_c] = _i
for _i, _c in enumerate(b"ABCDEF", start=10):
    _NIBBLES[_c] = _i


def _offsets(chunk: pa.Array) -> np.ndarray[Any, np.dtype[np.int32]]:
    """The offsets of a (32-bit) binary/string array, sliced to the array's own values."""
    buffer = chunk.buffers()[1]
    return np.frombuffer(buffer, dtype=np.int32, count=len(chunk) + 1, offset=chunk.offset * 4)


def _values(chunk: pa.Array) -> memoryview:
    """The bytes of all of a binary/string array's values, back to back (no copy)."""
    offsets = _offsets(chunk)
    data = chunk.buffers()[2]
    if data is None:
        return memoryview(b"")
    return memoryview(data)[int(offsets[0]) : int(offsets[-1])]


@contextlib.contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """Hold the cyclic garbage collector off while parsed values are built.

    Values built from a column (JSON dicts and lists, DateOffsets) cannot form reference
    cycles, yet building a million of them sets off hundreds of collections, each walking
    every object of a long-lived process (a notebook kernel holds many): that tripled a JSON
    column's parse time.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def json_values(array: pa.ChunkedArray) -> list[Any]:
    """Parse a column of ``value,`` JSON texts into Python values: one ``json.loads`` per block."""
    values: list[Any] = []
    for chunk in array.chunks:
        if len(chunk) == 0:
            continue
        body = _values(chunk)
        text = bytearray(len(body) + 1)
        text[0] = ord("[")
        text[1:] = body
        text[-1] = ord("]")  # in place of the last value's comma
        try:
            with no_cyclic_gc():
                parsed = json.loads(text)
        except ValueError as exc:
            raise FrameError(f"could not parse a JSON column: {exc}") from exc
        if len(parsed) != len(chunk):
            raise FrameError("a JSON column's values did not parse one per row")
        values.extend(parsed)
    return values


def _list_chunk(chunk: pa.Array, element: pa.DataType) -> pa.Array:
    """Parse one chunk of ``{"v": [...]}`` objects into ``list<element>``.

    Floats travel as text (``NaN`` and ``Infinity`` are not JSON numbers) and are cast here.

    Raises:
        pa.ArrowInvalid: a value is not a one-dimensional list of ``element``.
    """
    floats = pa.types.is_floating(element)
    parsed_type = pa.list_(pa.string() if floats else element)
    options = pajson.ParseOptions(
        explicit_schema=pa.schema([("v", parsed_type)]), newlines_in_values=False
    )
    body = _values(chunk)
    # One block for the whole chunk: the objects are not separated by newlines.
    read_options = pajson.ReadOptions(use_threads=False, block_size=len(body) + 1)
    table = pajson.read_json(pa.py_buffer(body), read_options=read_options, parse_options=options)
    if table.num_rows != len(chunk):
        raise FrameError("an array column's values did not parse one per row")
    lists = table.column(0).combine_chunks()
    return lists.cast(pa.list_(element)) if floats else lists


def typed_lists(element: pa.DataType) -> Callable[[list[pa.ChunkedArray]], pa.ChunkedArray]:
    """A decoder of ``{"v": [...]}`` objects into ``list<element>``, with pyarrow's JSON reader.

    Arrays of several dimensions (which the same column type allows) cannot go through the
    reader: they are parsed row by row and become lists of lists of ``element``.
    """

    def decode(arrays: list[pa.ChunkedArray]) -> pa.ChunkedArray:
        (array,) = arrays
        chunks = [c for c in array.chunks if len(c)]
        try:
            return pa.chunked_array([_list_chunk(c, element) for c in chunks],
                                    type=pa.list_(element))
        except pa.ArrowInvalid:
            return _nested_lists(chunks, element)

    return decode


def _nested_lists(chunks: list[pa.Array], element: pa.DataType) -> pa.ChunkedArray:
    """The slow way, for arrays of several dimensions: each row parsed by itself."""
    decoder = json.JSONDecoder()
    floats = pa.types.is_floating(element)
    values: list[Any] = []
    with no_cyclic_gc():
        for chunk in chunks:
            text = bytes(_values(chunk)).decode()
            position = 0
            while position < len(text):
                found, position = decoder.raw_decode(text, position)
                values.append(_floats_in(found["v"]) if floats else found["v"])
    nested = element
    for _ in range(max((_depth(v) for v in values if v is not None), default=1)):
        nested = pa.list_(nested)
    try:
        return pa.chunked_array([pa.array(values, type=nested)])
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise FrameError(
            f"could not read an array column as {nested} (are its arrays of different "
            f"dimensions?): {exc}"
        ) from exc


def _depth(value: Any) -> int:
    depth = 0
    while isinstance(value, list):
        depth += 1
        value = next((v for v in value if v is not None), None)
    return depth


def _floats_in(value: Any) -> Any:
    if isinstance(value, list):
        return [_floats_in(v) for v in value]
    return None if value is None else float(value)


def _unhex(chunk: pa.Array) -> pa.Array:
    """``\\x``-prefixed hex texts -> the bytes they spell (nulls stay null)."""
    n = len(chunk)
    offsets = _offsets(chunk).astype(np.int64)
    valid = chunk.is_valid()
    valid_np = valid.to_numpy(zero_copy_only=False)
    starts = offsets[:-1] - offsets[0]
    text = np.frombuffer(_values(chunk), dtype=np.uint8)
    keep = np.ones(len(text), dtype=bool)
    keep[starts[valid_np]] = False  # the backslash
    keep[starts[valid_np] + 1] = False  # the x
    digits = _NIBBLES[text[keep]]
    data = (digits[0::2] << 4) | digits[1::2]
    prefixes = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(valid_np, out=prefixes[1:])
    new_offsets = ((offsets - offsets[0] - 2 * prefixes) // 2).astype(np.int32)
    validity = valid.buffers()[1] if chunk.null_count else None
    return pa.Array.from_buffers(
        pa.binary(), n, [validity, pa.py_buffer(new_offsets), pa.py_buffer(data)],
        null_count=chunk.null_count,
    )


def hex_bytes(arrays: list[pa.ChunkedArray]) -> pa.ChunkedArray:
    """Decode a ``bytea`` column sent as hex (``\\x0a1b...``) into Arrow ``binary``."""
    (array,) = arrays
    return pa.chunked_array([_unhex(c) for c in array.chunks], type=pa.binary())


_MDN = np.dtype([("months", "<i4"), ("days", "<i4"), ("nanoseconds", "<i8")])


def _interval_chunk(months: pa.Array, days: pa.Array, micros: pa.Array) -> pa.Array:
    n = len(months)
    fields = np.empty(n, dtype=_MDN)
    fields["months"] = months.fill_null(0).to_numpy()
    fields["days"] = days.fill_null(0).to_numpy()
    fields["nanoseconds"] = micros.fill_null(0).to_numpy() * 1000
    validity = months.is_valid().buffers()[1] if months.null_count else None
    return pa.Array.from_buffers(
        pa.month_day_nano_interval(), n, [validity, pa.py_buffer(fields)],
        null_count=months.null_count,
    )


def intervals(arrays: list[pa.ChunkedArray]) -> pa.ChunkedArray:
    """Assemble an interval's months, days and microseconds into ``month_day_nano_interval``."""
    months, days, micros = arrays
    chunks = [
        _interval_chunk(m, d, u)
        for m, d, u in zip(months.chunks, days.chunks, micros.chunks, strict=True)
    ]
    return pa.chunked_array(chunks, type=pa.month_day_nano_interval())


def uuids(arrays: list[pa.ChunkedArray]) -> pa.ChunkedArray:
    """Decode uuids sent as their 16 bytes (``uuid_send``) into Arrow's ``uuid`` type.

    Arrow's canonical uuid type is pyarrow 18's; an older pyarrow keeps its storage (16 fixed
    bytes).
    """
    storage = hex_bytes(arrays).cast(pa.binary(16))
    kind = getattr(pa, "uuid", None)
    if kind is None:
        return storage
    return pa.chunked_array(
        [pa.ExtensionArray.from_storage(kind(), c) for c in storage.chunks], type=kind()
    )


def json_texts(arrays: list[pa.ChunkedArray]) -> pa.ChunkedArray:
    """Tag JSON texts with Arrow's ``json`` type (pyarrow 19's; plain text before it)."""
    (array,) = arrays
    kind = getattr(pa, "json_", None)
    if kind is None:
        return array
    tagged = kind(pa.string())
    return pa.chunked_array(
        [pa.ExtensionArray.from_storage(tagged, c) for c in array.chunks], type=tagged
    )
