"""How executed notebook outputs are stored back: without machine paths, without churn.

``dbnb tutorials --write-back`` runs these over each freshly executed notebook before writing
it: :func:`scrub_paths` replaces this machine's paths, and :func:`keep_equivalent_outputs`
keeps the stored output of every cell whose fresh output differs only in what nbval's sanitize
rules mask (latencies, pids), so a refresh changes nothing it need not.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

__all__ = ["keep_equivalent_outputs", "path_replacements", "sanitize_rules", "scrub_paths"]

Rules = list[tuple[re.Pattern[str], str]]


def path_replacements(server_home: Path | None) -> list[tuple[str, str]]:
    """Machine paths that must not be stored in a notebook, and what stands in for them."""
    pairs: list[tuple[str, str]] = []
    home = str(Path.home())
    if server_home is not None and not server_home.is_relative_to(home):
        pairs.append((str(server_home), "$DBNB_HOME"))
    if home != "/":
        pairs.append((home, "~"))
    return pairs


def scrub_paths(nb: Any, pairs: list[tuple[str, str]]) -> None:
    """Replace machine paths in every stored output (streams, text reprs, HTML, errors)."""

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            for old, new in pairs:
                value = value.replace(old, new)
        elif isinstance(value, list):
            value = [clean(v) for v in value]
        return value

    for cell in nb.cells:
        for output in cell.get("outputs", []):
            for key in ("text", "evalue", "traceback"):
                if key in output:
                    output[key] = clean(output[key])
            for mime in ("text/plain", "text/html", "text/markdown"):
                if mime in output.get("data", {}):
                    output["data"][mime] = clean(output["data"][mime])


def sanitize_rules(source: Path) -> Rules:
    """The nbval sanitize rules stored next to the notebooks (``sanitize.cfg``), if any."""
    cfg = source / "sanitize.cfg"
    if not cfg.exists():
        return []
    # The same line format nbval reads: a ``regex:`` line followed by a ``replace:`` line.
    pairs = re.findall(r"^regex: (.*)$\n^replace: (.*)$", cfg.read_text(), flags=re.M)
    return [(re.compile(regex), replace) for regex, replace in pairs]


def _sanitized(value: Any, rules: Rules) -> Any:
    """Apply the rules to every string in an output, as nbval does before comparing."""
    if isinstance(value, str):
        for pattern, replace in rules:
            value = pattern.sub(replace, value)
        return value
    if isinstance(value, dict):
        return {k: _sanitized(v, rules) for k, v in value.items() if k != "metadata"}
    if isinstance(value, list):
        return [_sanitized(v, rules) for v in value]
    return value


def _comparable(outputs: list[Any], rules: Rules) -> Any:
    """Outputs as nbval compares them: each stream's pieces joined, then sanitized."""
    streams: dict[str, str] = {}
    others = []
    for output in outputs:
        if output.get("output_type") == "stream":
            streams[output["name"]] = streams.get(output["name"], "") + output["text"]
        else:
            others.append(output)
    return _sanitized([streams, others], rules)


def keep_equivalent_outputs(
    stored: Any, fresh: Any, rules: Rules
) -> None:
    """Keep a cell's stored outputs where the fresh ones differ only in sanitized parts.

    Latencies and pids change on every run; rewriting them would churn the notebooks in
    version control (and in merges) without changing anything nbval checks.
    """
    old = {c.get("id"): c for c in stored.cells if c.cell_type == "code"}
    for cell in fresh.cells:
        before = old.get(cell.get("id"))
        if (
            cell.cell_type == "code"
            and before is not None
            and before.source == cell.source
            and before.execution_count == cell.execution_count
            and _comparable(before.outputs, rules) == _comparable(cell.outputs, rules)
        ):
            cell.outputs = before.outputs
