"""``ratecard whatif``: margins under cost levers (routing, caching, batching, falling
prices), now and at 12, 24 and 36 months; ``--table`` recomputes the playbook's cost
projection with the real price book."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ratecard.cli.common import JsonOpt, WorkspaceOpt, console, print_json
from ratecard.clock import Window, parse_time, utc_now
from ratecard.costs.model import Unpriced
from ratecard.errors import InvalidInput, NotFound, Unavailable
from ratecard.money import D, to_str
from ratecard.simulate import whatif
from ratecard.workspace import Workspace


def parse_route(text: str) -> whatif.Route:
    """``SOURCE=TARGET:SHARE`` (``gpt-4o=gpt-4o-mini:0.6``)."""
    pair, sep, share = text.rpartition(":")
    source, eq, target = pair.partition("=")
    if not sep or not eq or not source or not target:
        raise InvalidInput(f"--route {text!r}: write SOURCE=TARGET:SHARE, e.g. "
                           "gpt-4o=gpt-4o-mini:0.6")
    return whatif.Route(source.strip(), target.strip(), D(share.strip()))


def _pct(v: Decimal | None) -> str:
    return "n/a" if v is None else f"{(v * 100).quantize(Decimal('0.1'))}%"


def _m(v: Decimal) -> str:
    return f"{v.quantize(Decimal('0.01')):,}"


def _workspace(path: object) -> Workspace | None:
    try:
        return Workspace.open(path)  # type: ignore[arg-type]
    except NotFound:
        return None


def whatif_command(
    start: Annotated[str | None, typer.Option(
        "--from", help="Start of the period (a date or RFC 3339; UTC without offset).")
                     ] = None,
    end: Annotated[str | None, typer.Option("--to", help="End of the period (exclusive).")
                   ] = None,
    route: Annotated[list[str] | None, typer.Option(
        "--route", help="SOURCE=TARGET:SHARE: move a share of a model's traffic "
                        "(repeatable).")] = None,
    cache_hit: Annotated[str | None, typer.Option(
        "--cache-hit", help="Share of prompt tokens read from the cache (0.5).")] = None,
    batch_share: Annotated[str | None, typer.Option(
        "--batch-share", help="Share of tokens sent through batch APIs (0.3).")] = None,
    decline: Annotated[str, typer.Option(
        "--decline", help="Model prices fall this many times every 3 years.")] = "10",
    plan: Annotated[list[str] | None, typer.Option(
        "--plan", help="Only subscriptions on this plan (repeatable).")] = None,
    table: Annotated[bool, typer.Option(
        "--table", help="The playbook's cost projection table with real prices.")] = False,
    frontier: Annotated[str, typer.Option(
        "--frontier", help="Frontier model for --table.")] = "gpt-4o",
    small: Annotated[str, typer.Option("--small", help="Small model for --table.")
                     ] = "gpt-4o-mini",
    tokens: Annotated[str, typer.Option("--tokens", help="Tokens a month for --table.")
                      ] = "50000000",
    mrr: Annotated[str, typer.Option("--mrr", help="Monthly revenue for --table.")] = "2000",
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Margins under cost what-ifs, now and projected at 12, 24 and 36 months."""
    from ratecard.costs.service import effective_book

    ws = _workspace(workspace)
    if table:
        book = effective_book(ws)
        rates = whatif_rates(book)
        try:
            rows = whatif.projection_table(rates, frontier=frontier, small=small,
                                           tokens=D(tokens), mrr=D(mrr))
        except Unpriced as e:
            raise InvalidInput(f"{e}; pick --frontier and --small models of the price "
                               "book (ratecard costs show MODEL)") from None
        if json:
            print_json({"frontier": frontier, "small": small, "tokens": D(tokens),
                        "mrr": D(mrr), "scenarios": [r.as_dict() for r in rows]})
            return
        t = Table(title=f"Cost projection: {to_str(D(tokens))} tokens a month at "
                        f"{to_str(D(mrr))} MRR ({frontier} / {small})",
                  title_justify="left")
        for col in ("scenario", "monthly cost", "gross margin", "optimization"):
            t.add_column(col, justify="right" if col in ("monthly cost", "gross margin")
                         else "left")
        for r in rows:
            t.add_row(r.name, _m(r.cost), _pct(r.margin), r.level)
        console.print(t)
        return
    if start is None or end is None:
        raise InvalidInput("give --from and --to (the period whose usage to re-cost), or "
                           "--table")
    if ws is None:
        Workspace.open(workspace)                 # raises the usual "no workspace" error
        return
    window = Window(parse_time(start, field="--from", default_tz="UTC"),
                    parse_time(end, field="--to", default_tz="UTC"))
    levers = whatif.Levers(
        routes=tuple(parse_route(r) for r in route or []),
        cache_hit=D(cache_hit) if cache_hit is not None else None,
        batch_share=D(batch_share) if batch_share is not None else D(0),
        decline=D(decline),
    )
    report = run_whatif(ws, window, levers, plan)
    if json:
        print_json(report.as_dict())
        return
    console.print("[bold]What-if[/bold]: " + escape("; ".join(levers.describe())),
                  soft_wrap=True)
    t = Table(title="margin per plan (revenue held at what the current plans bill)",
              title_justify="left")
    for col in ("plan", "revenue", "cost now", "margin now", *(
            f"margin {h}m" if h else "with levers" for h in whatif.HORIZONS)):
        t.add_column(col, justify="left" if col == "plan" else "right")
    for p in report.plans:
        t.add_row(escape(p.plan), _m(p.revenue), _m(p.cost(None)), _pct(p.margin(None)),
                  *(_pct(p.margin(h)) for h in whatif.HORIZONS))
    console.print(t)
    for n in report.notes:
        console.print(f"note: {escape(n)}", soft_wrap=True)


def whatif_rates(book: object) -> whatif.Rates:
    from ratecard.simulate.service import book_rates

    return book_rates(book, utc_now())  # type: ignore[arg-type]


def run_whatif(ws: Workspace, window: Window, levers: whatif.Levers,
               plans: list[str] | None) -> whatif.WhatIf:
    from ratecard.costs.service import applied_costs, effective_book
    from ratecard.simulate.service import what_if
    from ratecard.store.state import session_factory

    try:
        from ratecard.store.usage import open_usage_store
    except ImportError:  # pragma: no cover - the store ships with ratecard
        raise Unavailable("the usage store is not available in this installation") from None
    book = effective_book(ws, applied_costs(ws))
    store = open_usage_store(ws.usage_url, read_only=True)
    session = session_factory(ws)()
    try:
        return what_if(session, store, book, window, levers, plans=plans)
    finally:
        session.rollback()
        session.close()
        store.close()


def register(app: typer.Typer) -> None:
    app.command("whatif")(whatif_command)
