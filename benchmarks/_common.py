"""What the benchmark scripts share: timing, server URLs, versions and RESULTS.md sections."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import statistics
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"


def best(fn: Callable[[], Any], repeat: int) -> float:
    """The best of ``repeat`` timed calls, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def interleaved(fns: dict[str, Callable[[], Any]], repeat: int, *, median: bool = False
                ) -> dict[str, float]:
    """Time each function ``repeat`` times, taking turns (so load changes hit all alike).

    Returns the best (or the median) of each, in seconds.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    pick = statistics.median if median else min
    return {name: pick(t) for name, t in times.items()}


def urls(db: Any) -> tuple[str, str]:
    """(ConnectorX URL, libpq URI) for the same unix-socket database."""
    q = db.url.query
    host, port = str(q["host"]), str(q.get("port", "5432"))
    cx = f"postgresql://postgres@{urllib.parse.quote(host, safe='')}:{port}/{db.database}"
    libpq = f"postgresql:///{db.database}?host={urllib.parse.quote(host, safe='')}&port={port}"
    return cx, libpq + "&user=postgres"


def versions(*names: str) -> str:
    found = [f"{n} {importlib.metadata.version(n)}" for n in names]
    return ", ".join([f"Python {platform.python_version()}", *found])


def load() -> str:
    """The machine's load averages when asked (the benchmarks share two cores with others)."""
    one, five, fifteen = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {one:.1f} / {five:.1f} / {fifteen:.1f}"


def write_section(name: str, text: str) -> None:
    """Replace (or add) the section ``name`` of RESULTS.md, between its two markers."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{text.strip()}\n{end}"
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    updated = pattern.sub(lambda _m: block, current) if pattern.search(current) else (
        current.rstrip() + "\n\n" + block + "\n")
    RESULTS.write_text(updated)
