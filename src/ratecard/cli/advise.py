"""``ratecard advise``: the playbook's pricing decisions from a questionnaire or flags.

Prints the charge metric (with the path through the decision tree), the archetype and
its target margin, the price range, the BYOK recommendation and a three-tier catalog;
``--out FILE`` writes the catalog (validated) for ``ratecard catalog lint`` and
simulation. Flags override the questionnaire's answers.

The cost per task comes from ``--cost-per-task``, the questionnaire, or a workspace's
real usage (``--cost-meter METER`` with ``--from``/``--to``) once the unit-economics
report offers ``ratecard.analytics.cost_per_task``.
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ratecard.advisor.advice import GTM, Advice, advise
from ratecard.advisor.questionnaire import Answers, parse_answers, parse_questionnaire_text
from ratecard.cli.common import JsonOpt, WorkspaceOpt, console, print_json
from ratecard.clock import Window, parse_time
from ratecard.errors import InvalidInput
from ratecard.money import to_str
from ratecard.workspace import Workspace


def workspace_cost_per_task(workspace: Path | None, *, meter: str, start: str | None,
                            end: str | None) -> tuple[Decimal, str]:
    """The real cost of one unit of ``meter`` over ``[start, end)`` in a workspace.

    The seam to the unit-economics report: it calls
    ``ratecard.analytics.cost_per_task(workspace, meter=..., window=...)`` (returning a
    Decimal, or None when the meter had no usage) when that function exists.
    """
    if start is None or end is None:
        raise InvalidInput("--cost-meter needs --from and --to (the period whose real cost "
                           "per task to use)")
    window = Window(parse_time(start, field="--from", default_tz="UTC"),
                    parse_time(end, field="--to", default_tz="UTC"))
    ws = Workspace.open(workspace)
    analytics = importlib.import_module("ratecard.analytics")
    fn = getattr(analytics, "cost_per_task", None)
    if fn is None:
        raise InvalidInput("this installation cannot compute a cost per task from a workspace "
                           "yet (no unit-economics report); pass --cost-per-task instead")
    value = fn(ws, meter=meter, window=window)
    if value is None:
        raise InvalidInput(f"meter {meter!r} has no usage in the workspace between {start} and "
                           f"{end}; pick another period or pass --cost-per-task")
    return Decimal(value), f"workspace {ws.path}, meter {meter}, {start} to {end}"


def _read_questionnaire(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InvalidInput(f"{path}: cannot read the questionnaire ({e.strerror})") from None
    return parse_questionnaire_text(text, source=str(path))


def _pct(value: Decimal | None) -> str:
    return "n/a" if value is None else f"{(value * 100).quantize(Decimal('0.1'))}%"


def _money(value: Decimal | None, currency: str) -> str:
    return "n/a" if value is None else f"{to_str(value)} {currency}"


def print_advice(adv: Advice, out: Path | None) -> None:
    a = adv.answers
    cur = a.currency
    console.print("[bold]Charge metric[/bold]")
    for line in adv.decision.explain():
        console.print(f"  {escape(line)}", soft_wrap=True)
    reasons = escape("; ".join(adv.unit.reasons))
    console.print(f"  billing unit: {adv.unit.unit.value} ({reasons})", soft_wrap=True)
    arch = adv.archetype
    console.print(f"[bold]Archetype[/bold]  {arch.title}: target gross margin {arch.band} "
                  f"(floor {_pct(arch.target_margin)}); {arch.sales_motion}", soft_wrap=True)
    p = adv.price
    console.print("[bold]Price per unit[/bold]")
    if p.anchor == "human":
        human = to_str(p.human_equivalent_cost or Decimal(0))
        console.print(f"  range {_money(p.low, cur)} to {_money(p.high, cur)} "
                      f"(a tenth to a third of the human cost, {human})")
    else:
        console.print(f"  range {_money(p.low, cur)} to {_money(p.high, cur)} (cost-plus, "
                      f"the archetype's margin band)")
    console.print(f"  margin floor: {_money(p.floor, cur)}; recommended for {a.sales_motion}: "
                  f"[bold]{_money(p.recommended, cur)}[/bold] (margin "
                  f"{_pct(p.margin_at_recommended)})", soft_wrap=True)
    for n in p.notes:
        console.print(f"  note: {escape(n)}", soft_wrap=True)
    if adv.gap is not None:
        g = adv.gap
        max_cost = to_str(g.max_cost.quantize(Decimal("0.000001")))
        console.print(f"[bold]Cost gap[/bold]  cost per task must fall from "
                      f"{to_str(g.cost_per_task)} to {max_cost} "
                      f"({_pct(g.reduction_needed)} less); levers that can do it alone: "
                      + (", ".join(lv.name for lv in g.levers) or "none: combine several"),
                      soft_wrap=True)
    b = adv.byok
    console.print(f"[bold]BYOK[/bold]  {b.verdict}: {escape(b.summary)}", soft_wrap=True)
    gtm = GTM["byok" if b.verdict == "offer" else "hybrid"]
    console.print(f"[bold]Go-to-market[/bold]  {gtm['motion']}; {gtm['reps']}; comp: "
                  f"{gtm['comp']}", soft_wrap=True)
    if adv.tiers:
        unit = adv.meter.unit if adv.meter else "unit"
        t = Table(title=f"Tiers (per month, {cur}; unit: {unit}; margin at typical use "
                        "and with the allocation used up)", title_justify="left")
        for col in ("tier", "fee", "included", "overage", "typical", "revenue", "margin",
                    "at incl."):
            if col == "tier":
                t.add_column(col, no_wrap=True, min_width=10)
            else:
                t.add_column(col, justify="right")
        for tier in adv.tiers:
            fee = "free" if tier.free else to_str(tier.platform_fee)
            if tier.seat_price is not None:
                fee = f"{to_str(tier.seat_price)}×{tier.seats}"
            steps = [to_str(pr) for _, pr in tier.overage_steps]
            overage = (steps[0] if len(steps) == 1 else f"{steps[0]}→{steps[-1]}") if steps \
                else "capped"
            t.add_row(tier.name, fee, f"{tier.included:,}", overage,
                      f"{tier.expected_volume.quantize(Decimal(1)):,}",
                      to_str(tier.revenue_at(tier.expected_volume).quantize(Decimal("0.01"))),
                      _pct(tier.margin_at(tier.expected_volume)),
                      _pct(tier.margin_at(Decimal(tier.included))))
        console.print(t)
        console.print("annual prepay discounts: " + ", ".join(
            f"{tier.name} {_pct(tier.annual_discount)}" for tier in adv.tiers))
    if adv.findings:
        console.print("[bold]Lint of the generated catalog[/bold]")
        for f in adv.findings:
            console.print(f"  {f.severity} {escape(f.path)} {f.rule}: {escape(f.message)}",
                          soft_wrap=True)
    for n in adv.notes:
        console.print(f"note: {escape(n)}", soft_wrap=True)
    if out is not None:
        plans = len((adv.catalog or {}).get("plans", {}))
        console.print(f"wrote the catalog to {escape(str(out))} (validated, {plans} plans)")
    elif adv.catalog is not None:
        console.print("write the catalog with --out FILE")


def advise_command(
    questionnaire: Annotated[Path | None, typer.Option(
        "--questionnaire", "-q", help="YAML or JSON answers (flags override them).")] = None,
    product_type: Annotated[str | None, typer.Option(
        "--product-type", help="copilot | agent | service | api")] = None,
    buyer: Annotated[str | None, typer.Option(
        "--buyer", help="developer | business | enterprise | smb")] = None,
    outcome_measurable: Annotated[bool | None, typer.Option(
        "--outcome-measurable/--no-outcome-measurable",
        help="Can the customer measure a business outcome?", show_default=False)] = None,
    outcome_attributable: Annotated[bool | None, typer.Option(
        "--outcome-attributable/--no-outcome-attributable",
        help="Is the outcome attributable to this product alone?", show_default=False)] = None,
    discrete_tasks: Annotated[bool | None, typer.Option(
        "--discrete-tasks/--no-discrete-tasks",
        help="Are there discrete, countable tasks?", show_default=False)] = None,
    human_cost: Annotated[str | None, typer.Option(
        "--human-cost", help="What one unit of the work costs done by a human.")] = None,
    cost_per_task: Annotated[str | None, typer.Option(
        "--cost-per-task", help="What one unit costs you to serve.")] = None,
    expected_volume: Annotated[str | None, typer.Option(
        "--expected-volume", help="Units a typical Pro customer uses per month.")] = None,
    sales_motion: Annotated[str | None, typer.Option(
        "--sales-motion", help="self_serve | sales_assisted | enterprise")] = None,
    byok_requested: Annotated[bool | None, typer.Option(
        "--byok-requested/--no-byok-requested",
        help="Do buyers ask to bring their own model keys?", show_default=False)] = None,
    currency: Annotated[str | None, typer.Option("--currency", help="ISO currency.")] = None,
    unit: Annotated[str | None, typer.Option(
        "--unit", help="The noun billed (resolution, document, api call).")] = None,
    event: Annotated[str | None, typer.Option(
        "--event", help="The usage event type the meter counts.")] = None,
    free_tier: Annotated[bool | None, typer.Option(
        "--free-tier/--no-free-tier", help="Make the first tier free with a hard cap.",
        show_default=False)] = None,
    cost_meter: Annotated[str | None, typer.Option(
        "--cost-meter", help="Take the cost per task from this meter's real cost in the "
                             "workspace (with --from/--to).")] = None,
    start: Annotated[str | None, typer.Option("--from", help="Start of the cost period.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="End of the cost period.")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Write the generated catalog (YAML) here.")] = None,
    workspace: WorkspaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Recommend a charge metric, archetype margin, price range, BYOK and three tiers."""
    data = _read_questionnaire(questionnaire) if questionnaire is not None else {}
    overrides: dict[str, Any] = {
        "product_type": product_type, "buyer": buyer,
        "outcome_measurable": outcome_measurable,
        "outcome_attributable": outcome_attributable, "discrete_tasks": discrete_tasks,
        "human_equivalent_cost": human_cost, "cost_per_task": cost_per_task,
        "expected_volume": expected_volume, "sales_motion": sales_motion,
        "byok_requested": byok_requested, "currency": currency, "unit": unit,
        "event": event, "free_tier": free_tier,
    }
    source = None
    if cost_meter is not None:
        if cost_per_task is not None:
            raise InvalidInput("give --cost-per-task or --cost-meter, not both")
        value, source = workspace_cost_per_task(workspace, meter=cost_meter, start=start,
                                                end=end)
        overrides["cost_per_task"] = value
    answers = parse_answers(data, overrides,
                            source=str(questionnaire) if questionnaire else "flags")
    if source is not None:
        answers = _with_source(answers, source)
    adv = advise(answers)
    if out is not None:
        if adv.catalog_text is None:
            raise InvalidInput("--out needs expected_volume (--expected-volume N: units a "
                               "typical Pro customer uses per month) to size the tiers")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(adv.catalog_text, encoding="utf-8")
    if json_out:
        report = adv.as_dict()
        report["out"] = str(out) if out is not None else None
        print_json(report)
    else:
        print_advice(adv, out)


def _with_source(answers: Answers, source: str) -> Answers:
    return replace(answers, cost_source=source)


def register(app: typer.Typer) -> None:
    app.command("advise")(advise_command)
