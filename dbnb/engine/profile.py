"""Column profiles, value counts and histograms of a table, computed by the server.

IO-free: this module writes the SQL and shapes its rows; :class:`~dbnb.Database` runs it. Only
the statistics travel, never the rows, so a table larger than memory profiles in the memory of
its answer. A profile is one scan of the table, then one per column:

1. one aggregate over every column: rows, non-null values, min and max (numbers, text,
   dates and times, intervals; ``false``/``true`` for booleans), mean and standard deviation
   (numbers; the share of ``true`` for booleans);
2. one ``GROUP BY`` per column: its distinct values and the most frequent ones (json compares
   as its text).

Column names come from the catalog and are quoted; the table name is resolved by
``to_regclass``, so nothing the caller types is pasted into SQL.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dbnb.display.tables import Table
from dbnb.display.values import Count, Percent, plural
from dbnb.errors import FilterError, NotFound

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "COLUMNS_SQL",
    "ColumnProfile",
    "ProfiledColumn",
    "TableProfile",
    "chosen_columns",
    "columns_from_rows",
    "groups_sql",
    "histogram_frame",
    "histogram_sql",
    "profile_from_rows",
    "stats_sql",
    "value_counts_frame",
    "value_counts_sql",
]

@functools.cache
def _preparer() -> Any:
    from sqlalchemy.dialects import postgresql  # on first use: import dbnb need not load it

    return postgresql.dialect().identifier_preparer  # type: ignore[no-untyped-call]


def _quote(name: str) -> str:
    quoted: str = _preparer().quote(name)
    return quoted

#: The table's columns with their type and type category (pg_type.typcategory).
COLUMNS_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typcategory::text, t.typname::text,
       c.oid::regclass::text
FROM pg_class c
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
WHERE c.oid = to_regclass(:table)
ORDER BY a.attnum
"""
_ORDERED = {"N", "S", "D", "T"}  # numbers, strings, dates and times, intervals


@dataclass(frozen=True)
class ProfiledColumn:
    """A column as the catalog describes it: name, SQL type, type category and type name."""

    name: str
    type: str
    category: str
    typname: str

    @property
    def quoted(self) -> str:
        return str(_quote(self.name))

    @property
    def numeric(self) -> bool:
        return self.category == "N"

    def grouped(self) -> str:
        """What to group by: the column, or its text where the type has no equality (json)."""
        return f"{self.quoted}::text" if self.typname == "json" else self.quoted


def chosen_columns(
    found: Sequence[ProfiledColumn], columns: str | Sequence[str] | None, table: str
) -> list[ProfiledColumn]:
    """The columns to profile: all, or those named (a list or ``"a,b"``), in the order given.

    Raises:
        FilterError: a name the table does not have (the message lists the ones it has).
    """
    if columns is None:
        return list(found)
    names = [c.strip() for c in columns.split(",")] if isinstance(columns, str) else list(columns)
    by_name = {c.name: c for c in found}
    unknown = [n for n in names if n not in by_name]
    if unknown or not names:
        raise FilterError(
            f"{table} has no column {', '.join(map(repr, unknown))}; its columns are: "
            f"{', '.join(by_name)}"
        )
    return [by_name[n] for n in names]


def stats_sql(relation: str, columns: Sequence[ProfiledColumn]) -> str:
    """One aggregate over the table: ``count(*)``, then six values per column."""
    parts = ["count(*)"]
    for c in columns:
        q = c.quoted
        if c.category == "B":
            low, high = f"bool_and({q})", f"bool_or({q})"
            mean, std = f"avg({q}::int)::float8", f"stddev_samp({q}::int)::float8"
        else:
            ordered = c.category in _ORDERED
            low, high = (f"min({q})", f"max({q})") if ordered else ("NULL", "NULL")
            mean, std = (
                (f"avg({q})::float8", f"stddev_samp({q})::float8") if c.numeric
                else ("NULL", "NULL")
            )
        parts += [f"count({q})", low, high, mean, std]
    return f"SELECT {', '.join(parts)} FROM {relation}"


