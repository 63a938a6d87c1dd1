"""Credit wallets in the state database: grant, purchase, burn, void, balance, ledger.

Every function takes a session and never commits (the CLI command or the API request
owns the transaction). Every change of a wallet first locks it
(:func:`ratecard.credits.repository.lock_wallet`), then brings it up to date
(:func:`advance`: the plan's periodic grants, expiries and rollovers due by then),
then applies the rules of :mod:`ratecard.credits.rules` and appends their ledger
entries. Two concurrent burns of one wallet therefore run one after the other, and
a hard burn never spends credits that the other already took.

For invoices, :func:`period_lines` turns a period's burns into "credits applied"
and "credit overage" lines, and :func:`apply_to_invoice` pays an amount due from a
wallet whose credits are money (a prepaid balance).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ratecard.catalog.schema import Catalog, CreditPack, PlanCredits
from ratecard.clock import Window, ensure_utc, iso, parse_duration, period_containing, utc_now
from ratecard.credits import repository as repo
from ratecard.credits import rules
from ratecard.credits.model import (
    DEFAULT_PRIORITY,
    AutoTopUp,
    BurnMode,
    CreditLine,
    Grant,
    GrantState,
    LedgerEntry,
    Notice,
    TopUpDecision,
)
from ratecard.errors import InvalidAmount, InvalidInput, NotFound
from ratecard.money import ZERO, D, quantize, to_str
from ratecard.store.credits_models import BurnRow, GrantRow, PurchaseRow, WalletRow

# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class BurnResult:
    """A burn as recorded: what was asked, covered, short, and the entries written.

    ``value`` is the money the covered credits represent at their cost basis
    (revenue recognised from prepaid credits). ``duplicate`` is true when the
    reference had already been burned (nothing new was written).
    """

    customer: str
    reference: str | None
    requested: Decimal
    covered: Decimal
    shortfall: Decimal
    value: Decimal
    at: datetime
    entries: tuple[LedgerEntry, ...] = ()
    notices: tuple[Notice, ...] = ()
    topup: PurchaseResult | None = None
    duplicate: bool = False
    meter: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "customer": self.customer, "reference": self.reference,
            "requested": to_str(self.requested), "covered": to_str(self.covered),
            "shortfall": to_str(self.shortfall), "value": to_str(self.value),
            "at": iso(self.at), "duplicate": self.duplicate, "meter": self.meter,
            "allocations": [{"grant": e.grant_id, "credits": to_str(-e.amount)}
                            for e in self.entries],
            "notices": [n.kind for n in self.notices],
            "topup": self.topup.as_dict() if self.topup else None,
        }


@dataclass(frozen=True)
class PurchaseResult:
    customer: str
    reference: str
    pack: str | None
    quantity: int
    credits: Decimal
    bonus: Decimal
    price: Decimal
    currency: str
    at: datetime
    grants: tuple[Grant, ...] = ()
    auto: bool = False
    duplicate: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "customer": self.customer, "reference": self.reference, "pack": self.pack,
            "quantity": self.quantity, "credits": to_str(self.credits),
            "bonus": to_str(self.bonus), "price": to_str(self.price),
            "currency": self.currency, "at": iso(self.at), "auto": self.auto,
            "duplicate": self.duplicate, "grants": [grant_dict(g) for g in self.grants],
        }


@dataclass(frozen=True)
class GrantBalance:
    grant: Grant
    remaining: Decimal
    usable: bool


@dataclass(frozen=True)
class Balance:
    """A wallet at one instant.

    ``available``: credits usable now; ``pending``: credits of grants not yet
    effective; ``deferred_revenue``: money paid for credits not yet used (remaining
    × cost basis of usable and pending grants).
    """

    customer: str
    at: datetime
    currency: str
    available: Decimal
    pending: Decimal
    deferred_revenue: Decimal
    grants: tuple[GrantBalance, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {
            "customer": self.customer, "at": iso(self.at), "currency": self.currency,
            "available": to_str(self.available), "pending": to_str(self.pending),
            "deferred_revenue": to_str(quantize(self.deferred_revenue, self.currency)),
            "grants": [dict(grant_dict(g.grant), remaining=to_str(g.remaining), usable=g.usable)
                       for g in self.grants],
        }


def grant_dict(g: Grant) -> dict[str, Any]:
    return {
        "id": g.id, "amount": to_str(g.amount), "source": g.source, "priority": g.priority,
        "effective_at": iso(g.effective_at),
        "expires_at": iso(g.expires_at) if g.expires_at else None,
        "cost_basis": to_str(g.cost_basis), "currency": g.currency,
        "rollover": None if g.rollover is None else {
            "min": to_str(g.rollover.min),
            "max": None if g.rollover.max is None else to_str(g.rollover.max)},
        "rolled_from": g.rolled_from, "voided_at": iso(g.voided_at) if g.voided_at else None,
        "key": g.key, "pack": g.pack, "plan": g.plan, "note": g.note,
    }


# --------------------------------------------------------------------------- wallets


def wallet(session: Session, customer: str, *, create: bool = True) -> WalletRow:
    """The customer's wallet (created on first use; the customer must exist)."""
    row = repo.wallet_row(session, customer)
    if row is not None:
        return row
    cust = repo.customer_row(session, customer)
    if not create:
        raise NotFound(f"customer {customer!r} has no credits yet")
    try:
        with session.begin_nested():
            return repo.create_wallet(session, cust)
    except IntegrityError:  # created by a concurrent transaction meanwhile
        row = repo.wallet_row(session, customer)
        assert row is not None
        return row


