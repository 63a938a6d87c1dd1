"""Charts rendered on the server as inline SVG: no JavaScript, no download.

Every function takes exact values (``Decimal`` or ``int``) and returns an ``<svg>``
element as :class:`markupsafe.Markup`, ready to drop into a Jinja2 template.
Coordinates are computed with ``Decimal`` too, and printed with two decimals, so the
same data always gives the same bytes (handy in tests and caches).

Charts:

* :func:`line_chart` — one or more series over ordered categories (days, months);
  ``area=True`` fills under each line.
* :func:`bar_chart` — one value per category, vertical bars.
* :func:`stacked_bar_chart` — several series stacked per category (revenue by
  stream per month); negative parts stack below zero.
* :func:`hbar_chart` — horizontal bars with long labels (customers, plans, models);
  negative values grow to the left of zero.
* :func:`delta_chart` — winners and losers: horizontal bars around zero coloured by
  whether the change is good or bad (simulations, margins).
* :func:`share_bar` — one 100% bar split into parts (revenue mix).
* :func:`meter_bar` — usage against a limit.
* :func:`sparkline` — a tiny line without axes.

Every data mark carries ``data-series``, ``data-label`` and ``data-value`` (the
exact decimal string) and a ``<title>`` that browsers show on hover, so the numbers
drawn can be read back by a test or a screen reader. Text is escaped; colours come
from a fixed palette (and named colours for revenue streams), set inline so a chart
looks right even outside the dashboard's stylesheet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

from markupsafe import Markup, escape

from ratecard.money import D

Number = Decimal | int
Formatter = Callable[[Decimal], str]

PALETTE: tuple[str, ...] = (
    "#3b6fd8", "#e4873b", "#2f9e77", "#c2478a", "#7a5bd1", "#c9a227", "#4aa3c2", "#8a8f98",
)
STREAM_COLORS: dict[str, str] = {
    "subscription": "#3b6fd8",
    "usage": "#2f9e77",
    "license": "#7a5bd1",
    "marketplace": "#e4873b",
    "services": "#c2478a",
    "revenue": "#3b6fd8",
    "cost": "#d0543f",
    "margin": "#2f9e77",
}
GOOD = "#2f9e77"
BAD = "#d0543f"
NEUTRAL = "#8a8f98"
GRID = "#e3e6eb"
AXIS = "#9aa1ab"
TEXT = "#5b6270"

ZERO = Decimal(0)
_TWO = Decimal("0.01")


@dataclass(frozen=True)
class Series:
    """A named list of values aligned with a chart's categories (``None``: no value)."""

    name: str
    values: Sequence[Number | None]
    color: str | None = None


# --------------------------------------------------------------------------- numbers


def compact(value: Decimal) -> str:
    """A short display form: ``950``, ``12.5``, ``1.2k``, ``3.4M``, ``-7B``."""
    v = D(value)
    sign = "-" if v < 0 else ""
    a = abs(v)
    for size, suffix in ((Decimal(10) ** 12, "T"), (Decimal(10) ** 9, "B"),
                         (Decimal(10) ** 6, "M"), (Decimal(1000), "k")):
        if a >= size:
            scaled = a / size
            places = Decimal("1") if scaled >= 100 else Decimal("0.1")
            return f"{sign}{_plain(scaled.quantize(places, rounding=ROUND_HALF_UP))}{suffix}"
    if a == a.to_integral_value():
        return f"{sign}{a.quantize(Decimal(1))}"
    places = _TWO if a >= 1 else Decimal("0.0001")
    return f"{sign}{_plain(a.quantize(places, rounding=ROUND_HALF_UP))}"


def _plain(v: Decimal) -> str:
    """A decimal without trailing zeros or exponent."""
    if v == v.to_integral_value():
        return str(v.quantize(Decimal(1)))
    return format(v.normalize(), "f")


