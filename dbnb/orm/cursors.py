"""Opaque, tamper-evident keyset cursors: ``page.cursor`` out, ``keyset(after=cursor)`` back in.

A cursor carries the sort keys' values of a window's last row, the ordering they belong to and
the model, as JSON (types kept: datetimes, dates, UUIDs, decimals), base64url-encoded and signed
with HMAC-SHA256. A changed byte, or a cursor made for another ordering or model, is refused
with :class:`~dbnb.PaginationError`, so an API can hand cursors to clients without letting them
forge a position. Cursors are opaque, not secret: anyone may decode the values.

The key: set ``cursor_key`` on the repository class (``class Users(Repository[User]):
cursor_key = settings.secret``) and cursors stay valid across restarts and across every worker
process that shares the key. Without one, each process makes a random key at import: cursors
then work only within the process that made them (fine in a notebook; an API with several
workers or restarts must set its own key).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from dbnb.errors import PaginationError

__all__ = ["PROCESS_KEY", "decode", "encode"]

#: The key of cursors when the repository sets none (random, this process only).
PROCESS_KEY = secrets.token_bytes(32)

_TAGS: dict[str, Any] = {
    "dt": dt.datetime.fromisoformat, "d": dt.date.fromisoformat, "t": dt.time.fromisoformat,
    "u": uuid.UUID, "n": Decimal,
}


def _tagged(value: Any) -> list[Any]:
    if isinstance(value, dt.datetime):
        return ["dt", value.isoformat()]
    if isinstance(value, dt.date):
        return ["d", value.isoformat()]
    if isinstance(value, dt.time):
        return ["t", value.isoformat()]
    if isinstance(value, uuid.UUID):
        return ["u", str(value)]
    if isinstance(value, Decimal):
        return ["n", str(value)]
    if isinstance(value, bool | int | float | str):
        return ["j", value]
    raise PaginationError(f"a keyset key of type {type(value).__name__} cannot go in a cursor")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key(key: bytes | str | None) -> bytes:
    if key is None:
        return PROCESS_KEY
    return key.encode() if isinstance(key, str) else key


def encode(values: Sequence[Any], scope: str, key: bytes | str | None = None) -> str:
    """The cursor of ``values`` (the keys of a row) for ``scope`` (model and ordering)."""
    payload = json.dumps([scope, [_tagged(v) for v in values]], separators=(",", ":")).encode()
    mac = hmac.new(_key(key), payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac)}"


def decode(cursor: str, scope: str, key: bytes | str | None = None) -> tuple[Any, ...]:
    """The key values a cursor carries, after checking its signature and scope.

    Raises:
        PaginationError: the cursor was changed, is not a cursor, was signed with another key,
            or belongs to another model or ordering.
    """
    refused = PaginationError(
        "this cursor was not made by this API for this ordering (changed, signed with another "
        "key, or from another order_by); start again without after="
    )
    try:
        body, _, signature = cursor.partition(".")
        payload, mac = _unb64(body), _unb64(signature)
    except (binascii.Error, ValueError) as exc:
        raise refused from exc
    expected = hmac.new(_key(key), payload, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise refused
    made_for, tagged = json.loads(payload)
    if made_for != scope:
        raise refused
    return tuple(_TAGS[tag](value) if tag in _TAGS else value for tag, value in tagged)