def groups_sql(relation: str, columns: Sequence[ProfiledColumn]) -> str:
    """Per column, one ``GROUP BY``: its distinct count and ``:top`` commonest values.

    Rows: (column index, distinct values, value as text, count), the commonest first. A
    ``GROUPING SETS`` query would read the table once, but sorting every group of every
    column to rank them costs more than a scan: each part here is a hash aggregate and a
    top-N heap (measured in benchmarks/profile.py).
    """
    parts = [
        f"""SELECT {i} AS i, d AS distinct_values, v::text AS value, n,
       row_number() OVER (ORDER BY n DESC, v) AS r
FROM (SELECT v, n, count(*) OVER () AS d
      FROM (SELECT {c.grouped()} AS v, count(*) AS n FROM {relation}
            WHERE {c.quoted} IS NOT NULL GROUP BY 1) AS g{i}
      ORDER BY n DESC, v LIMIT :top) AS t{i}"""
        for i, c in enumerate(columns)
    ]
    union = "\nUNION ALL\n".join(parts)
    # Ties rank by the typed value (3 before 12), not by its text.
    return f"SELECT i, distinct_values, value, n FROM (\n{union}\n) AS parts ORDER BY i, r"


@dataclass(frozen=True)
class ColumnProfile:
    """One column's statistics (``min``/``max``/``mean``/``std`` None where they mean nothing)."""

    name: str
    type: str
    count: int
    nulls: int
    distinct: int
    min: Any
    max: Any
    mean: float | None
    std: float | None
    top: tuple[tuple[str, int], ...]

    @property
    def null_share(self) -> float:
        """The share of rows where the column is NULL (0 for an empty table)."""
        total = self.count + self.nulls
        return self.nulls / total if total else 0.0


_FIELDS = ("column", "type", "non-null", "nulls", "distinct", "min", "max", "mean", "std",
           "top values")


@dataclass(frozen=True)
class TableProfile:
    """Per-column statistics of a table, computed in SQL; ``.frame`` has them as a DataFrame."""

    table: str
    rows: int
    columns: tuple[ColumnProfile, ...]

    def __getitem__(self, name: str) -> ColumnProfile:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    @property
    def frame(self) -> pd.DataFrame:
        """One row per column: count, nulls, distinct, min, max, mean, std, top (a list)."""
        import pandas as pd

        rows = [
            (c.name, c.type, c.count, c.nulls, c.distinct, c.min, c.max, c.mean, c.std,
             list(c.top))
            for c in self.columns
        ]
        names = ["column", "type", "count", "nulls", "distinct", "min", "max", "mean", "std",
                 "top"]
        return pd.DataFrame(rows, columns=names).set_index("column")

    def _table(self) -> Table:
        def number(value: float | None) -> Any:
            return None if value is None or math.isnan(value) else round(value, 4)

        rows = [
            (
                c.name, c.type, Count(c.count),
                f"{Count(c.nulls)} ({Percent(c.null_share * 100)})" if c.nulls else "0",
                Count(c.distinct), c.min, c.max, number(c.mean), number(c.std),
                ", ".join(f"{_short(v)} ({n:,})" for v, n in c.top),
            )
            for c in self.columns
        ]
        caption = f"{self.table}: {plural(self.rows, 'row')}, {plural(len(rows), 'column')}"
        return Table(_FIELDS, rows, caption=caption, empty=f"{self.table}: no columns")

    def __repr__(self) -> str:
        return self._table().text()

    def _repr_html_(self) -> str:
        return self._table().html()


def _short(value: str, width: int = 24) -> str:
    return value if len(value) <= width else value[: width - 1] + "…"