def open_wallet(session: Session, customer: str, at: datetime) -> WalletRow:
    """Lock the wallet and bring it up to date at ``at``."""
    w = wallet(session, customer)
    repo.lock_wallet(session, w)
    advance(session, w, at)
    return w


def advance(session: Session, w: WalletRow, until: datetime) -> int:
    """Create the plan's grants and expire (or roll over) grants, up to ``until``.

    Returns the number of ledger entries written. Call with the wallet locked.
    """
    until = ensure_utc(until)
    written = sync_plan_grants(session, w, until)
    while True:
        due = repo.due_rows(session, w.id, until)
        if not due:
            return written
        by_id = {r.id: r for r in due}
        for row in due:
            res = rules.expire(GrantState(repo.to_grant(row), row.remaining))
            if res.rolled is not None and res.rolled_entry is not None:
                rolled_row = repo.insert_grant(session, w, res.rolled)
                by_id[rolled_row.id] = rolled_row
                repo.append(session, w, [*res.entries, res.rolled_entry], by_id)
            else:
                repo.append(session, w, res.entries, by_id)
            written += len(res.entries) + (1 if res.rolled_entry is not None else 0)


def sync_plan_grants(session: Session, w: WalletRow, until: datetime) -> int:
    """Grant each period's plan credits for every period that starts by ``until``.

    Periods follow the subscription phase's anchor in the customer's timezone; a
    phase that starts inside a period (a plan change) grants its plan's credits from
    its start to that period's end. Idempotent: each grant has the key
    ``plan:<code>:<start>``.
    """
    from ratecard.entitlements.repository import customer_phases

    since = w.synced_through
    if since is not None and until <= since:
        return 0
    cust = session.get(repo.CustomerRow, w.customer_id)
    assert cust is not None
    tz = cust.timezone
    written = 0
    wanted: list[Grant] = []
    for ph in customer_phases(session, w.customer_id):
        pc = ph.plan.credits
        if pc is None or pc.grant <= 0 or ph.start > until:
            continue
        if ph.end is not None and since is not None and ph.end <= since:
            continue
        first = ph.start if since is None else max(ph.start, since)
        p = period_containing(ph.anchor, pc.per, first, tz)
        while p.start <= until and (ph.end is None or p.start < ph.end):
            eff = max(p.start, ph.start)
            nxt = period_containing(ph.anchor, pc.per, p.end, tz)
            if eff <= until:
                wanted.append(rules.plan_grant(
                    ph.plan_code, pc, customer=w.customer, period=Window(eff, p.end),
                    next_period_end=nxt.end, currency=cust.currency))
            p = nxt
    have = repo.existing_keys(session, w.id, [g.key for g in wanted if g.key])
    for g in wanted:
        if g.key in have:
            continue
        have.add(g.key or "")
        row = repo.insert_grant(session, w, g)
        repo.append(session, w, [rules.grant_entry(g, g.effective_at)], {row.id: row})
        written += 1
    w.synced_through = until if since is None else max(since, until)
    return written


