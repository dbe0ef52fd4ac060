"""Secrets and values out of text: what every message, log line and repr passes through.

:func:`mask_secrets` hides passwords (in URLs, ``password=`` pairs and SQL ``PASSWORD '...'``),
:func:`redact_values` the row values PostgreSQL quotes in its messages (``DB_REDACT_VALUES``).
A leaf: the error classes, URLs and settings all use it.
"""

from __future__ import annotations

import re

__all__ = ["mask_secrets", "redact_values"]

# user:password@ in URLs whatever their slashes (scheme://, scheme:/, scheme: or none at all:
# `postgres:pw@host` is user "postgres" with a password), password=... in key/value DSNs,
# PASSWORD '...' in SQL.
_URL_PASSWORD = re.compile(
    r"(?P<prefix>(?:[a-z][a-z0-9+.-]*:/*)?[^\s:/@'\"(){}\[\]]*:)[^@\s/]*@", re.IGNORECASE
)
_KV_PASSWORD = re.compile(r"(?P<prefix>\bpassword\s*=\s*)('[^']*'|[^\s&'\"]+)", re.IGNORECASE)
# Values PostgreSQL quotes in its messages: Key (email)=(ana@example.com), "text", 'text'.
_QUOTED_VALUE = re.compile(r"=\((?P<paren>[^)]*)\)|'(?P<single>[^']*)'|\"(?P<double>[^\"]*)\"")
_SQL_PASSWORD = re.compile(r"(?P<prefix>\bpassword\s+)'(?:[^']|'')*'", re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """Replace every password in ``text`` (URL userinfo, ``password=``, SQL ``PASSWORD '...'``)."""
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('prefix')}***@", text)
    text = _SQL_PASSWORD.sub(lambda m: f"{m.group('prefix')}'***'", text)
    return _KV_PASSWORD.sub(lambda m: f"{m.group('prefix')}***", text)


def redact_values(text: str) -> str:
    """Replace the values PostgreSQL quotes in a message (``Key (email)=(…)``) with ``…``."""

    def hide(match: re.Match[str]) -> str:
        if match.group("paren") is not None:
            return "=(…)"
        return "'…'" if match.group("single") is not None else '"…"'

    return _QUOTED_VALUE.sub(hide, text)
