"""``ratecard credits grant|purchase|burn|void|balance|ledger|topup|notices``."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ratecard.cli.common import JsonOpt, WorkspaceOpt, console, print_json
from ratecard.clock import iso, parse_time, utc_now
from ratecard.credits import service
from ratecard.credits.model import SOURCES, AutoTopUp
from ratecard.errors import InvalidAmount, InvalidInput
from ratecard.money import D, to_str
from ratecard.store.state import session_scope
from ratecard.workspace import Workspace

credits_app = typer.Typer(
    help="Credit wallets: grants, packs, burns, balances and the append-only ledger.",
    no_args_is_help=True)

CustomerOpt = Annotated[str, typer.Option("--customer", "-c", help="Customer id.")]
AtOpt = Annotated[str | None, typer.Option(
    "--at", help="As of this time (RFC 3339, or a date in UTC; default now).")]


def _time(value: str | None, field: str) -> datetime | None:
    return parse_time(value, field=field, default_tz="UTC") if value else None


def _amount(value: str, field: str) -> Decimal:
    try:
        return D(value)
    except InvalidAmount:
        raise InvalidAmount(f"{field}: {value!r} is not a number; write digits like 100 or "
                           "\"12.5\"") from None


@credits_app.command("grant")
def grant(
    customer: CustomerOpt,
    amount: Annotated[str, typer.Option("--amount", help="Credits to grant (positive).")],
    source: Annotated[str, typer.Option(
        "--source", help=f"Where they come from: {', '.join(SOURCES)}.")] = "promotion",
    priority: Annotated[int, typer.Option(
        "--priority", help="Burn order: lower burns first.")] = 10,
    effective: Annotated[str | None, typer.Option(
        "--effective", help="Usable from (default now).")] = None,
    expires: Annotated[str | None, typer.Option("--expires", help="Usable until.")] = None,
    expires_after: Annotated[str | None, typer.Option(
        "--expires-after", help="Or a duration from --effective: 30d, 12h.")] = None,
    cost_basis: Annotated[str, typer.Option(
        "--cost-basis", help="Money paid per credit (0 for free credits).")] = "0",
    key: Annotated[str | None, typer.Option(
        "--key", help="Idempotency key: granting the same key twice grants once.")] = None,
    note: Annotated[str, typer.Option("--note", help="Free text.")] = "",
    at: AtOpt = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Grant credits to a customer's wallet."""
    with session_scope(Workspace.open(workspace)) as s:
        g = service.grant(
            s, customer, _amount(amount, "--amount"), source=source,
            effective_at=_time(effective, "--effective"), expires_at=_time(expires, "--expires"),
            expires_after=expires_after, priority=priority,
            cost_basis=_amount(cost_basis, "--cost-basis"), key=key, note=note,
            at=_time(at, "--at"))
    if json:
        print_json(service.grant_dict(g))
        return
    until = f" until {iso(g.expires_at)}" if g.expires_at else ""
    console.print(f"granted {to_str(g.amount)} credits to {escape(customer)} ({g.source}, "
                  f"grant {escape(g.id)}{until})")