# --------------------------------------------------------------------------- grants


def grant(
    session: Session,
    customer: str,
    amount: Decimal | str | int,
    *,
    source: str = "promotion",
    effective_at: datetime | None = None,
    expires_at: datetime | None = None,
    expires_after: str | None = None,
    priority: int = DEFAULT_PRIORITY,
    cost_basis: Decimal | str | int = ZERO,
    key: str | None = None,
    note: str = "",
    at: datetime | None = None,
) -> Grant:
    """Add a grant to a wallet. With ``key``, granting twice returns the first grant."""
    at = ensure_utc(at or utc_now())
    amount = D(amount)
    eff = ensure_utc(effective_at) if effective_at is not None else at
    if expires_after is not None:
        if expires_at is not None:
            raise InvalidInput("give an expiry time or a duration (expires_after), not both")
        expires_at = eff + parse_duration(expires_after)
    w = open_wallet(session, customer, at)
    if key is not None:
        existing = repo.grant_by_key(session, w.id, key)
        if existing is not None:
            return repo.to_grant(existing)
    g = rules.validate_grant(Grant(
        id=f"g-{uuid.uuid4().hex[:16]}", customer=customer, amount=amount, source=source,
        effective_at=eff, expires_at=expires_at, priority=priority, cost_basis=D(cost_basis),
        currency=w.currency, key=key, note=note, created_at=at,
    ))
    row = repo.insert_grant(session, w, g)
    repo.append(session, w, [rules.grant_entry(g, at)], {row.id: row})
    if eff <= at and g.expires_at is not None and g.expires_at <= at:
        advance(session, w, at)
    return g


def void_grant(
    session: Session, customer: str, grant_id: str, *, at: datetime | None = None,
    reason: str = "",
) -> Grant:
    """Void a grant: its remaining credits leave the wallet now (a ``void`` entry)."""
    at = ensure_utc(at or utc_now())
    w = open_wallet(session, customer, at)
    row = repo.grant_row(session, w.id, grant_id)
    voided, entry = rules.void(GrantState(repo.to_grant(row), row.remaining), at, reason=reason)
    before = _available(session, w, at)
    if entry is not None:
        repo.append(session, w, [entry], {row.id: row})
    repo.mark_void(row, at, reason)
    session.flush()
    after = _available(session, w, at)
    repo.insert_notices(session, w, rules.balance_notices(
        customer, before, after, w.low_balance_threshold, at))
    return voided


# --------------------------------------------------------------------------- purchases


def _catalog(session: Session, catalog: Catalog | None) -> Catalog:
    if catalog is not None:
        return catalog
    from ratecard.billing.catalogs import current_catalog

    cat = current_catalog(session)
    if cat is None:
        raise NotFound("no catalog applied yet; apply one with `ratecard catalog apply FILE`")
    return cat


def _pack(catalog: Catalog, code: str) -> CreditPack:
    try:
        return catalog.credits.packs[code]
    except KeyError:
        known = ", ".join(sorted(catalog.credits.packs)) or "none"
        raise NotFound(f"no credit pack {code!r} in the catalog; packs: {known}") from None