def nice_ticks(lo: Number, hi: Number, target: int = 5) -> list[Decimal]:
    """Round tick values covering ``[lo, hi]``: steps of 1, 2, 2.5 or 5 × 10^k.

    The first tick is ``<= lo`` and the last ``>= hi``; an empty range is widened
    (``[0, 0]`` becomes ``[0, 1]``).
    """
    low, high = D(lo), D(hi)
    if low > high:
        low, high = high, low
    if low == high:
        if low == 0:
            high = Decimal(1)
        else:
            pad = abs(low) / 10
            low, high = (low - pad, high + pad) if low < 0 else (ZERO, high + pad)
    rough = (high - low) / max(target - 1, 1)
    magnitude = Decimal(1).scaleb(rough.adjusted())
    residual = rough / magnitude
    step = magnitude * 10
    for m in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10)):
        if residual <= m:
            step = magnitude * m
            break
    first = (low / step).to_integral_value(rounding=ROUND_FLOOR) * step
    last = (high / step).to_integral_value(rounding=ROUND_CEILING) * step
    ticks: list[Decimal] = []
    t = first
    while t <= last:
        ticks.append(t + 0)  # "+ 0" turns -0 into 0
        t += step
    return ticks


def _n(v: Decimal) -> str:
    """A coordinate with two decimals."""
    return str(v.quantize(_TWO, rounding=ROUND_HALF_UP))


def _vals(values: Sequence[Number | None]) -> list[Decimal | None]:
    return [None if v is None else D(v) for v in values]


def _color(i: int, explicit: str | None = None, name: str | None = None) -> str:
    if explicit:
        return explicit
    if name is not None and name.lower() in STREAM_COLORS:
        return STREAM_COLORS[name.lower()]
    return PALETTE[i % len(PALETTE)]


def _attr(v: object) -> str:
    return str(escape(str(v)))


def _svg(kind: str, width: int, height: int, title: str, body: list[str],
         extra_class: str = "") -> Markup:
    label = _attr(title or f"{kind} chart")
    cls = f"chart chart-{kind}" + (f" {extra_class}" if extra_class else "")
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{cls}" data-chart="{kind}" '
        f'viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMidYMid meet" '
        f'role="img" aria-label="{label}" font-family="inherit" font-size="11">'
        f"<title>{label}</title>" + "".join(body) + "</svg>"
    )


def empty_chart(message: str = "No data for this period", width: int = 640,
                height: int = 160) -> Markup:
    """A placeholder with a message, drawn at the size the chart would have had."""
    body = [
        f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" rx="6" fill="none" '
        f'stroke="{GRID}" stroke-dasharray="4 4"/>',
        f'<text x="{width // 2}" y="{height // 2 + 4}" text-anchor="middle" fill="{TEXT}">'
        f"{escape(message)}</text>",
    ]
    return _svg("empty", width, height, message, body, "chart-empty")


def _legend(names: Sequence[tuple[str, str]], x: int, y: int, width: int) -> list[str]:
    out: list[str] = []
    cx = x
    for name, color in names:
        w = 18 + 7 * len(name)
        if cx + w > x + width and cx > x:
            break
        out.append(
            f'<g class="legend-item"><rect x="{cx}" y="{y - 9}" width="10" height="10" rx="2" '
            f'fill="{color}"/><text x="{cx + 14}" y="{y}" fill="{TEXT}">{escape(name)}</text></g>'
        )
        cx += w + 10
    return out


class _YScale:
    """Maps values to pixel rows within ``[top, bottom]``."""

    def __init__(self, lo: Decimal, hi: Decimal, top: int, bottom: int) -> None:
        self.ticks = nice_ticks(lo, hi)
        self.lo, self.hi = self.ticks[0], self.ticks[-1]
        self.top, self.bottom = Decimal(top), Decimal(bottom)

    def __call__(self, v: Decimal) -> Decimal:
        span = self.hi - self.lo
        return self.bottom - (v - self.lo) / span * (self.bottom - self.top)

    @property
    def zero(self) -> Decimal:
        return self(min(max(ZERO, self.lo), self.hi))