@credits_app.command("purchase")
def purchase(
    customer: CustomerOpt,
    pack: Annotated[str, typer.Option("--pack", help="A pack of the catalog's credits.packs.")],
    quantity: Annotated[int, typer.Option("--quantity", "-n", help="How many packs.")] = 1,
    reference: Annotated[str | None, typer.Option(
        "--reference", help="Idempotency key (an order id): buying it twice buys once.")] = None,
    at: AtOpt = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Buy prepaid packs: paid credits (cost basis = price / credits) plus any bonus."""
    with session_scope(Workspace.open(workspace)) as s:
        p = service.purchase(s, customer, pack, quantity=quantity, reference=reference,
                             at=_time(at, "--at"))
    if json:
        print_json(p.as_dict())
        return
    bonus = f" + {to_str(p.bonus)} bonus" if p.bonus else ""
    again = " (already recorded)" if p.duplicate else ""
    console.print(f"{escape(customer)} bought {p.quantity} × {escape(pack)}: "
                  f"{to_str(p.credits)} credits{bonus} for {p.currency} {to_str(p.price)} "
                  f"(reference {escape(p.reference)}){again}")


@credits_app.command("burn")
def burn(
    customer: CustomerOpt,
    amount: Annotated[str, typer.Option("--amount", help="Credits to burn.")],
    reference: Annotated[str | None, typer.Option(
        "--reference", help="Idempotency key: burning it twice burns once.")] = None,
    partial: Annotated[bool, typer.Option(
        "--partial", help="Burn what there is and record the shortfall (default: refuse "
        "when short).")] = False,
    grant_id: Annotated[str | None, typer.Option(
        "--grant", help="Burn from this grant only.")] = None,
    at: AtOpt = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Burn credits in the documented order (priority, expiry, free first, oldest)."""
    with session_scope(Workspace.open(workspace)) as s:
        r = service.burn(s, customer, _amount(amount, "--amount"), reference=reference,
                         mode="partial" if partial else "hard", grant_id=grant_id,
                         at=_time(at, "--at"))
    if json:
        print_json(r.as_dict())
        return
    short = f", {to_str(r.shortfall)} short" if r.shortfall else ""
    console.print(f"burned {to_str(r.covered)} credits from {escape(customer)}{short}"
                  + (" (already recorded)" if r.duplicate else ""))
    for e in r.entries:
        console.print(f"  {escape(e.grant_id)}: {to_str(-e.amount)}")
    for n in r.notices:
        console.print(f"  notice: {n.kind} (balance {to_str(n.balance)})")
    if r.topup is not None:
        console.print(f"  auto top-up: {to_str(r.topup.credits + r.topup.bonus)} credits for "
                      f"{r.topup.currency} {to_str(r.topup.price)}")


@credits_app.command("void")
def void(
    customer: CustomerOpt,
    grant_id: Annotated[str, typer.Option("--grant", help="The grant to void.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the ledger).")] = "",
    at: AtOpt = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Void a grant: its remaining credits leave the wallet (a void entry)."""
    with session_scope(Workspace.open(workspace)) as s:
        g = service.void_grant(s, customer, grant_id, reason=reason, at=_time(at, "--at"))
    if json:
        print_json(service.grant_dict(g))
        return
    console.print(f"voided grant {escape(g.id)} of {escape(customer)}")


@credits_app.command("balance")
def balance(
    customer: CustomerOpt,
    at: AtOpt = None,
    verify: Annotated[bool, typer.Option(
        "--verify", help="Recompute every balance from the ledger and check it balances.")
    ] = False,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """A wallet's balance: usable now, pending, deferred revenue, and each grant."""
    with session_scope(Workspace.open(workspace)) as s:
        b = service.balance(s, customer, at=_time(at, "--at"))
        check = service.verify(s, customer) if verify else None
    data: dict[str, Any] = b.as_dict()
    if check is not None:
        data["verify"] = {k: (to_str(v) if isinstance(v, Decimal) else v)
                          for k, v in check.items()}
    if json:
        print_json(data)
    else:
        console.print(f"{escape(customer)} at {iso(b.at)}: {to_str(b.available)} credits "
                      f"available, {to_str(b.pending)} pending; deferred revenue "
                      f"{data['deferred_revenue']} {b.currency}")
        t = Table(title_justify="left")
        for col in ("grant", "source", "prio", "remaining", "of", "effective", "expires",
                    "cost basis", "state"):
            t.add_column(col)
        for gb in b.grants:
            g = gb.grant
            st = ("void" if g.voided_at else "usable" if gb.usable else
                  "pending" if g.effective_at > b.at else "spent" if gb.remaining == 0
                  else "closed")
            t.add_row(escape(g.id), g.source, str(g.priority), to_str(gb.remaining),
                      to_str(g.amount), iso(g.effective_at),
                      iso(g.expires_at) if g.expires_at else "", to_str(g.cost_basis), st)
        console.print(t)
        if check is not None:
            ok = "balances" if check["ok"] else "DOES NOT BALANCE"
            console.print(f"ledger {ok}: issued {to_str(check['issued'])} = balance "
                          f"{to_str(check['balance'])} + burned {to_str(check['burned'])} + "
                          f"expired {to_str(check['expired'])} + voided "
                          f"{to_str(check['voided'])}")
    if check is not None and not check["ok"]:
        raise typer.Exit(1)


@credits_app.command("ledger")
def ledger(
    customer: CustomerOpt,
    limit: Annotated[int | None, typer.Option("--limit", help="The last N entries.")] = None,
    grant_id: Annotated[str | None, typer.Option(
        "--grant", help="Entries of this grant only.")] = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """The append-only ledger of a wallet, oldest first."""
    with session_scope(Workspace.open(workspace)) as s:
        entries = service.ledger(s, customer, limit=limit, grant_id=grant_id)
    if json:
        print_json([{"seq": e.seq, "at": iso(e.at), "grant": e.grant_id, "kind": e.kind,
                     "amount": to_str(e.amount), "reference": e.reference, "note": e.note}
                    for e in entries])
        return
    t = Table(title=f"{len(entries)} entries", title_justify="left")
    for col in ("seq", "at", "grant", "kind", "amount", "reference"):
        t.add_column(col)
    for e in entries:
        t.add_row(str(e.seq), iso(e.at), escape(e.grant_id), e.kind, to_str(e.amount),
                  escape(e.reference or ""))
    console.print(t)


@credits_app.command("topup")
def topup(
    customer: CustomerOpt,
    threshold: Annotated[str | None, typer.Option(
        "--threshold", help="Below this balance, buy.")] = None,
    target: Annotated[str | None, typer.Option(
        "--target", help="Buy up to this balance.")] = None,
    pack: Annotated[str | None, typer.Option("--pack", help="Buy whole packs of this.")] = None,
    unit_price: Annotated[str | None, typer.Option(
        "--unit-price", help="Or buy credits at this price each.")] = None,
    monthly_cap: Annotated[str | None, typer.Option(
        "--monthly-cap", help="Spend at most this on top-ups per calendar month.")] = None,
    low_balance: Annotated[str | None, typer.Option(
        "--low-balance", help="Record a low-balance notice when the balance falls below.")
    ] = None,
    off: Annotated[bool, typer.Option("--off", help="Remove the auto top-up rule.")] = False,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Set the wallet's auto top-up rule (and low-balance threshold)."""
    with session_scope(Workspace.open(workspace)) as s:
        if off:
            service.set_auto_topup(s, customer, None)
        elif threshold is not None or target is not None:
            if threshold is None or target is None:
                raise InvalidInput("an auto top-up needs --threshold and --target")
            rule = AutoTopUp(
                threshold=_amount(threshold, "--threshold"), target=_amount(target, "--target"),
                pack=pack,
                unit_price=_amount(unit_price, "--unit-price") if unit_price else None,
                monthly_cap=_amount(monthly_cap, "--monthly-cap") if monthly_cap else None)
            service.set_auto_topup(s, customer, rule)
        if low_balance is not None:
            service.set_low_balance(s, customer, _amount(low_balance, "--low-balance"))
        w = service.wallet(s, customer)
        rule_now = service.auto_topup_rule(w)
        data: dict[str, Any] = {
            "customer": customer,
            "low_balance": to_str(w.low_balance_threshold)
            if w.low_balance_threshold is not None else None,
            "auto_topup": None if rule_now is None else {
                "threshold": to_str(rule_now.threshold), "target": to_str(rule_now.target),
                "pack": rule_now.pack,
                "unit_price": to_str(rule_now.unit_price) if rule_now.unit_price else None,
                "monthly_cap": to_str(rule_now.monthly_cap)
                if rule_now.monthly_cap is not None else None},
        }
    if json:
        print_json(data)
        return
    a = data["auto_topup"]
    if a is None:
        console.print(f"{escape(customer)}: no auto top-up")
    else:
        how = f"pack {a['pack']}" if a["pack"] else f"{a['unit_price']} per credit"
        cap = f", at most {a['monthly_cap']} a month" if a["monthly_cap"] else ""
        console.print(f"{escape(customer)}: below {a['threshold']} buy up to {a['target']} "
                      f"({escape(how)}{cap})")
    if data["low_balance"] is not None:
        console.print(f"low-balance notice below {data['low_balance']}")


@credits_app.command("notices")
def notices(
    customer: CustomerOpt,
    undelivered: Annotated[bool, typer.Option(
        "--undelivered", help="Only notices not yet marked delivered.")] = False,
    mark_delivered: Annotated[bool, typer.Option(
        "--mark-delivered", help="Mark the listed notices delivered.")] = False,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Low-balance and depleted notices recorded for a wallet."""
    with session_scope(Workspace.open(workspace)) as s:
        rows = service.notices(s, customer, undelivered=undelivered or mark_delivered)
        if mark_delivered:
            service.mark_delivered(s, customer, at=utc_now())
    data = [{"kind": n.kind, "balance": to_str(n.balance),
             "threshold": to_str(n.threshold) if n.threshold is not None else None,
             "at": iso(n.at)} for n in rows]
    if json:
        print_json(data)
        return
    for d in data:
        console.print(f"{d['at']}  {d['kind']:<11} balance {d['balance']}")
    if not data:
        console.print("no notices")


def register(app: typer.Typer) -> None:
    app.add_typer(credits_app, name="credits")
