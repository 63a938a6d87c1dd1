"""``ratecard costs import|show|quote``: the model price book and the cost of a request."""

from __future__ import annotations

import difflib
import json as jsonlib
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ratecard.catalog import load_catalog
from ratecard.catalog.schema import Costs
from ratecard.cli.common import JsonOpt, WorkspaceOpt, console, print_json
from ratecard.clock import iso, parse_time, utc_now
from ratecard.costs.model import (
    TOKEN_KINDS,
    CostBreakdown,
    ModelPrice,
    PriceBook,
    TokenUsage,
    Unpriced,
    dec_str,
)
from ratecard.costs.rules import cost_of_request, resolve_rate
from ratecard.costs.service import (
    applied_costs,
    effective_book,
    import_price_file,
    pricebook_path,
)
from ratecard.costs.usage import normalise_usage, usage_from_properties
from ratecard.errors import NotFound, UsageInvalid
from ratecard.workspace import Workspace, default_dir

costs_app = typer.Typer(help="Model prices (the cost of goods) and the cost of a request.",
                        no_args_is_help=True)

CatalogOpt = Annotated[Path | None, typer.Option(
    "--catalog", help="Catalog file or folder whose costs: override the price book (default: "
                      "the catalog applied in the workspace).", show_default=False)]
AtOpt = Annotated[str | None, typer.Option(
    "--at", help="Prices in force at this time (RFC 3339 or a date; default now).",
    show_default=False)]
ProviderOpt = Annotated[str | None, typer.Option("--provider", help="Provider of the request.",
                                                 show_default=False)]
RegionOpt = Annotated[str | None, typer.Option("--region", help="Region of the request.",
                                               show_default=False)]


def per_million(value: Decimal) -> str:
    return dec_str(value.scaleb(6))


def open_workspace(path: Path | None, *, create: bool = False) -> Workspace | None:
    """The workspace named, or the default one if it exists (``None`` when there is none)."""
    if path is not None or create:
        return Workspace.open(path, create=create)
    try:
        return Workspace.open(default_dir())
    except NotFound:
        return None


def book_for(workspace: Path | None, catalog: Path | None) -> PriceBook:
    ws = open_workspace(workspace)
    costs: Costs | None
    if catalog is not None:
        costs = load_catalog(catalog).costs
    else:
        costs = applied_costs(ws) if ws is not None else None
    return effective_book(ws, costs)


def _time(at: str | None) -> datetime:
    return parse_time(at, field="--at", default_tz="UTC") if at else utc_now()


def _unknown(book: PriceBook, model: str) -> Unpriced:
    close = difflib.get_close_matches(model, book.models(), n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return Unpriced(model, f"it is not in the price book{hint}")  # close names help here


# --------------------------------------------------------------------------- import


@costs_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="A LiteLLM price map (model_prices_and_context_"
                                              "window.json), a ratecard price book or a "
                                              "catalog costs file.")],
    valid_from: Annotated[str | None, typer.Option(
        "--valid-from", help="The file's prices apply from this time; earlier prices of the "
                             "same models stay in force before it.", show_default=False)] = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Store FILE as the workspace's price book (pricebook.json in the workspace folder)."""
    ws = open_workspace(workspace, create=True)
    assert ws is not None
    start = parse_time(valid_from, field="--valid-from", default_tz="UTC") if valid_from else None
    result, book = import_price_file(ws, file, valid_from=start)
    summary = {
        "file": str(file), "format": result.format, "models": len(result.book),
        "stored_models": len(book), "pricebook": str(pricebook_path(ws)),
        "valid_from": iso(start) if start else None,
        "skipped": [{"model": m, "reason": r} for m, r in result.skipped],
        "ignored_fields": dict(sorted(result.ignored_fields.items())),
    }
    if json:
        print_json(summary)
        return
    n = len(result.book)
    console.print(f"imported {n} model{'s' if n != 1 else ''} from {escape(str(file))} "
                  f"({result.format}) into {escape(str(pricebook_path(ws)))}")
    if start:
        console.print(f"their prices apply from {iso(start)}; the book holds {len(book)} models")
    if result.skipped:
        console.print(f"skipped {len(result.skipped)} entries without a per-token input price "
                      "(image, audio, video, search models)")
    if result.ignored_fields:
        top = sorted(result.ignored_fields.items(), key=lambda kv: -kv[1])[:6]
        console.print("price fields not imported: " + ", ".join(f"{k} ({n})" for k, n in top)
                      + (" ..." if len(result.ignored_fields) > 6 else ""), markup=False)


# --------------------------------------------------------------------------- show


def _rate_cell(price: ModelPrice, prompt: int, batch: bool, kind: str) -> tuple[str, str]:
    try:
        r = resolve_rate(price, prompt, batch, kind)
    except Unpriced:
        return "unpriced", "no price"
    return per_million(r.price), (r.default or "")


