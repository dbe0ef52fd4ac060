"""``%db config``: the magic's settings for this kernel session (what ``%%db`` returns).

The settings live on the magics instance (:class:`MagicSettings`), never in a module global:
``%db config frame=polars`` makes every ``%%db`` cell (and ``%db SELECT ...``) return a polars
DataFrame until it is set back; a cell's own ``--pandas`` / ``--polars`` / ``--arrow`` wins.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, get_args

from dbnb.display.tables import html_record
from dbnb.errors import FrameError
from dbnb.frames.columns import Backend, require_polars

__all__ = ["MagicSettings", "SettingsReport", "config"]

_CHOICES: dict[str, tuple[str, ...]] = {"frame": get_args(Backend)}


@dataclass
class MagicSettings:
    """The magic's settings: ``frame`` is what SQL cells return (pandas, polars or arrow)."""

    frame: Backend = "pandas"


@dataclass(frozen=True)
class SettingsReport:
    """The magic's settings after ``%db config`` acted, and what each can be."""

    settings: tuple[tuple[str, str], ...]

    def __repr__(self) -> str:
        return "\n".join(f"{name} = {value}  ({' | '.join(_CHOICES[name])})"
                         for name, value in self.settings)

    def _repr_html_(self) -> str:
        return html_record("%db config", {
            name: f"{value}  ({' | '.join(_CHOICES[name])})" for name, value in self.settings
        })


def config(setting: str | None = None, *, state: MagicSettings) -> SettingsReport:
    """Show or change the magic's settings for this session (frame=pandas, polars or arrow).

    Args:
        setting: NAME=VALUE to change, e.g. frame=polars (SQL cells then return polars
            DataFrames); leave it out to show the settings.
        state: the settings of this kernel's magic (passed by the magic).
    """
    if setting is not None:
        name, _, value = setting.partition("=")
        name, value = name.strip(), value.strip()
        choices = _CHOICES.get(name)
        if choices is None:
            raise FrameError(f"%db config: no setting {name!r}; the settings are: "
                             f"{', '.join(_CHOICES)} (e.g. %db config frame=polars)")
        if value not in choices:
            raise FrameError(f"%db config {name}= takes {' | '.join(choices)}, not {value!r}")
        if value == "polars":
            require_polars()
        setattr(state, name, value)
    values: list[Any] = [(f.name, str(getattr(state, f.name))) for f in fields(state)]
    return SettingsReport(tuple(values))
