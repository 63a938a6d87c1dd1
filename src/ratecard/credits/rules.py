"""Credit rules: validation, burn order, expiry, rollover, packs, top-ups, invoice lines.

Everything here is a pure function of values from :mod:`ratecard.credits.model`.
The service loads a wallet's grants with their balances, calls these functions and
stores the ledger entries they return; :class:`Wallet` runs the same rules in
memory (for simulations and tests).

Burn order (deterministic, documented in DESIGN.md): priority (lower first) →
soonest expiry (no expiry last) → free before paid → oldest (effective time, then
creation time, then id).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from ratecard.catalog.schema import CreditPack, PlanCredits
from ratecard.clock import Window, ensure_utc, iso, parse_duration
from ratecard.credits.model import (
    DEFAULT_PRIORITY,
    SOURCES,
    AutoTopUp,
    BurnMode,
    BurnPlan,
    CreditLine,
    ExpiryResult,
    Grant,
    GrantState,
    LedgerEntry,
    Notice,
    RolloverPolicy,
    TopUpDecision,
)
from ratecard.errors import Conflict, InsufficientCredits, InvalidAmount, InvalidInput, TimeInvalid
from ratecard.money import ZERO, D, quantize, round_down, round_up, to_str

_FAR = datetime.max.replace(tzinfo=None)

# --------------------------------------------------------------------------- validation


def validate_grant(g: Grant) -> Grant:
    """Check a grant a user asked for; return it with times in UTC.

    Refused: a zero or negative amount, an unknown source, an expiry at or before
    the effective time, a negative cost basis or rollover bounds, ``min > max``.
    """
    if not isinstance(g.amount, Decimal) or not g.amount.is_finite():
        raise InvalidAmount(f"grant {g.id}: amount must be a number of credits")
    if g.amount <= 0:
        raise InvalidAmount(
            f"grant {g.id}: amount must be positive (got {to_str(g.amount)}); "
            "to take credits away, void a grant"
        )
    if g.source not in SOURCES:
        raise InvalidInput(
            f"grant {g.id}: unknown source {g.source!r}; use one of {', '.join(SOURCES)}"
        )
    if g.cost_basis < 0:
        raise InvalidAmount(f"grant {g.id}: cost basis must not be negative")
    eff = ensure_utc(g.effective_at)
    exp = ensure_utc(g.expires_at) if g.expires_at is not None else None
    if exp is not None and exp <= eff:
        raise TimeInvalid(
            f"grant {g.id}: expiry {iso(exp)} is not after the effective time {iso(eff)}; "
            "give an expiry later than --effective"
        )
    if g.rollover is not None:
        r = g.rollover
        if r.min < 0 or (r.max is not None and r.max < 0):
            raise InvalidAmount(f"grant {g.id}: rollover min and max must not be negative")
        if r.max is not None and r.min > r.max:
            raise InvalidAmount(f"grant {g.id}: rollover min ({r.min}) is above max ({r.max})")
        if exp is None:
            raise InvalidInput(f"grant {g.id}: a rollover needs an expiry (the period end)")
        if r.rolled_expires_at is not None and ensure_utc(r.rolled_expires_at) <= exp:
            raise TimeInvalid(f"grant {g.id}: rolled credits must expire after the grant does")
    return replace(g, effective_at=eff, expires_at=exp)


def grant_entry(g: Grant, at: datetime | None = None, reference: str | None = None) -> LedgerEntry:
    """The ``grant`` entry that brings a new grant's credits into the ledger."""
    return LedgerEntry(
        grant_id=g.id, kind="grant", amount=g.amount,
        at=ensure_utc(at) if at is not None else g.effective_at,
        customer=g.customer, reference=reference or g.key, note=g.note,
    )


# --------------------------------------------------------------------------- burn order


def burn_order_key(g: Grant) -> tuple[object, ...]:
    """Sort key: priority → soonest expiry (none last) → free before paid → oldest."""
    exp = g.expires_at
    return (
        g.priority,
        exp is None,
        exp.replace(tzinfo=None) if exp is not None else _FAR,
        g.cost_basis > 0,
        g.effective_at.replace(tzinfo=None),
        (g.created_at or g.effective_at).replace(tzinfo=None),
        g.id,
    )