def profile_from_rows(
    table: str, columns: Sequence[ProfiledColumn], stats: Sequence[Any],
    groups: Sequence[Sequence[Any]],
) -> TableProfile:
    """Assemble the :class:`TableProfile` from the two queries' rows."""
    rows = int(stats[0])
    distinct = dict.fromkeys(range(len(columns)), 0)
    top: dict[int, list[tuple[str, int]]] = {i: [] for i in range(len(columns))}
    for i, count, value, n in groups:
        distinct[i] = int(count)
        top[i].append((str(value), int(n)))
    profiles = []
    for i, c in enumerate(columns):
        count, low, high, mean, std = stats[1 + 5 * i: 6 + 5 * i]
        profiles.append(ColumnProfile(
            c.name, c.type, int(count), rows - int(count), distinct[i], low, high,
            None if mean is None else float(mean), None if std is None else float(std),
            tuple(top[i]),
        ))
    return TableProfile(table, rows, tuple(profiles))


def value_counts_sql(relation: str, column: ProfiledColumn) -> str:
    """The ``:top`` commonest non-NULL values of a column and their counts, commonest first."""
    g = column.grouped()
    return (
        f"SELECT {g} AS value, count(*) AS n FROM {relation} WHERE {column.quoted} IS NOT NULL "
        f"GROUP BY {g} ORDER BY n DESC, {g} LIMIT :top"
    )


def histogram_sql(relation: str, column: ProfiledColumn) -> str:
    """Counts in ``:bins`` equal-width bins between the column's min and max (numbers, times).

    Rows: (bin from 1, its count, the column's min, its max) as numbers: a time is its epoch.
    """
    if column.category not in {"N", "D"}:
        raise FilterError(
            f"histogram needs numbers, dates or timestamps; {column.name} is {column.type} "
            "(value_counts counts any column's values)"
        )
    x = column.quoted if column.numeric else f"extract(epoch FROM {column.quoted})"
    return f"""
WITH v AS (SELECT ({x})::float8 AS x FROM {relation} WHERE {column.quoted} IS NOT NULL),
     b AS (SELECT min(x) AS lo, max(x) AS hi FROM v)
SELECT least(width_bucket(v.x, b.lo, b.hi + (CASE WHEN b.hi = b.lo THEN 1 ELSE 0 END), :bins),
             :bins) AS bin, count(*) AS n, min(b.lo) AS lo, min(b.hi) AS hi
FROM v, b GROUP BY 1 ORDER BY 1
"""


def columns_from_rows(
    rows: Sequence[Sequence[Any]], table: str
) -> tuple[str, list[ProfiledColumn]]:
    """The relation (quoted, as ``regclass`` prints it) and its columns, from COLUMNS_SQL's rows.

    Raises:
        NotFound: no such table or view.
    """
    if not rows:
        raise NotFound(f"no table named {table!r}; %db tables lists them")
    relation = str(rows[0][4])
    return relation, [ProfiledColumn(str(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]


def value_counts_frame(column: ProfiledColumn, rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """The counts as a frame indexed by value (column ``count``), ready for ``.plot.bar()``."""
    import pandas as pd

    index = pd.Index([r[0] for r in rows], name=column.name)
    return pd.DataFrame({"count": [int(r[1]) for r in rows]}, index=index)


def histogram_frame(
    column: ProfiledColumn, rows: Sequence[Sequence[Any]], bins: int
) -> pd.DataFrame:
    """The bins as a frame indexed by interval (column ``count``), ready for ``.plot.bar()``.

    Times come back as times: the edges of a ``timestamptz`` column are UTC timestamps.
    """
    import pandas as pd

    counts = [0] * bins
    lo = hi = 0.0
    for b, n, low, high in rows:
        counts[int(b) - 1] = int(n)
        lo, hi = float(low), float(high)
    width = (hi - lo) / bins if hi > lo else 1.0 / bins
    # Ten significant digits: 77.2425, not the 77.24249999999999 of binary floating point.
    edges: Any = [float(f"{lo + width * k:.10g}") for k in range(bins + 1)]
    if not column.numeric:
        zone = "UTC" if "with time zone" in column.type else None
        edges = pd.to_datetime(edges, unit="s", utc=zone is not None)
    index = pd.IntervalIndex.from_breaks(edges, closed="left", name=column.name)
    return pd.DataFrame({"count": counts}, index=index)