def version_doc(price: ModelPrice, at: datetime) -> dict[str, Any]:
    """One version with its effective prices per million (defaults applied) per tier."""
    tiers = [("base", 0)] + [(f"above {t.above}", t.above + 1) for t in price.long_context]
    prices: dict[str, Any] = {}
    for label, prompt in tiers:
        block: dict[str, Any] = {}
        for kind in TOKEN_KINDS:
            for batch in (False, True):
                try:
                    r = resolve_rate(price, prompt, batch, kind)
                    block[f"{'batch_' if batch else ''}{kind}"] = {
                        "usd_per_million": per_million(r.price), "basis": r.basis,
                        "default": r.default}
                except Unpriced:
                    block[f"{'batch_' if batch else ''}{kind}"] = None
        prices[label] = block
    return {
        "model": price.model, "provider": price.provider, "region": price.region,
        "valid_from": iso(price.valid_from) if price.valid_from else None,
        "valid_to": iso(price.valid_to) if price.valid_to else None,
        "in_force": price.active_at(at), "source": price.source,
        "per_request": dec_str(price.per_request) if price.per_request is not None else None,
        "long_context_thresholds": [t.above for t in price.long_context],
        "prices": prices,
    }


@costs_app.command("show")
def show(
    model: Annotated[str, typer.Argument(help="Model name as events carry it.")],
    at: AtOpt = None,
    catalog: CatalogOpt = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Print every price version of MODEL (USD per million tokens) and which applies when."""
    book = book_for(workspace, catalog)
    when_any = utc_now()
    versions = sorted(book.versions(model), key=lambda v: (
        v.valid_from is not None, v.valid_from or when_any, v.provider or "", v.region or ""))
    if not versions:
        raise _unknown(book, model)
    when = _time(at)
    docs = [version_doc(v, when) for v in versions]
    if json:
        print_json({"model": model, "at": iso(when), "versions": docs})
        return
    for v, doc in zip(versions, docs, strict=True):
        where = ", ".join(x for x in (v.provider and f"provider {v.provider}",
                                      v.region and f"region {v.region}") if x)
        state = "in force" if doc["in_force"] else "not in force"
        console.print(f"[bold]{escape(model)}[/bold] {escape(where)} {v.validity()}: "
                      f"{state} at {iso(when)}")
        console.print(f"  source: {escape(v.source or book.source)}")
        t = Table(show_edge=False, pad_edge=False)
        t.add_column("USD / 1M tokens")
        tiers = [("", 0)] + [(f" above {tr.above}", tr.above + 1) for tr in v.long_context]
        for label, _ in tiers:
            t.add_column(f"standard{label}", justify="right")
            t.add_column(f"batch{label}", justify="right")
        notes: list[str] = []
        for kind in TOKEN_KINDS:
            cells = []
            for _, prompt in tiers:
                for batch in (False, True):
                    text, note = _rate_cell(v, prompt, batch, kind)
                    if note and note != "no price":
                        text += "*"
                        if note not in notes:
                            notes.append(note)
                    cells.append(text)
            t.add_row(kind, *cells)
        console.print(t)
        if v.per_request is not None:
            console.print(f"  per request: {dec_str(v.per_request)} USD")
        for n in notes:
            console.print(f"  * default: {escape(n)}")


# --------------------------------------------------------------------------- quote


def parse_usage_arg(text: str, batch: bool) -> TokenUsage:
    """``--usage``: inline JSON, ``@FILE`` or a path to a JSON file."""
    raw = text.strip()
    if raw.startswith("@") or (not raw.startswith("{") and Path(raw).is_file()):
        path = Path(raw.removeprefix("@"))
        try:
            raw = path.read_text(encoding="utf-8")
        except OSError:
            raise UsageInvalid(f"--usage: cannot read {path}") from None
    try:
        obj = jsonlib.loads(raw, parse_float=Decimal)
    except jsonlib.JSONDecodeError as e:
        raise UsageInvalid(f"--usage: not valid JSON ({e.msg} at column {e.colno}); give an "
                           "object like '{\"input_tokens\": 1000, \"output_tokens\": 200}'"
                           ) from None
    if not isinstance(obj, dict):
        raise UsageInvalid("--usage: expected a JSON object of token counts")
    if "usage" in obj:
        u = usage_from_properties(obj)
    else:
        flag = obj.pop("batch", None)
        u = normalise_usage(obj, batch=bool(flag is True))
    if batch and not u.batch:
        u = TokenUsage(**{**u.as_dict(), "batch": True})  # type: ignore[arg-type]
    return u


def breakdown_json(b: CostBreakdown, provider: str | None = None,
                   region: str | None = None) -> dict[str, Any]:
    p = b.price
    return {
        "at": iso(b.at),
        "price": {"provider": p.provider, "region": p.region,
                  "valid_from": iso(p.valid_from) if p.valid_from else None,
                  "valid_to": iso(p.valid_to) if p.valid_to else None, "source": p.source},
        "requested": {"provider": provider, "region": region},
        "batch": b.batch,
        "usage": b.usage.as_dict(),
        "prompt_tokens": b.usage.prompt,
        "long_context_above": b.long_context_above,
        "lines": [{"kind": ln.kind, "tokens": ln.tokens,
                   "usd_per_million": per_million(ln.unit_price) if ln.kind != "request"
                   else None,
                   "unit_price": dec_str(ln.unit_price), "amount": dec_str(ln.amount),
                   "basis": ln.basis} for ln in b.lines],
        "defaults": list(b.defaults),
    }


@costs_app.command("quote")
def quote(
    model: Annotated[str, typer.Option("--model", help="Model name as events carry it.")],
    usage: Annotated[str, typer.Option(
        "--usage", help="Token usage as JSON (any provider's usage object or ratecard's "
                        "buckets), @FILE or a JSON file path.")],
    batch: Annotated[bool, typer.Option("--batch", help="A batch-API request.")] = False,
    at: AtOpt = None,
    provider: ProviderOpt = None,
    region: RegionOpt = None,
    catalog: CatalogOpt = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Price one request: every token kind, the price used and any default applied."""
    u = parse_usage_arg(usage, batch)
    book = book_for(workspace, catalog)
    if model not in book:
        raise _unknown(book, model)
    b = cost_of_request(book, model, u, _time(at), provider=provider, region=region)
    if json:
        print_json({"model": model, "cost": dec_str(b.total),
                    "breakdown": breakdown_json(b, provider, region)})
        return
    head = f"{escape(model)} at {iso(b.at)}"
    if b.batch:
        head += " (batch)"
    if b.long_context_above is not None:
        head += f", long context: prompt {b.usage.prompt} > {b.long_context_above}"
    console.print(head)
    t = Table(show_edge=False, pad_edge=False)
    t.add_column("kind")
    t.add_column("tokens", justify="right")
    t.add_column("USD / 1M", justify="right")
    t.add_column("USD", justify="right")
    t.add_column("price used")
    for ln in b.lines:
        rate = per_million(ln.unit_price) if ln.kind != "request" else "per request"
        t.add_row(ln.kind, f"{ln.tokens:,}", rate, dec_str(ln.amount), escape(ln.basis))
    t.add_section()
    t.add_row("[bold]total[/bold]", f"{b.usage.total:,}", "", f"[bold]{dec_str(b.total)}[/bold]",
              "")
    console.print(t)
    for d in b.defaults:
        console.print(f"default: {escape(d)}")


# --------------------------------------------------------------------------- unpriced


def _month_start(at: datetime) -> datetime:
    return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@costs_app.command("unpriced")
def unpriced(
    start: Annotated[str | None, typer.Option(
        "--from", help="Window start (default: the start of this month, UTC).",
        show_default=False)] = None,
    end: Annotated[str | None, typer.Option(
        "--to", help="Window end, exclusive (default: now).", show_default=False)] = None,
    catalog: CatalogOpt = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Name the models of stored llm.request events that have no price, and why."""
    from ratecard.analytics.service import open_store, usage_costs
    from ratecard.clock import Window

    ws = Workspace.open(workspace)
    now = utc_now()
    window = Window(parse_time(start, field="--from", default_tz="UTC") if start
                    else _month_start(now),
                    parse_time(end, field="--to", default_tz="UTC") if end else now)
    book = book_for(workspace or ws.path, catalog)
    store = open_store(ws)
    if store is None:
        raise NotFound(f"no usage store in {ws.path}: ingest events first "
                       "(`ratecard events ingest FILE`)")
    try:
        result = usage_costs(store, book, window)
    finally:
        store.close()
    rows = [{"model": u.model, "events": u.events, "customers": u.customers,
             "reason": u.reason, "first": iso(u.first_at) if u.first_at else None,
             "last": iso(u.last_at) if u.last_at else None} for u in result.unpriced]
    if json:
        print_json({"from": iso(window.start), "to": iso(window.end), "events": result.events,
                    "priced_events": result.priced_events,
                    "unpriced_events": result.unpriced_events, "unpriced": rows})
        return
    console.print(f"{result.events:,} llm.request events from {iso(window.start)} to "
                  f"{iso(window.end)}: {result.priced_events:,} priced, "
                  f"{result.unpriced_events:,} unpriced")
    if not rows:
        return
    t = Table(show_edge=False, pad_edge=False)
    for col in ("model", "events", "customers", "first", "last", "reason"):
        t.add_column(col, justify="right" if col in ("events", "customers") else "left")
    for r in rows:
        t.add_row(escape(r["model"]), f"{r['events']:,}", str(r["customers"]), r["first"] or "",
                  r["last"] or "", escape(r["reason"]))
    console.print(t)


def register(app: typer.Typer) -> None:
    app.add_typer(costs_app, name="costs")