def _y_axis(scale: _YScale, left: int, right: int, fmt: Formatter) -> list[str]:
    out: list[str] = []
    for t in scale.ticks:
        y = _n(scale(t))
        stroke = AXIS if t == 0 else GRID
        out.append(f'<line x1="{left}" y1="{y}" x2="{right}" y2="{y}" stroke="{stroke}" '
                   'stroke-width="1"/>')
        out.append(f'<text x="{left - 6}" y="{_n(scale(t) + 4)}" text-anchor="end" '
                   f'fill="{TEXT}">{escape(fmt(t))}</text>')
    return out


def label_indices(n: int, max_labels: int = 8) -> list[int]:
    """Which of ``n`` category labels to print so that at most about ``max_labels`` show.

    The first and the last are always shown; the others are evenly spaced.
    """
    if n <= 0:
        return []
    every = max(1, -(-n // max(max_labels, 1)))
    picked = list(range(0, n, every))
    if picked[-1] != n - 1:
        if n - 1 - picked[-1] < (every + 1) // 2 and len(picked) > 1:
            picked[-1] = n - 1
        else:
            picked.append(n - 1)
    return picked


def _x_labels(labels: Sequence[str], xs: Sequence[Decimal], y: int,
              max_labels: int = 8) -> list[str]:
    if len(xs) > 1:
        room = int(xs[-1] - xs[0]) + 40
        widest = max(len(label) for label in labels) * 6 + 16
        max_labels = max(2, min(max_labels, room // widest))
    return [f'<text x="{_n(xs[i])}" y="{y}" text-anchor="middle" fill="{TEXT}">'
            f"{escape(labels[i])}</text>" for i in label_indices(len(labels), max_labels)]


def _mark(series: str, label: str, value: Decimal, fmt: Formatter) -> tuple[str, str]:
    """Data attributes and the hover title of one data mark."""
    attrs = (f'data-series="{_attr(series)}" data-label="{_attr(label)}" '
             f'data-value="{_attr(_plain(value))}"')
    title = f"<title>{escape(series)} · {escape(label)}: {escape(fmt(value))}</title>"
    return attrs, title


# --------------------------------------------------------------------------- charts


def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    area: bool = False,
    width: int = 960,
    height: int = 260,
    fmt: Formatter = compact,
    title: str = "",
) -> Markup:
    """Lines (or filled areas) of one or more series over ordered ``labels``."""
    data = [(s, _vals(s.values)) for s in series]
    present = [v for _, vs in data for v in vs if v is not None]
    if not labels or not present:
        return empty_chart(width=width, height=min(height, 160))
    for s, vs in data:
        if len(vs) != len(labels):
            raise ValueError(f"series {s.name!r} has {len(vs)} values for {len(labels)} labels")
    left, right, top, bottom = 56, width - 16, 28, height - 26
    scale = _YScale(min(min(present), ZERO), max(max(present), ZERO), top, bottom)
    n = len(labels)
    step = Decimal(right - left) / Decimal(max(n - 1, 1))
    xs = [Decimal(left) + step * i if n > 1 else Decimal(left + right) / 2 for i in range(n)]
    body = _y_axis(scale, left, right, fmt)
    body += _x_labels(labels, xs, height - 8)
    colors = [_color(i, s.color, s.name) for i, (s, _) in enumerate(data)]
    for (s, vs), color in zip(data, colors, strict=True):
        runs: list[list[tuple[Decimal, Decimal]]] = [[]]
        for x, v in zip(xs, vs, strict=True):
            if v is None:
                if runs[-1]:
                    runs.append([])
                continue
            runs[-1].append((x, scale(v)))
        values_attr = _attr(",".join("" if v is None else _plain(v) for v in vs))
        body.append(f'<g class="series" data-series="{_attr(s.name)}" '
                    f'data-values="{values_attr}">')
        for run in runs:
            if not run:
                continue
            pts = " ".join(f"{_n(x)},{_n(y)}" for x, y in run)
            if area:
                z = _n(scale.zero)
                d = (f"M{_n(run[0][0])},{z} L" + " L".join(f"{_n(x)},{_n(y)}" for x, y in run)
                     + f" L{_n(run[-1][0])},{z} Z")
                body.append(f'<path d="{d}" fill="{color}" fill-opacity="0.16" stroke="none"/>')
            body.append(f'<polyline points="{pts}" fill="none" stroke="{color}" '
                        'stroke-width="2" stroke-linejoin="round" stroke-linecap="round"/>')
        dots = n <= 40
        for x, v, label in zip(xs, vs, labels, strict=True):
            if v is None:
                continue
            attrs, tip = _mark(s.name, label, v, fmt)
            r = "3" if dots else "0"
            body.append(f'<circle class="point" cx="{_n(x)}" cy="{_n(scale(v))}" r="{r}" '
                        f'fill="{color}" {attrs}>{tip}</circle>')
        body.append("</g>")
    if len(data) > 1 or data[0][0].name:
        body += _legend([(s.name, c) for (s, _), c in zip(data, colors, strict=True)],
                        left, 14, right - left)
    return _svg("area" if area else "line", width, height, title, body)


def bar_chart(
    labels: Sequence[str],
    values: Sequence[Number],
    *,
    name: str = "",
    color: str | None = None,
    width: int = 960,
    height: int = 240,
    fmt: Formatter = compact,
    title: str = "",
) -> Markup:
    """One vertical bar per label."""
    return stacked_bar_chart(labels, [Series(name, list(values), color)], width=width,
                             height=height, fmt=fmt, title=title, kind="bar")


def stacked_bar_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    width: int = 960,
    height: int = 260,
    fmt: Formatter = compact,
    title: str = "",
    totals: bool = False,
    kind: str = "stacked",
) -> Markup:
    """Series stacked per label: positive parts upwards from zero, negative downwards."""
    data = [(s, [ZERO if v is None else v for v in _vals(s.values)]) for s in series]
    if not labels or not data or all(v == 0 for _, vs in data for v in vs):
        return empty_chart(width=width, height=min(height, 160))
    for s, vs in data:
        if len(vs) != len(labels):
            raise ValueError(f"series {s.name!r} has {len(vs)} values for {len(labels)} labels")
    n = len(labels)
    pos = [sum((vs[i] for _, vs in data if vs[i] > 0), ZERO) for i in range(n)]
    neg = [sum((vs[i] for _, vs in data if vs[i] < 0), ZERO) for i in range(n)]
    has_legend = len(data) > 1 or bool(data[0][0].name)
    left, right, top, bottom = 56, width - 16, 28 if has_legend else 14, height - 26
    scale = _YScale(min(neg), max(pos), top, bottom)
    slot = Decimal(right - left) / n
    bar_w = min(slot * Decimal("0.7"), Decimal(48))
    xs = [Decimal(left) + slot * i + slot / 2 for i in range(n)]
    body = _y_axis(scale, left, right, fmt)
    body += _x_labels(labels, xs, height - 8, max_labels=max(4, (right - left) // 60))
    colors = [_color(i, s.color, s.name) for i, (s, _) in enumerate(data)]
    up = [ZERO] * n
    down = [ZERO] * n
    for (s, vs), color in zip(data, colors, strict=True):
        body.append(f'<g class="series" data-series="{_attr(s.name)}">')
        for i, v in enumerate(vs):
            if v == 0:
                continue
            if v > 0:
                y_top, y_bot = scale(up[i] + v), scale(up[i])
                up[i] += v
            else:
                y_top, y_bot = scale(down[i]), scale(down[i] + v)
                down[i] += v
            attrs, tip = _mark(s.name or labels[i], labels[i], v, fmt)
            h = max(y_bot - y_top, Decimal("0.5"))
            body.append(f'<rect class="bar" x="{_n(xs[i] - bar_w / 2)}" y="{_n(y_top)}" '
                        f'width="{_n(bar_w)}" height="{_n(h)}" fill="{color}" {attrs}>'
                        f"{tip}</rect>")
        body.append("</g>")
    if totals:
        for i in range(n):
            total = pos[i] + neg[i]
            body.append(f'<text class="total" x="{_n(xs[i])}" y="{_n(scale(pos[i]) - 4)}" '
                        f'text-anchor="middle" fill="{TEXT}" data-value="{_plain(total)}">'
                        f"{escape(fmt(total))}</text>")
    if has_legend:
        body += _legend([(s.name, c) for (s, _), c in zip(data, colors, strict=True)],
                        left, 14, right - left)
    return _svg(kind, width, height, title, body)


def hbar_chart(
    items: Sequence[tuple[str, Number]],
    *,
    name: str = "",
    width: int = 960,
    fmt: Formatter = compact,
    title: str = "",
    color: str | None = None,
    negative_color: str = BAD,
    label_width: int = 170,
    row: int = 24,
    kind: str = "hbar",
    hrefs: Sequence[str | None] | None = None,
) -> Markup:
    """Horizontal bars with labels on the left; negative values grow left of zero."""
    if not items:
        return empty_chart(width=width, height=100)
    vals = [D(v) for _, v in items]
    lo, hi = min(min(vals), ZERO), max(max(vals), ZERO)
    if lo == hi:
        hi = Decimal(1)
    value_room = 64
    left = label_width + 8
    right = width - value_room
    span = hi - lo
    height = 12 + row * len(items) + 8

    def x(v: Decimal) -> Decimal:
        return Decimal(left) + (v - lo) / span * (right - left)

    zero_x = x(ZERO)
    body: list[str] = [f'<line x1="{_n(zero_x)}" y1="6" x2="{_n(zero_x)}" '
                       f'y2="{height - 6}" stroke="{AXIS}" stroke-width="1"/>']
    pos_color = color or PALETTE[0]
    for i, ((label, _), v) in enumerate(zip(items, vals, strict=True)):
        y = Decimal(12 + row * i)
        bar_h = Decimal(row) * Decimal("0.62")
        x0, x1 = (zero_x, x(v)) if v >= 0 else (x(v), zero_x)
        fill = pos_color if v >= 0 else negative_color
        attrs, tip = _mark(name or "value", label, v, fmt)
        short = label if len(label) <= label_width // 7 else label[: label_width // 7 - 1] + "…"
        text = (f'<text x="{label_width}" y="{_n(y + bar_h / 2 + 4)}" text-anchor="end" '
                f'fill="{TEXT}">{escape(short)}<title>{escape(label)}</title></text>')
        href = hrefs[i] if hrefs is not None and i < len(hrefs) else None
        if href:
            text = f'<a href="{_attr(href)}">{text}</a>'
        body.append(text)
        body.append(f'<rect class="bar" x="{_n(x0)}" y="{_n(y)}" '
                    f'width="{_n(max(x1 - x0, Decimal("0.5")))}" height="{_n(bar_h)}" rx="2" '
                    f'fill="{fill}" {attrs}>{tip}</rect>')
        tx, anchor = (x1 + 4, "start") if v >= 0 else (x0 - 4, "end")
        if v < 0 and x0 - 4 < left + 40:
            tx, anchor = zero_x + 4, "start"
        body.append(f'<text x="{_n(tx)}" y="{_n(y + bar_h / 2 + 4)}" text-anchor="{anchor}" '
                    f'fill="{TEXT}">{escape(fmt(v))}</text>')
    return _svg(kind, width, height, title, body)


def delta_chart(
    items: Sequence[tuple[str, Number]],
    *,
    good: str = "positive",
    width: int = 960,
    fmt: Formatter = compact,
    title: str = "",
    limit: int | None = None,
    hrefs: Sequence[str | None] | None = None,
) -> Markup:
    """Winners and losers: bars around zero, sorted by value, green when good.

    ``good="positive"`` colours increases green (margin); ``good="negative"`` colours
    decreases green (a customer's bill after a price change). ``limit`` keeps that
    many from each end.
    """
    if good not in ("positive", "negative"):
        raise ValueError("good must be 'positive' or 'negative'")
    pairs = sorted(((label, D(v)) for label, v in items), key=lambda p: p[1], reverse=True)
    links = None
    if hrefs is not None:
        by_label = dict(zip((lbl for lbl, _ in items), hrefs, strict=False))
        links = [by_label.get(lbl) for lbl, _ in pairs]
    if limit is not None and len(pairs) > 2 * limit:
        pairs = pairs[:limit] + pairs[-limit:]
        if links is not None:
            links = links[:limit] + links[-limit:]
    pos, neg = (GOOD, BAD) if good == "positive" else (BAD, GOOD)
    return hbar_chart(pairs, name="change", width=width, fmt=fmt, title=title, color=pos,
                      negative_color=neg, kind="delta", hrefs=links)


def share_bar(
    parts: Sequence[tuple[str, Number]],
    *,
    width: int = 960,
    fmt: Formatter = compact,
    title: str = "",
) -> Markup:
    """One bar split into its parts' shares (negative parts are left out), with a legend."""
    vals = [(label, D(v)) for label, v in parts]
    positive = [(label, v) for label, v in vals if v > 0]
    total = sum((v for _, v in positive), ZERO)
    if total <= 0:
        return empty_chart(width=width, height=80)
    height = 64
    body: list[str] = []
    x = Decimal(0)
    names: list[tuple[str, str]] = []
    for i, (label, v) in enumerate(positive):
        color = _color(i, None, label)
        w = v / total * width
        pct = (v / total * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
        attrs, _ = _mark("share", label, v, fmt)
        body.append(f'<rect class="bar" x="{_n(x)}" y="22" width="{_n(w)}" height="22" '
                    f'fill="{color}" data-share="{pct}" {attrs}><title>{escape(label)}: '
                    f"{escape(fmt(v))} ({pct}%)</title></rect>")
        x += w
        names.append((f"{label} {pct}%", color))
    body += _legend(names, 0, 14, width)
    return _svg("share", width, height, title, body)


def meter_bar(
    used: Number,
    limit: Number | None,
    *,
    width: int = 320,
    label: str = "",
    fmt: Formatter = compact,
) -> Markup:
    """Usage against a limit: a track, the used part, amber from 80%, red at the limit."""
    u = D(used)
    cap = D(limit) if limit is not None else None
    height = 14
    body = [f'<rect x="0" y="2" width="{width}" height="10" rx="5" fill="{GRID}"/>']
    unlimited = cap is None or cap <= 0
    ratio = (Decimal(1) if u > 0 else ZERO) if unlimited else min(u / cap, Decimal(1))
    if cap is not None and cap > 0 and u >= cap:
        color = BAD
    elif cap is not None and cap > 0 and u >= cap * Decimal("0.8"):
        color = "#d99a1e"
    else:
        color = PALETTE[0]
    pct = "" if cap is None or cap <= 0 else _plain((u / cap * 100).quantize(Decimal("0.1")))
    w = ratio * width
    text = f"{fmt(u)} of {fmt(cap)}" if cap is not None else fmt(u)
    body.append(f'<rect class="bar" x="0" y="2" width="{_n(w)}" height="10" rx="5" '
                f'fill="{color}" data-series="used" data-label="{_attr(label)}" '
                f'data-value="{_plain(u)}" data-limit="{"" if cap is None else _plain(cap)}" '
                f'data-percent="{pct}"><title>{escape(label)} {escape(text)}</title></rect>')
    return _svg("meter", width, height, f"{label} {text}".strip(), body)


def sparkline(values: Sequence[Number | None], *, width: int = 120, height: int = 28,
              color: str | None = None) -> Markup:
    """A small line of ``values`` without axes (trend at a glance)."""
    vs = [v for v in _vals(values)]
    present = [v for v in vs if v is not None]
    if len(present) < 2:
        return Markup(f'<svg class="chart chart-spark" data-chart="spark" width="{width}" '
                      f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
                      'aria-label="not enough data"></svg>')
    lo, hi = min(present), max(present)
    span = hi - lo if hi != lo else Decimal(1)
    n = len(vs)
    pts = []
    for i, v in enumerate(vs):
        if v is None:
            continue
        x = Decimal(width - 4) * i / (n - 1) + 2
        y = Decimal(height - 4) - (v - lo) / span * (height - 8)
        pts.append(f"{_n(x)},{_n(y)}")
    data = _attr(",".join("" if v is None else _plain(v) for v in vs))
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-spark" data-chart="spark" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="trend"><polyline points="{" ".join(pts)}" fill="none" '
        f'stroke="{color or PALETTE[0]}" stroke-width="1.5" data-values="{data}"/></svg>'
    )
