"""IO-free: how tables, records and values render in text and HTML."""

from __future__ import annotations

import re
from decimal import Decimal

from dbnb.display.tables import Record, Table, html_table, label, text_table
from dbnb.display.values import (
    Count,
    Duration,
    Percent,
    Size,
    Status,
    human_duration,
    human_size,
    plural,
)


def _cells(html: str, tag: str) -> list[tuple[str, str]]:
    """(style, text) of every ``tag`` cell, in order."""
    return re.findall(rf"<{tag} style='([^']*)'>(.*?)</{tag}>", html)


def test_text_left_numbers_right_in_html_and_text() -> None:
    table = Table(
        ("command", "rows", "size"),
        [("migrate", 3, Size(8192)), ("describe", 12_000, Size(40 * 1024))],
        caption="two commands",
    )
    html = table.html()
    heads = _cells(html, "th")
    cells = _cells(html, "td")
    assert [s.startswith("text-align:left") for s, _ in heads] == [True, False, False]
    assert [s.startswith("text-align:right") for s, _ in cells] == [False, True, True] * 2
    assert [t for _, t in cells] == ["migrate", "3", "8 kB", "describe", "12000", "40 kB"]
    text = table.text().splitlines()
    assert text[0] == "two commands"
    assert text[3] == "migrate       3   8 kB"
    assert text[4] == "describe  12000  40 kB"


def test_caption_is_a_line_above_the_table_and_the_note_below() -> None:
    html = Table(("a",), [("x",)], caption="short", note="the long detail").html()
    assert html.index("dbnb-caption") < html.index("<table") < html.index("dbnb-note")
    assert "<caption" not in html  # a caption is squeezed to the table's width


def test_code_spans_in_a_note_are_code_in_html_and_backticks_in_text() -> None:
    table = Table(("a",), [("x",)], note="run `%db migrate` then `%%db <b>`")
    assert "run <code>%db migrate</code> then <code>%%db &lt;b&gt;</code>" in table.html()
    assert table.text().endswith("run `%db migrate` then `%%db <b>`")
    odd = Table(("a",), [("x",)], note="a ` alone").html()
    assert "a ` alone" in odd and "<code>" not in odd


def test_an_empty_result_is_one_line_not_an_empty_table() -> None:
    html = Table(("kind", "name"), [], caption="drift", empty="no drift").html()
    assert "<table" not in html and "no drift" in html
    assert Table(("a",), [], caption="nothing to do").text() == "nothing to do"
    assert html_table(("a",), []).count("no rows") == 1
    assert text_table(("a_b",), [], empty="none") == "none"


def test_labels_plurals_sizes_durations() -> None:
    assert label("checked_in") == "checked in" and label("utilization") == "utilization"
    assert [plural(n, "table") for n in (0, 1, 2, 1200)] == [
        "0 tables", "1 table", "2 tables", "1,200 tables"
    ]
    assert plural(2, "index", "indexes") == "2 indexes"
    assert [human_size(n) for n in (0, 1, 8192, 40 * 1024, 7_698_000, 3 * 1024**3)] == [
        "0 bytes", "1 byte", "8 kB", "40 kB", "7.3 MB", "3 GB"
    ]
    assert [human_duration(s) for s in (0.0004, 0.0046, 0.25, 1.24, 42, 185, 7380)] == [
        "400 µs", "4.6 ms", "250 ms", "1.2 s", "42 s", "3 min 05 s", "2 h 03 min"
    ]
    assert str(Count(200_000)) == "200,000" and str(Percent(66.666)) == "66.7 %"
    assert str(Duration(0.0046)) == "4.6 ms" and Duration(0.0046) < 0.005  # still a number


def test_column_names_can_stay_as_they_are() -> None:
    html = Table(("created_at",), [(1,)], names=True).html()
    assert ">created_at</th>" in html
    assert ">created at</th>" in Table(("created_at",), [(1,)]).html()


def test_status_colours_and_record() -> None:
    good, bad = Status(True, "healthy"), Status(False, "busy")
    assert "#1a7f37" in good.html() and "#cf222e" in bad.html() and str(bad) == "busy"
    record = Record("pool", {"size": 5, "status": bad, "price": Decimal("9.90")}, ok=False)
    html = record.html()
    assert "#cf222e" in html.split("</div>")[0]  # the title carries the red badge
    assert all(s.startswith("text-align:left") for s, _ in _cells(html, "td"))
    assert record.text().splitlines() == ["pool", "  size    5", "  status  busy",
                                          "  price   9.90"]
    table = Table(("engine", "status"), [("sync", good)], caption="pools", ok=True).html()
    assert "#1a7f37" in table and "●</span> <span" in table


def test_values_are_escaped() -> None:
    html = Table(("<b>",), [("<script>x</script>",)], caption="<i>").html()
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;i&gt;" in html