def purchase(
    session: Session,
    customer: str,
    pack: str,
    *,
    catalog: Catalog | None = None,
    quantity: int = 1,
    at: datetime | None = None,
    reference: str | None = None,
    auto: bool = False,
) -> PurchaseResult:
    """Buy ``quantity`` packs: a paid grant (cost basis ``price / credits``) and a free
    bonus grant when the pack has one. Idempotent by ``reference``."""
    at = ensure_utc(at or utc_now())
    cat = _catalog(session, catalog)
    p = _pack(cat, pack)
    w = open_wallet(session, customer, at)
    return _purchase(session, w, cat, pack, p, quantity=quantity, at=at, reference=reference,
                     auto=auto)


def _purchase(
    session: Session, w: WalletRow, cat: Catalog, code: str, p: CreditPack, *, quantity: int,
    at: datetime, reference: str | None, auto: bool,
) -> PurchaseResult:
    if cat.currency != w.currency:
        raise InvalidInput(
            f"pack {code!r} is priced in {cat.currency} but customer {w.customer!r} pays in "
            f"{w.currency}"
        )
    ref = reference or f"purchase-{uuid.uuid4().hex[:12]}"
    done = repo.purchase_by_reference(session, w.id, ref)
    if done is not None:
        return _purchase_result(session, done, duplicate=True)
    grants = rules.pack_grants(code, p, customer=w.customer, at=at, currency=w.currency,
                               id_prefix=f"{w.customer}:{ref}", quantity=quantity)
    for g in grants:
        row = repo.insert_grant(session, w, g)
        repo.append(session, w, [rules.grant_entry(g, at, reference=ref)], {row.id: row})
    q = Decimal(quantity)
    bought = PurchaseRow(wallet_id=w.id, customer=w.customer, reference=ref, pack=code,
                         quantity=quantity, credits=p.credits * q, bonus=p.bonus * q,
                         price=p.price * q, currency=w.currency, auto=auto, at=at,
                         grants=[g.id for g in grants])
    session.add(bought)
    session.flush()
    return PurchaseResult(w.customer, ref, code, quantity, p.credits * q, p.bonus * q,
                          p.price * q, w.currency, at, tuple(grants), auto)


def _purchase_result(session: Session, row: PurchaseRow, *, duplicate: bool) -> PurchaseResult:
    grants = tuple(repo.to_grant(g) for gid in row.grants
                   if (g := session.get(GrantRow, gid)) is not None)
    return PurchaseResult(row.customer, row.reference, row.pack, row.quantity, row.credits,
                          row.bonus, row.price, row.currency, row.at, grants, row.auto,
                          duplicate)


def set_auto_topup(
    session: Session, customer: str, rule: AutoTopUp | None, *, catalog: Catalog | None = None,
) -> WalletRow:
    """Set (or with ``None`` remove) the wallet's auto top-up rule."""
    w = wallet(session, customer)
    if rule is None:
        w.topup_threshold = w.topup_target = w.topup_unit_price = w.topup_monthly_cap = None
        w.topup_pack = None
        return w
    if rule.target <= rule.threshold:
        raise InvalidAmount("the top-up target must be above the threshold")
    if rule.threshold < 0 or (rule.monthly_cap is not None and rule.monthly_cap < 0):
        raise InvalidAmount("threshold and monthly cap must not be negative")
    if (rule.pack is None) == (rule.unit_price is None):
        raise InvalidInput("an auto top-up buys a pack (--pack) or credits at a unit price "
                           "(--unit-price): give exactly one")
    if rule.pack is not None:
        _pack(_catalog(session, catalog), rule.pack)
    if rule.unit_price is not None and rule.unit_price <= 0:
        raise InvalidAmount("the top-up unit price must be positive")
    w.topup_threshold, w.topup_target = rule.threshold, rule.target
    w.topup_pack, w.topup_unit_price, w.topup_monthly_cap = (rule.pack, rule.unit_price,
                                                             rule.monthly_cap)
    session.flush()
    return w


def auto_topup_rule(w: WalletRow) -> AutoTopUp | None:
    if w.topup_threshold is None or w.topup_target is None:
        return None
    return AutoTopUp(threshold=w.topup_threshold, target=w.topup_target, pack=w.topup_pack,
                     unit_price=w.topup_unit_price, monthly_cap=w.topup_monthly_cap)


