"""The public surface and the packaging files stay in step."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import dbnb

ROOT = Path(__file__).resolve().parents[1]


def test_all_is_sorted_complete_and_importable() -> None:
    assert list(dbnb.__all__) == sorted(dbnb.__all__)
    for name in dbnb.__all__:
        assert hasattr(dbnb, name), name
    public = {
        n for n, v in vars(dbnb).items() if not n.startswith("_") and not isinstance(v, type(dbnb))
    }
    public -= {"annotations", "TYPE_CHECKING"}
    assert public == set(dbnb.__all__)


def _requirement_lines(text: str) -> list[str]:
    return [line.strip().strip('"') for line in text.splitlines()]


def test_environment_yml_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env_text = (ROOT / "environment.yml").read_text()
    pip_lines = re.findall(r'^\s+- "?([^"\n]+)"?\s*$', env_text.split("- pip:", 1)[1], re.M)
    assert sorted(p for p in pip_lines if not p.startswith("-e")) == sorted(project["dependencies"])
    assert "-e .[dev]" in pip_lines
    python = re.search(r"python(>=[\d.]+)", env_text)
    assert python is not None and python.group(1) == project["requires-python"]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    commands = re.findall(r"^make (\w+)\s*(?:#.*)?$", readme, re.M)
    assert commands[:2] == ["demo", "test"]
    assert ci.strip().splitlines()[-1] == "exec make test"


def test_py_typed_is_shipped() -> None:
    assert (ROOT / "dbnb" / "py.typed").exists()


def test_import_dbnb_leaves_the_heavy_libraries_for_first_use() -> None:
    """``import dbnb`` imports no pandas, pyarrow, polars, IPython, Alembic or dask."""
    import subprocess
    import sys

    # SQLAlchemy's dialect modules too: the engine loads the one it needs when it is made.
    heavy = ["pandas", "polars", "pyarrow", "IPython", "alembic", "numpy", "dask",
             "sqlalchemy.dialects.mysql", "sqlalchemy.dialects.postgresql",
             "sqlalchemy.dialects.sqlite"]
    probe = (
        "import sys, dbnb\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
        "dbnb.read_frame\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
        "dbnb.dask.read_frame\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    at_import, after_use, after_dask = done.stdout.splitlines()
    assert at_import == "[]"
    assert "pyarrow" in after_use
    assert "polars" not in after_use  # only a polars read imports it
    assert "dask" not in after_dask  # dbnb.dask imports dask itself when a function runs
    assert "read_frame" in dir(dbnb)  # lazy names still show in completion
