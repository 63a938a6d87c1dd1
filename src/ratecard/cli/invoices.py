"""``ratecard invoices run|list|show|render|finalize|void|pay|credit``."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ratecard.billing import invoices as svc
from ratecard.billing.render import invoice_html, invoice_pdf
from ratecard.billing.usage import open_usage_source
from ratecard.cli.common import JsonOpt, WorkspaceOpt, console, console_err, print_json
from ratecard.clock import parse_time, utc_now
from ratecard.errors import InvalidInput
from ratecard.money import D
from ratecard.store.state import session_scope
from ratecard.workspace import Workspace

invoices_app = typer.Typer(help="Invoice runs, invoices, voids and credit notes.",
                           no_args_is_help=True)

AtOpt = Annotated[str | None, typer.Option(
    "--at", help="Act as of this time (RFC 3339 or a date in UTC; default now).")]


@invoices_app.command("run")
def run(
    at: AtOpt = None,
    customer: Annotated[str | None, typer.Option("--customer", help="Only this customer.")]
    = None,
    shard: Annotated[str | None, typer.Option(
        "--shard", help="Bill only shard I of N (I/N, e.g. 2/3): N machines split the "
        "customers by a stable hash; overlapping or repeated runs are harmless.")] = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Bill every subscription whose period has ended by --at: create, re-rate, finalize."""
    part = _shard(shard) if shard is not None else None
    ws = Workspace.open(workspace)
    when = parse_time(at, field="--at", default_tz="UTC") if at else utc_now()
    settings = svc.BillingSettings.from_workspace(ws)
    source = open_usage_source(ws.usage_url)
    with Progress(TextColumn("invoice run"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console_err, transient=True,
                  disable=json or not console_err.is_terminal) as bar:
        task = bar.add_task("run", total=None)
        report = svc.run_invoices(
            lambda: session_scope(ws), when, source, settings=settings, customer=customer,
            shard=part,
            progress=lambda n: bar.advance(task, n),
            on_total=lambda n: bar.update(task, total=n),
        )
    if json:
        print_json(report.as_dict())
    else:
        console.print(
            f"invoice run at {report.as_dict()['at']}: {report.subscriptions} subscriptions, "
            f"{report.created} invoices created, {report.rerated} re-rated, "
            f"{report.unchanged} unchanged, {report.finalized} finalized"
            + (f", {report.removed} empty drafts removed" if report.removed else ""))
        for e in report.errors:
            console_err.print(f"error: subscription {e.subscription} ({e.customer}): "
                              f"{e.message}", markup=False, highlight=False)
    if report.errors:
        raise typer.Exit(1)


def _shard(text: str) -> tuple[int, int]:
    i, sep, n = text.partition("/")
    if not sep or not i.strip().isdigit() or not n.strip().isdigit():
        raise InvalidInput(f"--shard {text!r}: write I/N, like 1/3 (shard 1 of 3)")
    part, total = int(i), int(n)
    if total < 1 or not 1 <= part <= total:
        raise InvalidInput(f"--shard {text!r}: I must be between 1 and N (N at least 1)")
    return part, total


def _table(rows: list[dict[str, Any]]) -> Table:
    t = Table(title=f"{len(rows)} invoices", title_justify="left")
    for col in ("id", "number", "customer", "status", "period", "total"):
        t.add_column(col, justify="right" if col == "total" else "left")
    for r in rows:
        t.add_row(str(r["id"]), r["number"] or "", escape(r["customer"]), r["status"],
                  f"{r['period_start'][:10]} – {r['period_end'][:10]}",
                  f"{r['currency']} {D(r['total']):,}")
    return t


@invoices_app.command("list")
def list_(
    customer: Annotated[str | None, typer.Option("--customer", help="Only this customer.")]
    = None,
    status: Annotated[str | None, typer.Option(
        "--status", help="draft, finalized, paid or void.")] = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """List invoices."""
    with session_scope(Workspace.open(workspace)) as s:
        rows = svc.list_invoices(s, customer=customer, status=status)
    if json:
        print_json(rows)
    else:
        console.print(_table(rows))


def print_invoice(inv: dict[str, Any]) -> None:
    title = inv["number"] or f"draft {inv['id']}"
    console.print(f"[bold]invoice {escape(title)}[/bold]  {inv['status']}  customer "
                  f"{escape(inv['customer'])}  period {inv['period_start']} – "
                  f"{inv['period_end']}")
    t = Table(show_header=True)
    for col, just in (("#", "right"), ("description", "left"), ("quantity", "right"),
                      ("unit price", "right"), ("amount", "right")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for ln in inv["lines"]:
        t.add_row(str(ln["position"]), escape(ln["description"]), ln["quantity"],
                  ln["unit_price"] or "", f"{D(ln['amount']):,}")
    t.add_section()
    t.add_row("", "[bold]total[/bold]", "", "", f"[bold]{inv['currency']} "
              f"{D(inv['total']):,}[/bold]")
    console.print(t)
    for cn in inv["credit_notes"]:
        console.print(f"credit note {cn['number']}: -{cn['total']} ({escape(cn['reason'])})")


@invoices_app.command("show")
def show(
    invoice: Annotated[str, typer.Argument(metavar="ID", help="Invoice id or number.")],
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Show one invoice line by line."""
    with session_scope(Workspace.open(workspace)) as s:
        inv = svc.get_invoice(s, invoice)
    if json:
        print_json(inv)
    else:
        print_invoice(inv)


@invoices_app.command("render")
def render(
    invoice: Annotated[str, typer.Argument(metavar="ID", help="Invoice id or number.")],
    html: Annotated[Path | None, typer.Option("--html", help="Write printable HTML here.")]
    = None,
    pdf: Annotated[Path | None, typer.Option("--pdf", help="Write a PDF here.")] = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Write an invoice as printable HTML and/or PDF."""
    if html is None and pdf is None:
        from ratecard.errors import InvalidInput

        raise InvalidInput("say where: --html FILE and/or --pdf FILE")
    with session_scope(Workspace.open(workspace)) as s:
        inv = svc.get_invoice(s, invoice)
    if html is not None:
        html.write_text(invoice_html(inv), encoding="utf-8")
        console.print(f"wrote {html}")
    if pdf is not None:
        pdf.write_bytes(invoice_pdf(inv))
        console.print(f"wrote {pdf}")


@invoices_app.command("finalize")
def finalize(
    invoice: Annotated[str, typer.Argument(metavar="ID")],
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Finalize a draft now (before its grace period ends) and number it."""
    with session_scope(Workspace.open(workspace)) as s:
        row = svc.finalize_invoice(s, invoice)
        inv = svc.invoice_view(s, row)
    if json:
        print_json(inv)
    else:
        console.print(f"finalized invoice {inv['number']}")


@invoices_app.command("void")
def void(
    invoice: Annotated[str, typer.Argument(metavar="ID")],
    reason: Annotated[str, typer.Option("--reason", help="Why.")] = "",
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Void an invoice (a void invoice keeps its number; its period stays unbilled)."""
    with session_scope(Workspace.open(workspace)) as s:
        row = svc.void_invoice(s, invoice, reason)
        inv = svc.invoice_view(s, row)
    if json:
        print_json(inv)
    else:
        console.print(f"voided invoice {inv['number'] or inv['id']}")


@invoices_app.command("pay")
def pay(
    invoice: Annotated[str, typer.Argument(metavar="ID")],
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Mark a finalized invoice paid."""
    with session_scope(Workspace.open(workspace)) as s:
        row = svc.mark_paid(s, invoice)
        inv = svc.invoice_view(s, row)
    if json:
        print_json(inv)
    else:
        console.print(f"invoice {inv['number']} paid")


@invoices_app.command("credit")
def credit(
    invoice: Annotated[str, typer.Argument(metavar="ID")],
    amount: Annotated[str | None, typer.Option(
        "--amount", help="Amount to credit (default: all that remains).")] = None,
    line: Annotated[int | None, typer.Option("--line", help="Credit against this line.")]
    = None,
    reason: Annotated[str, typer.Option("--reason", help="Why.")] = "",
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Issue a credit note correcting a finalized invoice (the invoice itself never changes)."""
    ws = Workspace.open(workspace)
    value: Decimal | None = D(amount) if amount is not None else None
    with session_scope(ws) as s:
        note = svc.create_credit_note(s, invoice, amount=value, line=line, reason=reason,
                                      settings=svc.BillingSettings.from_workspace(ws))
        data = svc.credit_note_view(note)
    if json:
        print_json(data)
    else:
        console.print(f"credit note {data['number']}: {data['currency']} {data['total']}")


def register(app: typer.Typer) -> None:
    app.add_typer(invoices_app, name="invoices")