def set_low_balance(session: Session, customer: str, threshold: Decimal | None) -> WalletRow:
    if threshold is not None and threshold < 0:
        raise InvalidAmount("the low-balance threshold must not be negative")
    w = wallet(session, customer)
    w.low_balance_threshold = threshold
    session.flush()
    return w


def _maybe_topup(
    session: Session, w: WalletRow, balance: Decimal, at: datetime, ref: str,
    catalog: Catalog | None,
) -> PurchaseResult | None:
    rule = auto_topup_rule(w)
    if rule is None or balance >= rule.threshold:
        return None
    spent = repo.auto_spend(session, w.id, rules.month_window(at))
    cat: Catalog | None = None
    pack: CreditPack | None = None
    if rule.pack is not None:
        cat = _catalog(session, catalog)
        pack = _pack(cat, rule.pack)
    decision: TopUpDecision = rules.topup_decision(rule, balance, spent, pack)
    if not decision.buys:
        return None
    reference = f"auto-topup:{ref}"
    if pack is not None and cat is not None and rule.pack is not None:
        return _purchase(session, w, cat, rule.pack, pack, quantity=decision.packs, at=at,
                         reference=reference, auto=True)
    assert rule.unit_price is not None
    g = rules.validate_grant(Grant(
        id=f"{w.customer}:{reference}", customer=w.customer, amount=decision.credits,
        source="purchase", effective_at=at, cost_basis=rule.unit_price, currency=w.currency,
        key=reference, note="auto top-up", created_at=at,
    ))
    row = repo.insert_grant(session, w, g)
    repo.append(session, w, [rules.grant_entry(g, at, reference=reference)], {row.id: row})
    session.add(PurchaseRow(wallet_id=w.id, customer=w.customer, reference=reference, pack=None,
                            quantity=1, credits=decision.credits, bonus=ZERO,
                            price=decision.price, currency=w.currency, auto=True, at=at,
                            grants=[g.id]))
    session.flush()
    return PurchaseResult(w.customer, reference, None, 1, decision.credits, ZERO, decision.price,
                          w.currency, at, (g,), True)


# --------------------------------------------------------------------------- burns


def _available(session: Session, w: WalletRow, at: datetime) -> Decimal:
    return rules.available_balance(repo.states(repo.grant_rows(session, w.id, open_only=True)),
                                   at)


@dataclass(frozen=True)
class BurnRequest:
    """One burn of :func:`burn_many`: ``credits`` at ``at`` (the usage time)."""

    credits: Decimal
    at: datetime
    reference: str | None = None
    meter: str | None = None
    quantity: Decimal | None = None
    plan: str | None = None
    mode: BurnMode = "partial"
    grant_id: str | None = None
    note: str = ""


def burn(
    session: Session,
    customer: str,
    credits: Decimal | str | int,
    *,
    at: datetime | None = None,
    reference: str | None = None,
    mode: BurnMode = "hard",
    grant_id: str | None = None,
    meter: str | None = None,
    quantity: Decimal | None = None,
    plan: str | None = None,
    note: str = "",
    catalog: Catalog | None = None,
) -> BurnResult:
    """Burn credits in the documented order.

    ``mode="hard"`` refuses with :class:`InsufficientCredits` when the usable
    balance is short (nothing is written); ``"partial"`` burns what there is and
    records the shortfall (billed as overage or blocked, as the plan says). With a
    ``reference``, burning twice returns the first result (``duplicate``). Records
    low-balance/depleted notices and runs the auto top-up rule.
    """
    req = BurnRequest(D(credits), ensure_utc(at or utc_now()), reference, meter, quantity, plan,
                      mode, grant_id, note)
    return burn_many(session, customer, [req], catalog=catalog)[0]