def burn_order(states: Iterable[GrantState]) -> list[GrantState]:
    return sorted(states, key=lambda s: burn_order_key(s.grant))


def usable(states: Iterable[GrantState], at: datetime) -> list[GrantState]:
    """Grants that can be burned at ``at`` (usable, positive balance), in burn order."""
    return burn_order(s for s in states if s.balance > 0 and s.grant.usable_at(at))


def available_balance(states: Iterable[GrantState], at: datetime) -> Decimal:
    return sum((s.balance for s in states if s.balance > 0 and s.grant.usable_at(at)), ZERO)


def plan_burn(
    states: Sequence[GrantState],
    amount: Decimal,
    at: datetime,
    *,
    customer: str = "",
    reference: str | None = None,
    grant_id: str | None = None,
    mode: BurnMode = "partial",
    note: str = "",
) -> BurnPlan:
    """Spread a burn of ``amount`` credits across grants in burn order.

    ``mode="hard"`` refuses (:class:`InsufficientCredits`) when the usable balance
    is short; ``"partial"`` burns what there is and reports the shortfall.
    ``grant_id`` burns from that one grant only (an error if it is voided, expired
    or not yet effective).
    """
    amount = D(amount)
    at = ensure_utc(at)
    if amount <= 0:
        raise InvalidAmount(f"a burn must be a positive number of credits (got {to_str(amount)})")
    if grant_id is not None:
        match = [s for s in states if s.grant.id == grant_id]
        if not match:
            from ratecard.errors import NotFound

            raise NotFound(f"no grant {grant_id!r} for customer {customer!r}")
        g = match[0].grant
        if g.voided_at is not None:
            raise Conflict(
                f"grant {grant_id} was voided at {iso(g.voided_at)}; burn from another grant "
                "or from the wallet without --grant"
            )
        if not g.usable_at(at):
            when = (f"expired at {iso(g.expires_at)}" if g.expires_at and at >= g.expires_at
                    else f"is effective from {iso(g.effective_at)}")
            raise Conflict(f"grant {grant_id} {when}; it cannot be burned at {iso(at)}")
        candidates = usable(match, at)
    else:
        candidates = usable(states, at)
    entries: list[LedgerEntry] = []
    left = amount
    for s in candidates:
        if left <= 0:
            break
        take = min(s.balance, left)
        entries.append(LedgerEntry(grant_id=s.grant.id, kind="burn", amount=-take, at=at,
                                   customer=customer, reference=reference, note=note))
        left -= take
    if left > 0 and mode == "hard":
        have = amount - left
        raise InsufficientCredits(
            f"customer {customer!r} has {to_str(have)} usable credits at {iso(at)}, "
            f"{to_str(amount)} needed; grant or purchase credits first"
        )
    return BurnPlan(requested=amount, entries=tuple(entries), shortfall=max(left, ZERO))


# --------------------------------------------------------------------------- expiry and rollover


def rollover_amount(balance: Decimal, policy: RolloverPolicy) -> Decimal:
    """Credits that roll over from a leftover ``balance``: 0 below ``min``, at most ``max``."""
    if balance <= 0 or balance < policy.min:
        return ZERO
    return balance if policy.max is None else min(balance, policy.max)


def due_expiries(states: Iterable[GrantState], until: datetime) -> list[GrantState]:
    """Grants with a positive balance expiring at or before ``until``, soonest first."""
    until = ensure_utc(until)
    due = [s for s in states
           if s.balance > 0 and s.grant.voided_at is None
           and s.grant.expires_at is not None and s.grant.expires_at <= until]
    return sorted(due, key=lambda s: (s.grant.expires_at, burn_order_key(s.grant)))


