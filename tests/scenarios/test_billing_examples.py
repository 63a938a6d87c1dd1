"""Each example catalog billed through three months of events, checked against the quote.

For every plan of every example catalog a customer subscribes on Jan 1 and sends
events feeding every meter for three months; monthly invoice runs bill them. Each
month's usage lines must equal what the pricing engine quotes for the same usage
(aggregated in memory from the same events): billing and quoting are one rating.
"""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pytest
from billing_support import Story, assert_exact, events_for, t

from ratecard.catalog import load_catalog
from ratecard.clock import Window
from ratecard.metering.meters import usage_snapshot
from ratecard.money import D, quantize
from ratecard.pricing import ARREARS, rate_plan, with_catalog_costs

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))
MONTHS = [("2026-01-01", "2026-02-01"), ("2026-02-01", "2026-03-01"),
          ("2026-03-01", "2026-04-01")]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_catalog_three_months(path: Path, state_url: str, tmp_path: Path) -> None:
    catalog = load_catalog(path)
    story = Story(state_url, tmp_path)
    try:
        story.apply(path.read_text())
        rng = random.Random(path.stem)
        events: dict[str, list] = {}
        for code, plan in sorted(catalog.plans.items()):
            cid = f"{code}-co"
            story.customer(cid, currency=catalog.plan_currency(code))
            seats = plan.seats.minimum + 3 if plan.seats else None
            story.subscribe(cid, code, "2026-01-01", seats=seats, trial_days=0)
            evs = events_for(catalog, cid, datetime(2026, 1, 1, tzinfo=UTC), 90, 2, rng)
            story.store.append(evs)
            events[cid] = evs
        for _, end in MONTHS:
            story.run(end + "T00:00")
        story.run("2026-04-03")  # past every grace period
        rows = story.invoices()
        expected = {}
        for code, plan in catalog.plans.items():
            advance = bool(plan.base_fee or plan.seats or any(
                c.in_advance for c in plan.charges))
            arrears = bool(plan.minimum or plan.credits or any(
                not c.in_advance for c in plan.charges))
            monthly = arrears or (advance and plan.interval == "month")
            expected[code] = int(advance) + 3 * int(monthly)
        assert len(rows) == sum(expected.values())
        assert all(r["status"] == "finalized" for r in rows)
        numbers = sorted(int(r["number"].split("-")[1]) for r in rows)
        assert numbers == list(range(1, len(rows) + 1))
        for r in rows:
            assert_exact(r)
        for code, plan in sorted(catalog.plans.items()):
            cid = f"{code}-co"
            mine = story.invoices(cid)
            closing = [i for i in mine if i["period_start"] != i["period_end"]]
            if expected[code] <= 1:
                assert closing == []
                continue
            for (start, end), invoice in zip(MONTHS, closing, strict=True):
                assert invoice["period_start"] == t(start).isoformat().replace("+00:00", "Z")
                window = Window(t(start), t(end))
                snap = with_catalog_costs(catalog, usage_snapshot(
                    catalog, events[cid], customer=cid, window=window))
                quote = rate_plan(catalog, code, snap, plan=plan, include=(ARREARS,),
                                  first_period=False, minimum=False)
                quoted = sum((ln.rounded for ln in quote.lines), Decimal(0))
                billed = sum((D(ln["amount"]) for ln in invoice["lines"]
                              if ln["details"].get("timing") == "arrears"
                              and ln["kind"] != "minimum"), Decimal(0))
                assert billed == quoted, (code, start)
                trueup = sum((D(ln["amount"]) for ln in invoice["lines"]
                              if ln["kind"] == "minimum"), Decimal(0))
                if plan.minimum and not plan.base_fee and not plan.seats:
                    floor = quantize(plan.minimum, invoice["currency"])
                    assert billed + trueup == max(billed, floor)
                else:
                    assert trueup >= 0
    finally:
        story.close()
