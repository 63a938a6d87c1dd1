"""A backtest as a standalone HTML page: comparison, winners and losers, margins."""

from __future__ import annotations

from decimal import Decimal

from jinja2 import Environment, select_autoescape
from markupsafe import Markup

from ratecard.clock import iso
from ratecard.money import to_str
from ratecard.simulate.model import Backtest

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Backtest {{ start }} to {{ end }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border-bottom: 1px solid #ddd; padding: .25rem .6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.more { color: #b3261e; } .less { color: #1b7f3b; }
.assumption { background: #fff8e1; padding: .6rem 1rem; border-left: 4px solid #f0b400; }
</style></head><body>
<h1>Backtest {{ start }} to {{ end }}</h1>
<p class="assumption">{{ assumption }}</p>
<h2>Candidates compared</h2>
<table><tr><th>candidate</th><th>currency</th><th>customers</th><th>old</th><th>new</th>
<th>delta</th><th>delta %</th><th>pays more</th><th>pays less</th><th>unchanged</th>
<th>zero baseline</th><th>margin before</th><th>margin after</th></tr>
{% for r in comparison %}<tr><td>{{ r.candidate }}</td><td>{{ r.currency }}</td>
<td>{{ r.customers }}</td><td>{{ m(r.old) }}</td><td>{{ m(r.new) }}</td>
<td>{{ m(r.delta) }}</td><td>{{ p(r.delta_pct) }}</td><td>{{ r.pays_more }}</td>
<td>{{ r.pays_less }}</td><td>{{ r.unchanged }}</td><td>{{ r.zero_baseline }}</td>
<td>{{ p(r.margin_before) }}</td><td>{{ p(r.margin_after) }}</td></tr>{% endfor %}
</table>
{% for c in candidates %}
<h2>{{ c.name }}</h2>
{{ charts[loop.index0] }}
<h3>By plan</h3>
<table><tr><th>plan</th><th>customers</th><th>old</th><th>new</th><th>delta</th>
<th>margin before</th><th>margin after</th></tr>
{% for (cur, plan), t in c.by_plan.items() %}<tr><td>{{ plan }} ({{ cur }})</td>
<td>{{ t.customers }}</td><td>{{ m(t.old) }}</td><td>{{ m(t.new) }}</td>
<td>{{ m(t.delta) }}</td><td>{{ p(t.margin_before) }}</td><td>{{ p(t.margin_after) }}</td>
</tr>{% endfor %}</table>
<h3>By meter</h3>
<table><tr><th>meter</th><th>old</th><th>new</th><th>delta</th></tr>
{% for (cur, meter), a in c.by_meter.items() %}<tr><td>{{ meter }} ({{ cur }})</td>
<td>{{ m(a.old) }}</td><td>{{ m(a.new) }}</td><td>{{ m(a.delta) }}</td></tr>{% endfor %}
</table>
<h3>Distribution</h3>
<table><tr><th>change</th><th>customers</th></tr>
{% for b in c.distribution %}<tr><td>{{ b.label }}</td><td>{{ b.customers }}</td></tr>
{% endfor %}</table>
<h3>Every customer</h3>
<table><tr><th>customer</th><th>plan</th><th>old</th><th>new</th><th>delta</th>
<th>delta %</th><th>cost</th><th>margin before</th><th>margin after</th></tr>
{% for r in c.results %}<tr class="{{ r.outcome }}"><td>{{ r.customer }}</td>
<td>{{ r.plan }} v{{ r.version }}{% if r.new_plan %} → {{ r.new_plan }}{% endif %}</td>
<td>{{ m(r.old) }}</td><td>{{ m(r.new) }}</td><td>{{ m(r.delta) }}</td>
<td>{{ "zero baseline" if r.zero_baseline else p(r.delta_pct) }}</td>
<td>{{ m(r.cost) }}</td><td>{{ p(r.margin_before) }}</td><td>{{ p(r.margin_after) }}</td>
</tr>{% endfor %}</table>
{% if c.errors %}<h3>Errors</h3><ul>{% for e in c.errors %}
<li>{{ e.customer }}: {{ e.message }}</li>{% endfor %}</ul>{% endif %}
{% endfor %}
</body></html>
"""


def _money(v: Decimal | None) -> str:
    return "" if v is None else to_str(v)


def _pct(v: Decimal | None) -> str:
    return "" if v is None else f"{(v * 100).quantize(Decimal('0.1'))}%"


def render_html(bt: Backtest) -> str:
    """The backtest as one HTML page (inline SVG charts, no scripts)."""
    from ratecard.web.charts import delta_chart

    charts: list[Markup] = []
    for c in bt.candidates:
        items: list[tuple[str, Decimal | int]] = [(r.customer, r.delta) for r in c.results]
        if items:
            charts.append(delta_chart(items, good="negative", limit=25,
                                      title=f"{c.name}: change per customer"))
        else:
            charts.append(Markup(""))
    env = Environment(autoescape=select_autoescape(default=True))
    tmpl = env.from_string(_TEMPLATE)
    return tmpl.render(start=iso(bt.window.start), end=iso(bt.window.end),
                       assumption=bt.assumption, comparison=bt.comparison(),
                       candidates=bt.candidates, charts=charts, m=_money, p=_pct)