def expire(state: GrantState) -> ExpiryResult:
    """Expire a grant's leftover at its expiry time, rolling part of it over if it may.

    The rolled part leaves as ``rollover_out`` and arrives on a new grant (id
    ``<old id>.r``) as ``rollover_in``; the rest leaves as ``expire``.
    """
    g = state.grant
    if g.expires_at is None:
        raise InvalidInput(f"grant {g.id} has no expiry")
    at = g.expires_at
    entries: list[LedgerEntry] = []
    rolled: Grant | None = None
    rolled_entry: LedgerEntry | None = None
    carry = rollover_amount(state.balance, g.rollover) if g.rollover is not None else ZERO
    if carry > 0 and g.rollover is not None:
        rolled = Grant(
            id=f"{g.id}.r", customer=g.customer, amount=carry, source=g.source,
            effective_at=at, expires_at=g.rollover.rolled_expires_at, priority=g.priority,
            cost_basis=g.cost_basis, currency=g.currency, rollover=None, rolled_from=g.id,
            key=f"{g.key}:rollover" if g.key else None, plan=g.plan,
            note=f"rolled over from {g.id}", created_at=at,
        )
        entries.append(LedgerEntry(grant_id=g.id, kind="rollover_out", amount=-carry, at=at,
                                   customer=g.customer, reference=rolled.id))
        rolled_entry = LedgerEntry(grant_id=rolled.id, kind="rollover_in", amount=carry, at=at,
                                   customer=g.customer, reference=g.id)
    rest = state.balance - carry
    if rest > 0:
        entries.append(LedgerEntry(grant_id=g.id, kind="expire", amount=-rest, at=at,
                                   customer=g.customer))
    return ExpiryResult(entries=tuple(entries), rolled=rolled, rolled_entry=rolled_entry)


def void(state: GrantState, at: datetime, *, reason: str = "") -> tuple[Grant, LedgerEntry | None]:
    """Void a grant: its remaining balance leaves the wallet now. Voiding twice is an error."""
    g = state.grant
    if g.voided_at is not None:
        raise Conflict(f"grant {g.id} is already void (since {iso(g.voided_at)})")
    at = ensure_utc(at)
    voided = replace(g, voided_at=at)
    if state.balance <= 0:
        return voided, None
    return voided, LedgerEntry(grant_id=g.id, kind="void", amount=-state.balance, at=at,
                               customer=g.customer, note=reason)


# --------------------------------------------------------------------------- packs and plans


def _after(at: datetime, duration: str | None) -> datetime | None:
    return at + parse_duration(duration) if duration else None


def pack_grants(
    code: str,
    pack: CreditPack,
    *,
    customer: str,
    at: datetime,
    currency: str,
    id_prefix: str,
    quantity: int = 1,
    priority: int = DEFAULT_PRIORITY,
) -> list[Grant]:
    """The grants a purchase of ``quantity`` packs creates.

    The paid credits carry cost basis ``price / credits`` (deferred revenue until
    burned); bonus credits are a separate free grant (cost basis 0) with their own
    expiry (``bonus_expires_after``, else the pack's ``expires_after``), so they burn
    before paid credits of the same priority and expiry.
    """
    if quantity <= 0:
        raise InvalidAmount(f"buy at least one pack {code!r} (got {quantity})")
    if pack.credits <= 0:
        raise InvalidAmount(f"pack {code!r} grants no credits; set credits above 0")
    at = ensure_utc(at)
    q = Decimal(quantity)
    out = [validate_grant(Grant(
        id=f"{id_prefix}.paid", customer=customer, amount=pack.credits * q, source="purchase",
        effective_at=at, expires_at=_after(at, pack.expires_after), priority=priority,
        cost_basis=pack.price / pack.credits, currency=currency, key=f"{id_prefix}.paid",
        pack=code, note=f"{quantity} × pack {code}", created_at=at,
    ))]
    if pack.bonus > 0:
        out.append(validate_grant(Grant(
            id=f"{id_prefix}.bonus", customer=customer, amount=pack.bonus * q, source="bonus",
            effective_at=at, expires_at=_after(at, pack.bonus_expires_after or pack.expires_after),
            priority=priority, cost_basis=ZERO, currency=currency, key=f"{id_prefix}.bonus",
            pack=code, note=f"bonus of {quantity} × pack {code}", created_at=at,
        )))
    return out


