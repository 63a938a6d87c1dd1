"""``ratecard simulate``: backtest candidate catalogs on the workspace's real usage.

Rates the same historical usage under the current plan versions and under each
candidate (up to 10), with billing's own rules, changing no stored state.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ratecard.billing.usage import StoreUsage, UsageSource
from ratecard.cli.common import JsonOpt, WorkspaceOpt, console, print_json
from ratecard.clock import Window, parse_time, utc_now
from ratecard.errors import Unavailable
from ratecard.money import D
from ratecard.simulate.migration import MigrationPlan, price_response
from ratecard.simulate.model import Backtest, CandidateReport
from ratecard.simulate.service import backtest, load_candidate, migration_plans, parse_mapping
from ratecard.store.state import session_factory
from ratecard.workspace import Workspace


def _pct(v: Decimal | None) -> str:
    return "n/a" if v is None else f"{(v * 100).quantize(Decimal('0.1'))}%"


def _m(v: Decimal | None) -> str:
    return "n/a" if v is None else f"{v:,}"


def read_only_usage(ws: Workspace) -> UsageSource:
    """The workspace's usage store, opened read-only."""
    try:
        from ratecard.store.usage import open_usage_store  # type: ignore[import-not-found]
    except ImportError:
        raise Unavailable("the usage store is not available in this installation; "
                          "a backtest needs recorded usage") from None
    return StoreUsage(open_usage_store(ws.usage_url, read_only=True))


def print_report(rep: CandidateReport, limit: int | None) -> None:
    console.print(f"[bold]Candidate {escape(rep.name)}[/bold]: {rep.replaced} subscription(s) "
                  "moved to its plans", soft_wrap=True)
    t = Table(title="totals", title_justify="left")
    for col in ("currency", "customers", "old", "new", "delta", "delta %", "more", "less",
                "same", "zero base", "margin before", "after"):
        t.add_column(col, justify="left" if col == "currency" else "right")
    for cur, tot in rep.totals.items():
        t.add_row(cur, str(tot.customers), _m(tot.old), _m(tot.new), _m(tot.delta),
                  _pct(tot.delta_pct), str(tot.pays_more), str(tot.pays_less),
                  str(tot.unchanged), str(tot.zero_baseline), _pct(tot.margin_before),
                  _pct(tot.margin_after))
    console.print(t)
    d = Table(title="distribution of the change", title_justify="left")
    d.add_column("change")
    d.add_column("customers", justify="right")
    for b in rep.distribution:
        d.add_row(b.label, str(b.customers))
    console.print(d)
    p = Table(title="by plan", title_justify="left")
    for col in ("plan", "customers", "old", "new", "delta", "margin before", "after"):
        p.add_column(col, justify="left" if col == "plan" else "right")
    for (cur, plan), tot in rep.by_plan.items():
        p.add_row(f"{escape(plan)} ({cur})", str(tot.customers), _m(tot.old), _m(tot.new),
                  _m(tot.delta), _pct(tot.margin_before), _pct(tot.margin_after))
    console.print(p)
    mt = Table(title="by meter", title_justify="left")
    for col in ("meter", "old", "new", "delta"):
        mt.add_column(col, justify="left" if col == "meter" else "right")
    for (cur, meter), a in rep.by_meter.items():
        mt.add_row(f"{escape(meter)} ({cur})", _m(a.old), _m(a.new), _m(a.delta))
    console.print(mt)
    ct = Table(title="every customer, largest increase first", title_justify="left")
    for col in ("customer", "plan", "old", "new", "delta", "delta %", "margin before",
                "after"):
        ct.add_column(col, justify="left" if col in ("customer", "plan") else "right")
    shown = rep.results if limit is None else rep.results[:limit]
    for r in shown:
        plan = f"{r.plan} v{r.version}" + (f" → {r.new_plan}" if r.new_plan else "")
        ct.add_row(escape(r.customer), escape(plan), _m(r.old), _m(r.new), _m(r.delta),
                   "zero baseline" if r.zero_baseline else _pct(r.delta_pct),
                   _pct(r.margin_before), _pct(r.margin_after))
    console.print(ct)
    if limit is not None and len(rep.results) > limit:
        console.print(f"... {len(rep.results) - limit} more (drop --limit, or use --json)")
    for e in rep.errors:
        console.print(f"[red]error[/red] {escape(e.customer)}: {escape(e.message)}",
                      soft_wrap=True)


def print_backtest(bt: Backtest, limit: int | None) -> None:
    console.print(f"Backtest {bt.window.start:%Y-%m-%d %H:%M} to {bt.window.end:%Y-%m-%d %H:%M}"
                  f" UTC: {bt.customers} customer(s)")
    console.print(f"[yellow]Assumption:[/yellow] {escape(bt.assumption)}", soft_wrap=True)
    for rep in bt.candidates:
        print_report(rep, limit)
    if len(bt.candidates) > 1:
        t = Table(title="candidates compared", title_justify="left")
        for col in ("candidate", "cur", "old", "new", "delta", "delta %", "more", "less",
                    "margin after"):
            t.add_column(col, justify="left" if col in ("candidate", "cur") else "right")
        for row in bt.comparison():
            t.add_row(escape(row["candidate"]), row["currency"], _m(row["old"]),
                      _m(row["new"]), _m(row["delta"]), _pct(row["delta_pct"]),
                      str(row["pays_more"]), str(row["pays_less"]),
                      _pct(row["margin_after"]))
        console.print(t)