def burn_many(
    session: Session,
    customer: str,
    requests: Sequence[BurnRequest],
    *,
    catalog: Catalog | None = None,
) -> list[BurnResult]:
    """Several burns of one wallet under one lock, in time order (results in that order).

    Between burns, grants that expire by the next burn's time expire (or roll over)
    exactly as they would one burn at a time; the ingestion hook uses this for a
    batch of events.
    """
    if not requests:
        return []
    for r in requests:
        if r.mode not in ("hard", "partial"):
            raise InvalidInput(f"burn mode {r.mode!r}: use hard or partial")
    reqs = sorted(requests, key=lambda r: ensure_utc(r.at))
    w = wallet(session, customer)
    repo.lock_wallet(session, w)
    sync_plan_grants(session, w, max(ensure_utc(r.at) for r in reqs))
    done = repo.burns_by_references(session, w.id, [r.reference for r in reqs if r.reference])
    rows = {r.id: r for r in repo.grant_rows(session, w.id, open_only=True)}
    grants = {gid: repo.to_grant(r) for gid, r in rows.items()}
    results: list[BurnResult] = []
    for req in reqs:
        at = ensure_utc(req.at)
        if req.reference is not None and req.reference in done:
            results.append(_burn_result(session, done[req.reference], duplicate=True))
            continue
        _expire_until(session, w, rows, grants, at)
        if req.grant_id is not None and req.grant_id not in rows:
            target = repo.grant_row(session, w.id, req.grant_id)  # NotFound: another wallet's
            rows[target.id] = target
            grants[target.id] = repo.to_grant(target)
        st = [GrantState(grants[gid], r.remaining) for gid, r in rows.items()
              if r.open or gid == req.grant_id]
        before = rules.available_balance(st, at)
        plan_ = rules.plan_burn(st, D(req.credits), at, customer=customer,
                                reference=req.reference, grant_id=req.grant_id, mode=req.mode,
                                note=req.note)
        value = sum((-e.amount * rows[e.grant_id].cost_basis for e in plan_.entries), ZERO)
        row = BurnRow(
            wallet_id=w.id, customer=customer, reference=req.reference, meter=req.meter,
            quantity=req.quantity, requested=plan_.requested, covered=plan_.covered,
            shortfall=plan_.shortfall, value=value, mode=req.mode, plan=req.plan, at=at,
            recorded_at=utc_now(), note=req.note)
        repo.insert_burn(session, row, flush=False)
        repo.append(session, w, plan_.entries, rows, burn=row, flush=False)
        after = rules.available_balance(
            [GrantState(grants[gid], r.remaining) for gid, r in rows.items() if r.open], at)
        notices = rules.balance_notices(customer, before, after, w.low_balance_threshold, at)
        repo.insert_notices(session, w, notices)
        topup = _maybe_topup(session, w, after, at,
                             req.reference or f"burn-{uuid.uuid4().hex[:12]}", catalog)
        if topup is not None:
            for g in topup.grants:
                grow = session.get(GrantRow, g.id)
                if grow is not None:
                    rows[g.id] = grow
                    grants[g.id] = g
        if req.reference is not None:
            done[req.reference] = row
        results.append(BurnResult(customer, req.reference, plan_.requested, plan_.covered,
                                  plan_.shortfall, value, at, plan_.entries, tuple(notices),
                                  topup, False, req.meter))
    session.flush()
    return results


def _expire_until(
    session: Session, w: WalletRow, rows: dict[str, GrantRow], grants: dict[str, Grant],
    until: datetime,
) -> None:
    """Expire (and roll over) the loaded open grants whose expiry is at or before ``until``."""
    while True:
        due = rules.due_expiries(
            [GrantState(grants[gid], r.remaining) for gid, r in rows.items() if r.open], until)
        if not due:
            return
        res = rules.expire(due[0])
        entries = list(res.entries)
        if res.rolled is not None and res.rolled_entry is not None:
            rolled_row = repo.insert_grant(session, w, res.rolled)
            rows[rolled_row.id] = rolled_row
            grants[rolled_row.id] = res.rolled
            entries.append(res.rolled_entry)
        repo.append(session, w, entries, rows, flush=False)