def pack_price(pack: CreditPack, quantity: int = 1) -> Decimal:
    return pack.price * quantity


def plan_grant(
    plan_code: str,
    pc: PlanCredits,
    *,
    customer: str,
    period: Window,
    next_period_end: datetime,
    currency: str,
) -> Grant:
    """The grant a plan gives for one period.

    Usable from the period start until the period end (or ``expires_after`` from
    the start); with ``rollover`` the leftover rolls into a grant usable until the
    end of the next period (or for another ``expires_after``). Plan credits are free
    (cost basis 0: the subscription fee pays for them). The key
    ``plan:<code>:<period start>`` makes it idempotent.
    """
    start = period.start
    expires = start + parse_duration(pc.expires_after) if pc.expires_after else period.end
    policy = None
    if pc.rollover is not None:
        # rolled credits last one more period (or one more expires_after)
        rolled_end = (expires + parse_duration(pc.expires_after) if pc.expires_after
                      else next_period_end)
        policy = RolloverPolicy(min=pc.rollover.min, max=pc.rollover.max,
                                rolled_expires_at=rolled_end)
    key = f"plan:{plan_code}:{iso(start)}"
    return validate_grant(Grant(
        id=f"{customer}:{key}", customer=customer, amount=pc.grant, source="plan",
        effective_at=start, expires_at=expires, priority=pc.priority, cost_basis=ZERO,
        currency=currency, rollover=policy, key=key, plan=plan_code,
        note=f"plan {plan_code} credits for {iso(period.start)}..{iso(period.end)}",
        created_at=start,
    ))


def credits_for(pc: PlanCredits | None, meter: str, quantity: Decimal) -> Decimal | None:
    """Credits that ``quantity`` of ``meter`` burns under the plan (None: not a credit meter)."""
    if pc is None or meter not in pc.burn:
        return None
    return D(quantity) * pc.burn[meter]


# --------------------------------------------------------------------------- top-ups and notices


def topup_decision(
    rule: AutoTopUp,
    balance: Decimal,
    spent_this_month: Decimal,
    pack: CreditPack | None = None,
) -> TopUpDecision:
    """Whether to buy, how much and at what price.

    Below ``threshold`` (strictly), buy enough to reach ``target``: whole packs
    (credits + bonus count toward the target) or credits at ``unit_price``. The
    month's spend never exceeds ``monthly_cap``: the purchase shrinks to what fits
    (whole packs, or whole credits), possibly to nothing.
    """
    if balance >= rule.threshold:
        return TopUpDecision(ZERO, ZERO, reason="balance at or above the threshold")
    need = rule.target - balance
    if need <= 0:
        return TopUpDecision(ZERO, ZERO, reason="balance at or above the target")
    room = None if rule.monthly_cap is None else max(rule.monthly_cap - spent_this_month, ZERO)
    if pack is not None:
        per_pack = pack.credits + pack.bonus
        n = int(round_up(need / per_pack))
        capped = False
        if room is not None and pack.price > 0 and n * pack.price > room:
            n = int(round_down(room / pack.price))
            capped = True
        if n <= 0:
            return TopUpDecision(ZERO, ZERO, capped=True, reason="monthly cap reached")
        return TopUpDecision(credits=per_pack * n, price=pack.price * n, packs=n, capped=capped,
                             reason=f"{n} × pack" + (" (limited by the monthly cap)" if capped
                                                     else ""))
    if rule.unit_price is None:
        raise InvalidInput("an auto top-up needs a pack or a unit price")
    credits = need
    price = credits * rule.unit_price
    capped = False
    if room is not None and price > room:
        credits = round_down(room / rule.unit_price) if rule.unit_price > 0 else need
        price = credits * rule.unit_price
        capped = True
    if credits <= 0:
        return TopUpDecision(ZERO, ZERO, capped=True, reason="monthly cap reached")
    return TopUpDecision(credits=credits, price=price, capped=capped,
                         reason="top up to target" + (" (limited by the monthly cap)"
                                                      if capped else ""))


