"""Jinja2 templates and the display filters of the dashboard and the portal.

Filters format values that views computed; they never feed back into arithmetic:

* ``money(amount, currency)``: ``$1,234.50``, ``¥20.00``, ``CHF 12.00`` (rounded to the
  currency's minor unit with ROUND_HALF_UP, like invoice lines);
* ``qty(value)``: ``1,234,567`` or ``1,450.5`` (exact, grouped);
* ``compact(value)``: ``1.2M``;
* ``pct(fraction)``: ``0.253`` → ``25.3%``;
* ``when(dt, tz)``: ``2026-03-01 14:00 UTC`` (a datetime or an RFC 3339 string).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from ratecard.clock import ensure_utc, parse_time, zone
from ratecard.money import D, quantize
from ratecard.web import charts

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "CNY": "¥", "JPY": "¥", "INR": "₹",
           "KRW": "₩"}


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int | str):
        return D(value)
    raise TypeError(f"cannot display {value!r} as a number")


def money(value: Any, currency: str = "USD", *, sign: bool = False) -> str:
    """``$1,234.50`` (``-$5.00`` when negative; ``+`` too with ``sign``)."""
    v = _dec(value)
    if v is None:
        return "—"
    q = quantize(v, currency)
    symbol = SYMBOLS.get(currency.upper())
    body = f"{abs(q):,}"
    prefix = "-" if q < 0 else ("+" if sign and q > 0 else "")
    return f"{prefix}{symbol}{body}" if symbol else f"{prefix}{currency} {body}"


def qty(value: Any) -> str:
    v = _dec(value)
    if v is None:
        return "—"
    if v == v.to_integral_value():
        return f"{v.quantize(Decimal(1)):,}"
    text = format(v.normalize(), "f")
    whole, _, frac = text.partition(".")
    neg = whole.startswith("-")
    return f"{'-' if neg else ''}{int(whole.lstrip('-') or 0):,}.{frac}"


def compact(value: Any) -> str:
    v = _dec(value)
    return "—" if v is None else charts.compact(v)


def pct(value: Any, places: int = 1) -> str:
    v = _dec(value)
    if v is None:
        return "—"
    return f"{(v * 100).quantize(Decimal(1).scaleb(-places)):,}%"


def when(value: Any, tz: str | None = None, *, date_only: bool = False) -> str:
    if value is None or value == "":
        return "—"
    dt = parse_time(value) if isinstance(value, str) else ensure_utc(value)
    name = tz or "UTC"
    local = dt.astimezone(zone(name))
    if date_only:
        return local.strftime("%Y-%m-%d")
    return local.strftime("%Y-%m-%d %H:%M") + f" {local.tzname() or name}"


def day(value: Any, tz: str | None = None) -> str:
    return when(value, tz, date_only=True)


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(money=money, qty=qty, compact=compact, pct=pct, when=when, day=day)
    env.globals["charts"] = charts
    return env


ENV = _env()


def render(name: str, **context: Any) -> str:
    return ENV.get_template(name).render(**context)


def page(name: str, **context: Any) -> Markup:
    return Markup(render(name, **context))


def static_file(name: str) -> Path | None:
    """A file of the static folder by its plain name (no folders, no traversal)."""
    if "/" in name or "\\" in name or name.startswith("."):
        return None
    path = STATIC / name
    return path if path.is_file() else None


def now_utc() -> datetime:
    from ratecard.clock import utc_now

    return utc_now()
