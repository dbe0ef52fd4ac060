"""IO-free: when a progress bar shows, what it says, and the switches that turn it off."""

from __future__ import annotations

from typing import Any

import pytest

import dbnb
from dbnb.display import progress


@pytest.fixture
def watching(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "interactive", lambda: True)
    monkeypatch.delenv("DBNB_PROGRESS", raising=False)


def test_progress_appears_over_the_threshold_when_someone_watches(
    watching: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with progress.Progress(None, total=progress.THRESHOLD - 1, desc="small") as bar:
        bar.update(progress.THRESHOLD - 1)
    assert capsys.readouterr().err == ""
    with progress.Progress(None, desc="stream") as bar:  # unknown total: counts decide
        bar.update(progress.THRESHOLD // 2)
        assert capsys.readouterr().err == ""
        bar.update(progress.THRESHOLD // 2)
    assert "stream" in capsys.readouterr().err  # outside a notebook: tqdm on stderr
    with progress.Progress(False, total=10 * progress.THRESHOLD) as bar:
        bar.update(10 * progress.THRESHOLD)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("switch", ["set_progress", "env"])
def test_the_global_switch_turns_default_bars_off(
    watching: None, switch: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if switch == "env":
        monkeypatch.setenv("DBNB_PROGRESS", "off")
    else:
        dbnb.set_progress(False)
    try:
        quiet = progress.Progress(None, total=10 * progress.THRESHOLD)
        assert not quiet.wants_total
        with quiet as bar:
            bar.update(10 * progress.THRESHOLD)
        assert capsys.readouterr().err == ""
        with progress.Progress(True, total=10, desc="asked for") as bar:  # a call's own True wins
            bar.update(10)
        assert "asked for" in capsys.readouterr().err
    finally:
        dbnb.set_progress(None)


def test_status_line_shows_total_percentage_time_and_rate() -> None:
    bar = progress.Progress(False, total=2_000_000, desc="loading views")
    bar.update(840_000)
    line = bar.status_line()
    assert line.startswith("loading views: 840,000 of 2,000,000 rows (42 %), ")
    assert line.endswith("rows/s")
    guess = progress.Progress(False, desc="reading")
    guess.set_total(100_000, estimate=True)
    guess.update(150_000)  # an estimate can be passed: the bar waits at 99 %
    assert "of ~100,000 (estimate) rows" in guess.status_line()
    assert guess.fraction() == 0.99
    with guess:
        pass
    assert guess.fraction() == 1.0 and "150,000 rows" in guess.status_line()
    assert guess.status_line().endswith("(done)")


class _Handle:
    def __init__(self, shown: list[dict[str, Any]]) -> None:
        self.shown = shown

    def update(self, bundle: dict[str, Any], raw: bool) -> None:
        self.shown.append(bundle)


def test_in_a_notebook_the_bar_is_html_updated_in_place_and_ends_done(
    watching: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import IPython.display

    shown: list[dict[str, Any]] = []

    def display(bundle: dict[str, Any], raw: bool, display_id: bool) -> _Handle:
        assert raw and display_id  # one output, updated in place
        shown.append(bundle)
        return _Handle(shown)

    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    monkeypatch.setattr(IPython.display, "display", display)
    with progress.Progress(None, total=3 * progress.THRESHOLD, desc="loading t") as bar:
        for _ in range(3):
            bar.update(progress.THRESHOLD)
    assert capsys.readouterr().err == ""  # nothing on the stderr band
    first, last = shown[0], shown[-1]
    assert "aria-valuemax='300000'" in first["text/html"] and "33 %" in first["text/html"]
    assert "width:100.0%" in last["text/html"] and "(done)" in last["text/plain"]
    assert last["text/plain"].startswith("progress: loading t: 300,000 rows, ")