def balance_notices(
    customer: str, before: Decimal, after: Decimal, threshold: Decimal | None, at: datetime
) -> list[Notice]:
    """Notices for a balance change: ``low_balance`` on crossing below the threshold,
    ``depleted`` on reaching zero. A balance that stays low records nothing new."""
    out: list[Notice] = []
    if threshold is not None and before >= threshold > after:
        out.append(Notice("low_balance", customer, after, threshold, ensure_utc(at)))
    if before > 0 >= after:
        out.append(Notice("depleted", customer, after, threshold, ensure_utc(at)))
    return out


# --------------------------------------------------------------------------- invoice lines


@dataclass(frozen=True)
class BurnSummary:
    """Credits a meter asked for in a period: covered by grants, short, and their value."""

    meter: str | None
    credits: Decimal
    covered: Decimal
    shortfall: Decimal
    value: Decimal = ZERO
    quantity: Decimal | None = None


def credit_lines(
    summaries: Sequence[BurnSummary],
    *,
    currency: str,
    plan_credits: PlanCredits | None = None,
    unit: str = "credit",
) -> list[CreditLine]:
    """Invoice lines for a period's credit burns.

    One ``credits_applied`` line per meter (amount 0: the usage is paid with
    credits; ``value`` is the cost basis consumed, i.e. revenue recognised from
    prepaid credits) and, when the plan bills overage, one ``credit_overage`` line
    per meter with a shortfall: ``shortfall × overage_unit_price``, rounded once.
    """
    lines: list[CreditLine] = []
    price = plan_credits.overage_unit_price if plan_credits is not None else None
    bill_overage = plan_credits is not None and plan_credits.on_exhausted == "overage"
    for s in sorted(summaries, key=lambda s: s.meter or ""):
        name = s.meter or "invoice"
        if s.covered > 0:
            lines.append(CreditLine(
                kind="credits_applied",
                label=f"Credits applied: {name} ({to_str(s.covered)} {unit}s)",
                quantity=s.covered, unit_price=ZERO, amount=ZERO, rounded=ZERO, meter=s.meter,
                value=s.value,
                details={"credits": s.credits, "covered": s.covered, "usage": s.quantity,
                         "value_rounded": quantize(s.value, currency)},
            ))
        if s.shortfall > 0 and bill_overage and price is not None:
            amount = s.shortfall * price
            lines.append(CreditLine(
                kind="credit_overage",
                label=f"Credit overage: {name} ({to_str(s.shortfall)} {unit}s × "
                      f"{to_str(price)})",
                quantity=s.shortfall, unit_price=price, amount=amount,
                rounded=quantize(amount, currency), meter=s.meter,
                details={"credits": s.credits, "covered": s.covered},
            ))
    return lines


# --------------------------------------------------------------------------- in-memory wallet