def _burn_result(session: Session, row: BurnRow, *, duplicate: bool) -> BurnResult:
    entries = tuple(repo.to_entry(e) for e in repo.entries_of_burn(session, row.id))
    return BurnResult(row.customer, row.reference, row.requested, row.covered, row.shortfall,
                      row.value, row.at, entries, (), None, duplicate, row.meter)


def usage_requests(
    phases: Sequence[Any], usage: Sequence[tuple[datetime, str, Decimal, str]],
) -> list[BurnRequest]:
    """Burn requests for credit-meter usage ``(at, meter, quantity, reference)`` under the
    plan of the phase in force at each ``at`` (phases from ``customer_phases``)."""
    out = []
    for at, meter, quantity, reference in usage:
        phase = None
        for ph in phases:
            if ph.start <= at and (ph.end is None or at < ph.end):
                phase = ph
        if phase is None:
            continue
        credits = rules.credits_for(phase.plan.credits, meter, quantity)
        if credits is None or credits <= 0:
            continue
        out.append(BurnRequest(credits, at, reference, meter, quantity, phase.plan_code))
    return out


def burn_usage(
    session: Session,
    customer: str,
    usage: Mapping[str, Decimal],
    *,
    at: datetime,
    reference: str,
    catalog: Catalog | None = None,
) -> list[BurnResult]:
    """Burn the credits that usage of credit meters costs under the customer's plan at
    ``at`` (``usage``: meter → quantity). Usage has happened, so the burn is partial:
    a shortfall is recorded (billed as overage, or blocked from then on). Meters the
    plan does not burn are ignored; a customer without a plan burns nothing."""
    from ratecard.entitlements.repository import customer_phases

    cust = repo.customer_row(session, customer)
    at = ensure_utc(at)
    reqs = usage_requests(customer_phases(session, cust.id),
                          [(at, m, D(q), f"{reference}:{m}") for m, q in sorted(usage.items())])
    return burn_many(session, customer, reqs, catalog=catalog)


# --------------------------------------------------------------------------- reading


def balance(session: Session, customer: str, *, at: datetime | None = None) -> Balance:
    """The wallet at ``at`` (brought up to date first: plan grants, expiries)."""
    at = ensure_utc(at or utc_now())
    w = open_wallet(session, customer, at)
    out = []
    available = pending = deferred = ZERO
    for row in repo.grant_rows(session, w.id):
        g = repo.to_grant(row)
        usable = row.open and g.usable_at(at)
        if row.open and usable:
            available += row.remaining
        elif row.open and at < g.effective_at:
            pending += row.remaining
        if row.open and (usable or at < g.effective_at):
            deferred += row.remaining * g.cost_basis
        out.append(GrantBalance(g, row.remaining, usable))
    return Balance(customer, at, w.currency, available, pending, deferred, tuple(out))


def available(session: Session, customer: str, *, at: datetime | None = None) -> Decimal:
    """Credits usable at ``at`` (the wallet is brought up to date first)."""
    at = ensure_utc(at or utc_now())
    w = open_wallet(session, customer, at)
    return _available(session, w, at)


def ledger(
    session: Session, customer: str, *, limit: int | None = None, grant_id: str | None = None,
) -> list[LedgerEntry]:
    w = wallet(session, customer)
    return [repo.to_entry(r) for r in repo.ledger_rows(session, w.id, limit=limit,
                                                       grant_id=grant_id)]


def verify(session: Session, customer: str) -> dict[str, Any]:
    """Recompute every balance from the ledger and compare with the grants' cache.

    Returns the conservation totals (``difference`` must be 0) and ``mismatches``
    (grants whose cached remaining differs from the sum of their entries).
    """
    w = wallet(session, customer)
    sums = repo.ledger_sums(session, w.id)
    mismatches = []
    for row in repo.grant_rows(session, w.id):
        if sums.get(row.id, ZERO) != row.remaining:
            mismatches.append(row.id)
    entries = [repo.to_entry(r) for r in repo.ledger_rows(session, w.id)]
    out: dict[str, Any] = dict(rules.conservation(entries))
    out["mismatches"] = mismatches
    out["ok"] = out["difference"] == 0 and not mismatches
    return out