def print_migration(mp: MigrationPlan, limit: int | None) -> None:
    console.print(f"[bold]Migration plan[/bold] for {escape(mp.candidate)} (first-term cap "
                  f"{_pct(mp.cap)}; never mid-contract; at renewal: move, or stay with "
                  "+10-15%)", soft_wrap=True)
    st = Table(title="paths", title_justify="left")
    for col in ("path", "customers", "old", "new", "first term"):
        st.add_column(col, justify="left" if col == "path" else "right")
    for path, row in mp.summary().items():
        st.add_row(path, str(row["customers"]), _m(row["old"]), _m(row["new"]),
                   _m(row["first_term"]))
    console.print(st)
    t = Table(title="schedule", title_justify="left")
    for col in ("customer", "path", "renewal", "old", "new", "first term", "likely"):
        t.add_column(col, justify="right" if col in ("old", "new", "first term") else "left")
    steps = mp.steps if limit is None else mp.steps[:limit]
    for s in steps:
        t.add_row(escape(s.customer), s.path,
                  f"{s.renewal_at:%Y-%m-%d}" if s.renewal_at else "",
                  _m(s.old), _m(s.new), _m(s.first_term), s.choice)
    console.print(t)
    commands = [s.command for s in steps if s.command]
    if commands:
        console.print(f"to carry it out, apply the candidate (ratecard catalog apply "
                      f"{escape(mp.candidate)}), then:", soft_wrap=True)
        for c in commands:
            console.print(f"  {escape(c)}", soft_wrap=True)


def simulate(
    candidate: Annotated[list[Path], typer.Option(
        "--candidate", "-c", help="Candidate catalog file (repeat for up to 10).")],
    start: Annotated[str, typer.Option(
        "--from", help="Start of the period (RFC 3339; a date or a time without an offset "
                       "is UTC).")],
    end: Annotated[str, typer.Option("--to", help="End of the period (exclusive).")],
    plan: Annotated[list[str] | None, typer.Option(
        "--plan", help="Only subscriptions on this current plan (repeatable).")] = None,
    mapping: Annotated[list[str] | None, typer.Option(
        "--map", help="CURRENT=CANDIDATE: the candidate plan replacing a current plan "
                      "(default: the same code).")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Also write an HTML report.")
                    ] = None,
    limit: Annotated[int | None, typer.Option(
        "--limit", help="Print only this many customers per candidate (JSON has all).")
                     ] = None,
    migration: Annotated[bool, typer.Option(
        "--migration", help="Also plan the migration: a path and renewal date per "
                            "customer.")] = False,
    cap: Annotated[str | None, typer.Option(
        "--cap", help="Largest first-term increase when moving (fraction, default 0.10).")
                   ] = None,
    at: Annotated[str | None, typer.Option(
        "--at", help="Renewals are the first after this time (default now).")] = None,
    churn_per_pct: Annotated[str | None, typer.Option(
        "--churn-per-pct", help="Assumed chance a customer leaves per 1% of increase "
                                "(0.005 = 0.5%): adds an expected revenue.")] = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Backtest candidate catalogs: who pays more, who pays less, and the margins."""
    window = Window(parse_time(start, field="--from", default_tz="UTC"),
                    parse_time(end, field="--to", default_tz="UTC"))
    cap_value = D(cap) if cap is not None else None
    churn = D(churn_per_pct) if churn_per_pct is not None else None
    ref = parse_time(at, field="--at", default_tz="UTC") if at is not None else utc_now()
    maps = parse_mapping(mapping or [])
    cands = [load_candidate(c, mapping=maps, plans=plan) for c in candidate]
    ws = Workspace.open(workspace)
    source = read_only_usage(ws)
    session = session_factory(ws)()
    plans_out: list[MigrationPlan] = []
    try:
        bt = backtest(session, source, cands, window, plans=plan)
        if migration:
            plans_out = migration_plans(session, bt, ref, cap=cap_value)
    finally:
        session.rollback()           # a simulation never writes
        session.close()
        close = getattr(getattr(source, "store", None), "close", None)
        if close is not None:
            close()
    if html is not None:
        from ratecard.simulate.report import render_html

        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render_html(bt), encoding="utf-8")
    responses = [x for rep in bt.candidates for x in price_response(rep, churn)] \
        if churn is not None else []
    if json:
        data = bt.as_dict()
        data["html"] = str(html) if html else None
        if migration:
            data["migration"] = [p.as_dict() for p in plans_out]
        if churn is not None:
            data["price_response"] = [r.as_dict() for r in responses]
        print_json(data)
        return
    print_backtest(bt, limit)
    for mp in plans_out:
        print_migration(mp, limit)
    for r in responses:
        console.print(f"[bold]Expected revenue[/bold] {escape(r.candidate)} ({r.currency}): "
                      f"{_m(r.expected.quantize(Decimal('0.01')))} of {_m(r.new)}, "
                      f"{r.expected_churn.quantize(Decimal('0.01'))} customers expected to "
                      f"leave ({escape(r.assumption)})", soft_wrap=True)
    if html is not None:
        console.print(f"wrote {escape(str(html))}")


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)