@dataclass(frozen=True)
class Wallet:
    """A wallet held in memory: the same rules the service applies, without storage.

    Operations return a new wallet (and a result); the ledger only grows.
    """

    customer: str
    grants: tuple[Grant, ...] = ()
    entries: tuple[LedgerEntry, ...] = ()

    def balance_of(self, grant_id: str) -> Decimal:
        return sum((e.amount for e in self.entries if e.grant_id == grant_id), ZERO)

    def states(self) -> list[GrantState]:
        bal: dict[str, Decimal] = {g.id: ZERO for g in self.grants}
        for e in self.entries:
            bal[e.grant_id] = bal.get(e.grant_id, ZERO) + e.amount
        return [GrantState(g, bal[g.id]) for g in self.grants]

    def grant(self, grant_id: str) -> Grant:
        for g in self.grants:
            if g.id == grant_id:
                return g
        from ratecard.errors import NotFound

        raise NotFound(f"no grant {grant_id!r} in the wallet of {self.customer!r}")

    def available(self, at: datetime) -> Decimal:
        return available_balance(self.states(), ensure_utc(at))

    def total(self) -> Decimal:
        return sum((e.amount for e in self.entries), ZERO)

    def sums(self) -> Mapping[str, Decimal]:
        out: dict[str, Decimal] = {}
        for e in self.entries:
            out[e.kind] = out.get(e.kind, ZERO) + e.amount
        return out

    # ---- operations

    def add(self, grant: Grant, at: datetime | None = None) -> Wallet:
        g = validate_grant(replace(grant, customer=self.customer))
        if any(x.id == g.id for x in self.grants):
            raise Conflict(f"grant {g.id} already exists")
        return replace(self, grants=(*self.grants, g), entries=(*self.entries, grant_entry(g, at)))

    def advance(self, until: datetime) -> Wallet:
        """Expire (and roll over) every grant whose expiry is at or before ``until``."""
        w = self
        while True:
            due = due_expiries(w.states(), until)
            if not due:
                return w
            res = expire(due[0])
            grants = w.grants
            entries = (*w.entries, *res.entries)
            if res.rolled is not None and res.rolled_entry is not None:
                grants = (*grants, res.rolled)
                entries = (*entries, res.rolled_entry)
            w = replace(w, grants=grants, entries=entries)

    def burn(
        self,
        amount: Decimal,
        at: datetime,
        *,
        reference: str | None = None,
        mode: BurnMode = "partial",
        grant_id: str | None = None,
    ) -> tuple[Wallet, BurnPlan]:
        w = self.advance(at)
        plan = plan_burn(w.states(), amount, at, customer=self.customer, reference=reference,
                         grant_id=grant_id, mode=mode)
        return replace(w, entries=(*w.entries, *plan.entries)), plan

    def void(self, grant_id: str, at: datetime) -> Wallet:
        w = self.advance(at)
        state = next((s for s in w.states() if s.grant.id == grant_id), None)
        if state is None:
            w.grant(grant_id)  # raises NotFound
            raise AssertionError("unreachable")
        voided, entry = void(state, at)
        grants = tuple(voided if g.id == grant_id else g for g in w.grants)
        entries = w.entries if entry is None else (*w.entries, entry)
        return replace(w, grants=grants, entries=entries)


def conservation(entries: Iterable[LedgerEntry]) -> dict[str, Decimal]:
    """Totals by kind with the identity ``issued == balance + burned + expired + voided``.

    Returns ``issued``, ``burned``, ``expired``, ``voided``, ``rolled`` (out; equal
    to rolled in), ``balance`` and ``difference`` (0 when the ledger balances).
    """
    by: dict[str, Decimal] = {}
    for e in entries:
        by[e.kind] = by.get(e.kind, ZERO) + e.amount
    issued = by.get("grant", ZERO)
    balance = sum(by.values(), ZERO)
    burned = -by.get("burn", ZERO)
    expired = -by.get("expire", ZERO)
    voided = -by.get("void", ZERO)
    rolled_out = -by.get("rollover_out", ZERO)
    rolled_in = by.get("rollover_in", ZERO)
    return {
        "issued": issued, "burned": burned, "expired": expired, "voided": voided,
        "rolled": rolled_out, "balance": balance,
        "difference": issued - (balance + burned + expired + voided) + (rolled_in - rolled_out),
    }


def period_grant_windows(
    anchor: datetime, per: str, since: datetime, until: datetime, tz: str = "UTC"
) -> list[tuple[Window, datetime]]:
    """Plan-credit periods starting in ``[since, until]`` with the end of the period after each."""
    from ratecard.clock import period_containing

    out: list[tuple[Window, datetime]] = []
    p = period_containing(anchor, per, max(ensure_utc(since), ensure_utc(anchor)), tz)
    if p.start < ensure_utc(since):
        p = period_containing(anchor, per, p.end, tz)
    while p.start <= ensure_utc(until):
        nxt = period_containing(anchor, per, p.end, tz)
        out.append((p, nxt.end))
        p = nxt
    return out


def month_window(at: datetime) -> Window:
    """The calendar month (UTC) containing ``at`` (the auto top-up cap's period)."""
    at = ensure_utc(at)
    start = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return Window(start, end)