def notices(session: Session, customer: str, *, undelivered: bool = False) -> list[Notice]:
    w = wallet(session, customer)
    return [Notice(r.kind, r.customer, r.balance, r.threshold, r.at)  # type: ignore[arg-type]
            for r in repo.notice_rows(session, w.id, undelivered=undelivered)]


def mark_delivered(session: Session, customer: str, *, at: datetime | None = None) -> int:
    w = wallet(session, customer)
    rows = repo.notice_rows(session, w.id, undelivered=True)
    for r in rows:
        r.delivered_at = ensure_utc(at or utc_now())
    return len(rows)


# --------------------------------------------------------------------------- invoices


def period_summaries(
    session: Session, customer: str, period: Window,
) -> list[rules.BurnSummary]:
    """The period's burns per meter (requested, covered, short, value, usage)."""
    w = repo.wallet_row(session, customer)
    if w is None:
        return []
    by: dict[str | None, list[BurnRow]] = {}
    for row in repo.burns_in(session, w.id, period):
        by.setdefault(row.meter, []).append(row)
    out = []
    for meter, rows in by.items():
        qty = [r.quantity for r in rows if r.quantity is not None]
        out.append(rules.BurnSummary(
            meter=meter,
            credits=sum((r.requested for r in rows), ZERO),
            covered=sum((r.covered for r in rows), ZERO),
            shortfall=sum((r.shortfall for r in rows), ZERO),
            value=sum((r.value for r in rows), ZERO),
            quantity=sum(qty, ZERO) if qty else None,
        ))
    return out


def period_lines(
    session: Session,
    customer: str,
    period: Window,
    *,
    plan_credits: PlanCredits | None,
    currency: str,
    unit: str = "credit",
) -> list[CreditLine]:
    """Invoice lines for the credits burned in ``period`` (by usage time).

    For the invoice assembly: one ``credits_applied`` line per credit meter (amount
    0, the usage is covered; ``value`` = cost basis consumed) and, when the plan
    bills overage, one ``credit_overage`` line per meter with a shortfall
    (``shortfall × overage_unit_price``, rounded once). Reading only: re-rating a
    draft gives the same lines until new usage arrives.
    """
    return rules.credit_lines(period_summaries(session, customer, period), currency=currency,
                              plan_credits=plan_credits, unit=unit)


def apply_to_invoice(
    session: Session,
    customer: str,
    amount_due: Decimal,
    *,
    currency: str,
    at: datetime | None = None,
    reference: str,
    credit_value: Decimal = Decimal(1),
) -> CreditLine | None:
    """Pay ``amount_due`` from a prepaid balance whose credits are worth ``credit_value``
    each (1 when credits are money). Burns ``min(balance, amount_due / credit_value)``
    credits (partial) with ``reference`` (idempotent: call it when finalizing) and
    returns a ``prepaid_applied`` line with a negative amount, or ``None`` when nothing
    was applied."""
    if amount_due <= 0:
        return None
    if credit_value <= 0:
        raise InvalidAmount("credit_value must be positive")
    at = ensure_utc(at or utc_now())
    have = available(session, customer, at=at)
    w = wallet(session, customer)
    done = repo.burn_by_reference(session, w.id, reference)
    if done is not None:
        covered = done.covered
    else:
        want = min(have, amount_due / credit_value)
        if want <= 0:
            return None
        covered = burn(session, customer, want, at=at, reference=reference, mode="partial",
                       note="applied to an invoice").covered
    if covered <= 0:
        return None
    money = -(covered * credit_value)
    return CreditLine(kind="prepaid_applied",
                      label=f"Prepaid credits applied ({to_str(covered)} credits)",
                      quantity=covered, unit_price=credit_value, amount=money,
                      rounded=quantize(money, currency), value=-money,
                      details={"reference": reference})


def customers_with_wallets(session: Session) -> Sequence[str]:
    from sqlalchemy import select

    return list(session.scalars(select(WalletRow.customer).order_by(WalletRow.customer)))
