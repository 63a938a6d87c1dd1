"""The SVG charts: well-formed, exact data on every mark, honest geometry."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ratecard.errors import InvalidAmount
from ratecard.web import charts
from ratecard.web.charts import Series

NS = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(str(svg))


def marks(root: ET.Element, tag: str) -> list[ET.Element]:
    return [e for e in root.iter(f"{NS}{tag}") if e.get("data-value") is not None]


@pytest.mark.parametrize(("value", "text"), [
    (Decimal("0"), "0"), (Decimal("950"), "950"), (Decimal("12.5"), "12.5"),
    (Decimal("1234"), "1.2k"), (Decimal("-1234"), "-1.2k"), (Decimal("3400000"), "3.4M"),
    (Decimal("125000"), "125k"), (Decimal("7000000000"), "7B"), (Decimal("0.004"), "0.004"),
    (Decimal("19.999"), "20"), (Decimal("2.345"), "2.35"),
])
def test_compact(value: Decimal, text: str) -> None:
    assert charts.compact(value) == text


@pytest.mark.parametrize(("lo", "hi", "ticks"), [
    (0, 0, ["0", "0.25", "0.5", "0.75", "1"]),
    (0, 10, ["0", "2.5", "5", "7.5", "10"]),
    (0, 9500, ["0", "2500", "5000", "7500", "10000"]),
    (-30, 70, ["-50", "-25", "0", "25", "50", "75"]),
    (0, Decimal("0.03"), ["0", "0.01", "0.02", "0.03"]),
])
def test_nice_ticks_table(lo: int, hi: int, ticks: list[str]) -> None:
    assert [charts._plain(t) for t in charts.nice_ticks(lo, hi)] == ticks


@given(st.decimals(min_value=-10**9, max_value=10**9, allow_nan=False, places=2),
       st.decimals(min_value=-10**9, max_value=10**9, allow_nan=False, places=2))
def test_nice_ticks_cover_the_range_with_even_steps(a: Decimal, b: Decimal) -> None:
    ticks = charts.nice_ticks(a, b)
    assert ticks[0] <= min(a, b) and ticks[-1] >= max(a, b)
    steps = {y - x for x, y in itertools.pairwise(ticks)}
    assert len(steps) == 1 and steps.pop() > 0
    assert 2 <= len(ticks) <= 12


@given(st.integers(min_value=1, max_value=400), st.integers(min_value=2, max_value=12))
def test_label_indices_keep_first_and_last(n: int, most: int) -> None:
    picked = charts.label_indices(n, most)
    assert picked[0] == 0 and picked[-1] == n - 1
    assert picked == sorted(set(picked))
    assert len(picked) <= most + 1


def test_line_chart_carries_every_value_and_scales_them() -> None:
    svg = charts.line_chart(["Jan", "Feb", "Mar"], [
        Series("revenue", [Decimal("100"), Decimal("250.50"), 400]),
        Series("cost", [10, None, 30]),
    ], title="Revenue & cost")
    root = parse(svg)
    assert root.get("data-chart") == "line"
    assert root.get("aria-label") == "Revenue &amp; cost" or "Revenue & cost" in root.get(
        "aria-label", "")
    pts = marks(root, "circle")
    assert [(p.get("data-series"), p.get("data-value")) for p in pts] == [
        ("revenue", "100"), ("revenue", "250.5"), ("revenue", "400"),
        ("cost", "10"), ("cost", "30"),
    ]
    ys = {p.get("data-value"): float(p.get("cy", "0")) for p in pts}
    assert ys["400"] < ys["250.5"] < ys["100"] < ys["30"] < ys["10"]  # higher is up
    groups = [g for g in root.iter(f"{NS}g") if g.get("data-values") is not None]
    assert groups[1].get("data-values") == "10,,30"
    # a gap (None) splits the line in two runs
    assert len(list(groups[1].iter(f"{NS}polyline"))) == 2


def test_area_chart_fills_down_to_zero() -> None:
    root = parse(charts.line_chart(["a", "b"], [Series("x", [5, 10])], area=True))
    assert root.get("data-chart") == "area"
    paths = list(root.iter(f"{NS}path"))
    assert len(paths) == 1 and paths[0].get("d", "").endswith("Z")


def test_mismatched_series_length_is_refused() -> None:
    with pytest.raises(ValueError, match="2 values for 3 labels"):
        charts.line_chart(["a", "b", "c"], [Series("s", [1, 2])])


def test_floats_are_refused() -> None:
    with pytest.raises(InvalidAmount):
        charts.bar_chart(["a"], [0.1])  # type: ignore[list-item]


def test_empty_data_draws_a_placeholder() -> None:
    for svg in (charts.line_chart([], []), charts.bar_chart(["a"], [0]),
                charts.hbar_chart([]), charts.share_bar([("a", 0)])):
        root = parse(svg)
        assert root.get("data-chart") == "empty"
        assert "No data" in "".join(root.itertext())


def test_stacked_bars_stack_positive_up_and_negative_down() -> None:
    svg = charts.stacked_bar_chart(["Jan", "Feb"], [
        Series("subscription", [100, 100]),
        Series("usage", [50, 0]),
        Series("credits", [-20, 0]),
    ], totals=True)
    root = parse(svg)
    bars = marks(root, "rect")
    assert [(b.get("data-series"), b.get("data-label"), b.get("data-value")) for b in bars] == [
        ("subscription", "Jan", "100"), ("subscription", "Feb", "100"),
        ("usage", "Jan", "50"), ("credits", "Jan", "-20"),
    ]
    sub, usage, credit = bars[0], bars[2], bars[3]
    # usage sits right on top of the subscription bar; the credit hangs below zero
    assert abs(float(usage.get("y", 0)) + float(usage.get("height", 0))
               - float(sub.get("y", 0))) < 0.02
    zero = float(sub.get("y", 0)) + float(sub.get("height", 0))
    assert abs(float(credit.get("y", 0)) - zero) < 0.02
    # heights are proportional to values
    assert abs(float(sub.get("height", 0)) / float(usage.get("height", 0)) - 2) < 0.01
    totals = [t.get("data-value") for t in root.iter(f"{NS}text") if t.get("class") == "total"]
    assert totals == ["130", "100"]
    # stream names get their fixed colours
    assert sub.get("fill") == charts.STREAM_COLORS["subscription"]


def test_bar_chart_is_one_series() -> None:
    root = parse(charts.bar_chart(["a", "b", "c"], [3, 1, 2], name="runs"))
    assert root.get("data-chart") == "bar"
    assert [b.get("data-value") for b in marks(root, "rect")] == ["3", "1", "2"]


def test_hbar_negative_bars_grow_left_of_zero_and_labels_are_escaped() -> None:
    root = parse(charts.hbar_chart([("<script>alert(1)</script>", 50), ("Acme", -25)],
                                   hrefs=["/customers/x", None]))
    bars = marks(root, "rect")
    pos, neg = bars
    assert float(neg.get("x", 0)) + float(neg.get("width", 0)) == pytest.approx(
        float(pos.get("x", 0)), abs=0.02)
    assert float(pos.get("width", 0)) == pytest.approx(2 * float(neg.get("width", 0)), rel=0.01)
    assert neg.get("fill") == charts.BAD
    text = str(charts.hbar_chart([("<b>", 1)]))
    assert "<b>" not in text and "&lt;b&gt;" in text
    links = [a.get("href") for a in root.iter(f"{NS}a")]
    assert links == ["/customers/x"]


def test_delta_chart_sorts_and_colours_by_what_is_good() -> None:
    items = [("a", 5), ("b", -10), ("c", 20), ("d", 0)]
    root = parse(charts.delta_chart(items, good="negative"))
    bars = marks(root, "rect")
    assert [b.get("data-label") for b in bars] == ["c", "a", "d", "b"]
    assert bars[0].get("fill") == charts.BAD and bars[-1].get("fill") == charts.GOOD
    root = parse(charts.delta_chart(items, good="positive", limit=1))
    assert [b.get("data-label") for b in marks(root, "rect")] == ["c", "b"]
    with pytest.raises(ValueError):
        charts.delta_chart(items, good="up")


def test_share_bar_shares_sum_to_100() -> None:
    root = parse(charts.share_bar([("subscription", 300), ("usage", 100), ("refunds", -5)]))
    bars = marks(root, "rect")
    assert [b.get("data-share") for b in bars] == ["75.0", "25.0"]
    assert sum(float(b.get("width", 0)) for b in bars) == pytest.approx(960, abs=0.05)


@pytest.mark.parametrize(("used", "limit", "color", "percent"), [
    (10, 100, charts.PALETTE[0], "10"), (85, 100, "#d99a1e", "85"), (120, 100, charts.BAD, "120"),
    (5, None, charts.PALETTE[0], ""),
])
def test_meter_bar(used: int, limit: int | None, color: str, percent: str) -> None:
    bar = marks(parse(charts.meter_bar(used, limit, label="prompts")), "rect")[0]
    assert bar.get("fill") == color and bar.get("data-percent") == percent
    assert float(bar.get("width", 0)) <= 320


def test_sparkline_and_determinism() -> None:
    a = charts.sparkline([1, 3, 2])
    assert a == charts.sparkline([1, 3, 2])
    assert parse(a).find(f"{NS}polyline").get("data-values") == "1,3,2"  # type: ignore[union-attr]
    assert "not enough data" in str(charts.sparkline([1]))
