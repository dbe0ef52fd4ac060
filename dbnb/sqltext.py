"""SQL as people write it: split into statements, classified, with their ``:name`` parameters.

The text is read by PostgreSQL's own lexer (``pglast``'s scanner is the server's ``scan.l``),
so string literals (``'{"a":1}'``, ``E'\\''``), quoted identifiers, comments (nested ``/* */``
too), dollar-quoted bodies and ``::`` casts are recognised exactly as the server will see them:
a ``;`` inside any of them does not end a statement and a ``:`` inside any of them is not a
parameter. A parameter is a ``:`` followed at once by a name (any identifier, keywords too:
``:user``, ``:from``) where a value can stand, i.e. not right after a word character (``a[1:n]``
is an array slice); ``\\:`` writes a literal colon.

IO-free. :func:`split` is used by ``db.execute`` / ``db.frame`` (engine) and the readers
(frames); :meth:`Statement.bindable` hands SQLAlchemy's ``text()`` a string in which only the
real parameters are left as ``:name``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from dbnb.errors import ParameterError, QueryError

__all__ = ["COPYABLE", "Param", "Statement", "split"]

#: The statements ``COPY (...) TO STDOUT`` can wrap (DML only with RETURNING): their rows come
#: back through the typed reader. Others that return rows (SHOW, EXPLAIN, FETCH...) are fetched.
COPYABLE = frozenset({"SELECT", "WITH", "VALUES", "TABLE", "INSERT", "UPDATE", "DELETE", "MERGE"})
_COMMENTS = frozenset({"SQL_COMMENT", "C_COMMENT"})
_COLON, _SEMICOLON, _BACKSLASH, _OPEN = "ASCII_58", "ASCII_59", "ASCII_92", "ASCII_40"
_WORD_BEFORE = re.compile(r"[\w:\\]")


@dataclass(frozen=True)
class Param:
    """A ``:name`` parameter: its name and where its colon stands in the source text."""

    name: str
    at: int


@dataclass(frozen=True)
class Statement:
    """One statement of a script: where it is in the source, its first keyword, its parameters.

    ``start``/``end`` span the statement from its first to its last token, without leading or
    trailing comments and without the ``;`` that ends it.
    """

    source: str
    start: int
    end: int
    keyword: str
    params: tuple[Param, ...] = ()
    escapes: tuple[int, ...] = ()  # positions of the backslash of each ``\:``

    @property
    def text(self) -> str:
        """The statement's SQL as written (parameters still ``:name``)."""
        return self.source[self.start : self.end]

    @property
    def span(self) -> tuple[int, int]:
        """``(start, end)`` in the source text."""
        return self.start, self.end

    @property
    def names(self) -> tuple[str, ...]:
        """The parameter names, each once, in the order they first appear."""
        return tuple(dict.fromkeys(p.name for p in self.params))

    @property
    def copyable(self) -> bool:
        """True for a statement ``COPY (...) TO STDOUT`` can read (when it returns rows)."""
        return self.keyword in COPYABLE

    def bindable(self) -> str:
        """The text for SQLAlchemy's ``text()``: every colon escaped but the parameters'.

        ``text()`` finds ``:name`` with a regular expression, inside literals too; escaping
        (``\\:``) each colon that is not a parameter keeps literals, casts and comments intact.
        """
        params = {p.at for p in self.params}
        escaped = set(self.escapes)
        out = []
        for i in range(self.start, self.end):
            char = self.source[i]
            if char == ":" and i not in params and i - 1 not in escaped:
                out.append("\\:")
            else:
                out.append(char)
        return "".join(out)

    def values(self, given: dict[str, Any], *, where: str) -> dict[str, Any]:
        """Pick this statement's parameters from ``given``; a missing or unusable one raises.

        Args:
            given: the values offered (keyword arguments, a notebook's variables).
            where: how to tell the caller to supply a missing one, e.g. ``"pass name=..."``.
        """
        picked = {}
        for name in self.names:
            if name not in given:
                raise ParameterError(
                    f":{name} has no value; {where.format(name=name)} (each :name is a bound "
                    "parameter; write \\: for a literal colon)"
                )
            picked[name] = _checked(name, given[name])
        return picked


def _checked(name: str, value: Any) -> Any:
    if isinstance(value, ModuleType) or callable(value):
        kind = "module" if isinstance(value, ModuleType) else "class" if isinstance(
            value, type) else "function"
        raise ParameterError(
            f":{name} is a {kind}, not a value; bind a number, text, date, list... (a parameter "
            "carries a value, never SQL)"
        )
    return value


def split(source: str) -> list[Statement]:
    """Split ``source`` into its statements (empty ones, e.g. comments only, are dropped).

    Raises:
        QueryError: an unterminated string, quoted identifier, dollar body or comment (SQLSTATE
            42601, with its position, as the server would report it).
    """
    from pglast import parser

    try:
        tokens = parser.scan(source)
    except parser.ParseError as exc:
        message, index = exc.args[0], exc.args[1]
        text = str(message).rsplit(", at index", 1)[0]
        raise QueryError(
            text, sqlstate="42601", position=int(index) + 1, statement=source
        ) from exc
    statements: list[Statement] = []
    current: list[Any] = []
    for token in tokens:
        if token.name == _SEMICOLON:
            statements += _statement(source, current)
            current = []
        elif token.name not in _COMMENTS:
            current.append(token)
    return statements + _statement(source, current)


def _statement(source: str, tokens: list[Any]) -> list[Statement]:
    if not tokens:
        return []
    params, escapes = [], []
    for i, token in enumerate(tokens[:-1]):
        following = tokens[i + 1]
        if token.name != _COLON or following.start != token.end + 1:
            continue
        before = source[token.start - 1] if token.start else ""
        if before == "\\":
            escapes.append(token.start - 1)
            continue
        name = source[following.start : following.end + 1]
        if name.isidentifier() and not _WORD_BEFORE.fullmatch(before or " "):
            params.append(Param(name, token.start))
    first = next((t for t in tokens if t.name != _OPEN), tokens[0])
    keyword = source[first.start : first.end + 1].upper() if first.kind != "NO_KEYWORD" else ""
    return [
        Statement(
            source, tokens[0].start, tokens[-1].end + 1, keyword, tuple(params), tuple(escapes)
        )
    ]
