"""Backtests: a support-agent price change worked by hand, invariants and bad input."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from ratecard.errors import CatalogInvalid, InvalidInput, NotFound
from ratecard.simulate.model import ASSUMPTION
from ratecard.simulate.report import render_html
from ratecard.simulate.rules import MAX_CANDIDATES, bucket_of

from .conftest import BASE_FEE, CURRENT, FEB, Shop, t

D = Decimal


def test_pay_per_resolution_to_base_fee_worked_by_hand(february: Shop) -> None:
    # Old: 0.99 per resolution. New: 199 a month (billed in advance on March 1st for
    # March) including 300 resolutions, then 0.79 each. The invoice at March 1st bills
    # February's resolutions in arrears.
    bt = february.backtest([february.candidate(BASE_FEE)])
    rep = bt.candidates[0]
    got = {r.customer: (r.old, r.new, r.delta) for r in rep.results}
    assert got == {
        "a": (D("49.50"), D("199.00"), D("149.50")),      # 50 × 0.99; fee only
        "b": (D("198.00"), D("199.00"), D("1.00")),       # 200 × 0.99
        "c": (D("346.50"), D("238.50"), D("-108.00")),    # 199 + 50 × 0.79
        "d": (D("990.00"), D("752.00"), D("-238.00")),    # 199 + 700 × 0.79
        "e": (D("0"), D("199.00"), D("199.00")),          # no usage: zero baseline
    }
    # every customer, largest increase first (the full list, not a top five)
    assert [r.customer for r in rep.results] == ["e", "a", "b", "c", "d"]
    by = {r.customer: r for r in rep.results}
    assert by["e"].zero_baseline and by["e"].delta_pct is None
    assert by["c"].delta_pct == D("-108.00") / D("346.50")
    assert by["a"].cost == D("6.00") and by["d"].cost == D("120.00")
    assert by["a"].margin_before == (D("49.50") - 6) / D("49.50")
    assert by["a"].margin_after == (D("199.00") - 6) / D("199.00")
    assert by["a"].new_plan == "payg" and by["a"].plan == "payg" and by["a"].version == 1
    total = rep.totals["USD"]
    assert (total.old, total.new, total.delta) == (D("1584.00"), D("1587.50"), D("3.50"))
    assert total.cost == D("192.00")
    assert (total.pays_more, total.pays_less, total.unchanged, total.zero_baseline) == \
        (3, 2, 0, 1)
    assert total.margin_before == (D("1584.00") - 192) / D("1584.00")
    # where the money moved: from usage to the platform fee
    assert rep.by_meter[("USD", "resolutions")].old == D("1584.00")
    assert rep.by_meter[("USD", "resolutions")].new == D("592.50")
    assert rep.by_meter[("USD", "(fees)")].new == D("995.00")
    assert rep.by_plan[("USD", "payg v1")].customers == 5
    buckets = {b.label: b.customers for b in rep.distribution}
    assert buckets["up more than 50%"] == 1 and buckets["up 0-5%"] == 1
    assert buckets["down 20-50%"] == 2 and buckets["zero baseline"] == 1
    assert sum(buckets.values()) == 5
    cohorts = {k: v for (_, k), v in rep.cohorts.items()}
    assert cohorts["pays more"].customers == 3 and cohorts["pays less"].delta == D("-346.00")
    assert rep.assumption == ASSUMPTION and "held fixed" in bt.assumption
    assert rep.replaced == 5 and rep.errors == ()


def test_an_identical_candidate_changes_nothing(february: Shop) -> None:
    bt = february.backtest([february.candidate(CURRENT)])
    rep = bt.candidates[0]
    assert len(rep.results) == 5
    assert all(r.delta == 0 and r.outcome == "same" for r in rep.results)
    assert rep.totals["USD"].unchanged == 5


def test_plans_the_candidate_does_not_replace_stay_as_they_are(february: Shop) -> None:
    february.customer("f", plan="flat")
    february.resolutions("f", 150)
    only_payg = february.candidate(BASE_FEE, plans=["payg"])
    rep = february.backtest([only_payg]).candidates[0]
    f = next(r for r in rep.results if r.customer == "f")
    # flat: 100 for March in advance + 50 resolutions beyond 100 at 1
    assert (f.old, f.new, f.new_plan) == (D("150.00"), D("150.00"), None)
    assert rep.replaced == 5
    assert rep.by_plan[("USD", "flat v1")].customers == 1


def test_plan_filter_restricts_the_customers(february: Shop) -> None:
    february.customer("f", plan="flat")
    february.resolutions("f", 150)
    rep = february.backtest([february.candidate(BASE_FEE)], plans=["flat"]).candidates[0]
    assert [r.customer for r in rep.results] == ["f"]


def test_renamed_plans_and_several_candidates(february: Shop) -> None:
    renamed = BASE_FEE.replace("  payg:\n    name: Base", "  starter:\n    name: Base")
    cheap = BASE_FEE.replace('unit_price: "0.79"', 'unit_price: "0.59"').replace(
        "base_fee: 199", "base_fee: 149")
    bt = february.backtest([
        february.candidate(renamed, name="renamed.yaml", mapping={"payg": "starter"}),
        february.candidate(cheap, name="cheap.yaml"),
    ])
    first, second = bt.candidates
    assert {r.new_plan for r in first.results} == {"starter"}
    assert first.totals["USD"].new == D("1587.50")
    # cheap: 149 + overage at 0.59: c 149 + 29.50, d 149 + 413
    by = {r.customer: r.new for r in second.results}
    assert by == {"a": D("149.00"), "b": D("149.00"), "c": D("178.50"), "d": D("562.00"),
                  "e": D("149.00")}
    rows = bt.comparison()
    assert [r["candidate"] for r in rows] == [first.name, second.name]
    assert rows[1]["new"] == D("1187.50") and rows[1]["pays_less"] == 3
    assert rows[0]["largest_increase"] == (D("149.50") / D("49.50")).quantize(D("0.0001"))
    assert bt.customers == 5


def test_a_customer_the_candidate_cannot_rate_is_reported_and_the_run_goes_on(
    february: Shop,
) -> None:
    euro = BASE_FEE.replace("currency: USD", "currency: EUR")
    rep = february.backtest([february.candidate(euro)]).candidates[0]
    assert rep.results == ()
    assert len(rep.errors) == 5
    assert "priced in EUR" in rep.errors[0].message
    # one customer failing does not stop the others
    mixed = BASE_FEE.replace("  payg:\n", "  payg:\n    currency: EUR\n")
    rep = february.backtest([february.candidate(mixed)]).candidates[0]
    assert rep.errors and all("EUR" in e.message for e in rep.errors)


def test_bad_input_gets_a_clear_error(february: Shop, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE_FEE.replace('unit_price: "0.79"', "unit_price: 0.79")
                   .replace("model: per_unit, included: 300", "model: tiered, included: 300"))
    with pytest.raises(CatalogInvalid) as e:
        february.candidate(bad.read_text(), name="bad.yaml")
    assert len(e.value.problems) >= 1 and "tiered" in str(e.value)
    with pytest.raises(NotFound, match="no plan 'nope' in the workspace; plans: flat, payg"):
        february.backtest([february.candidate(BASE_FEE)], plans=["nope"])
    with pytest.raises(NotFound, match="no candidate plan 'gold'"):
        february.candidate(BASE_FEE, mapping={"payg": "gold"})
    with pytest.raises(InvalidInput, match="no usage between"):
        february.backtest([february.candidate(BASE_FEE)],
                          window=type(FEB)(t("2026-05-01"), t("2026-06-01")))
    with pytest.raises(InvalidInput, match="no subscription"):
        february.backtest([february.candidate(BASE_FEE)],
                          window=type(FEB)(t("2025-01-01"), t("2025-02-01")))
    with pytest.raises(InvalidInput, match=f"at most {MAX_CANDIDATES}"):
        february.backtest([february.candidate(BASE_FEE)] * (MAX_CANDIDATES + 1))
    with pytest.raises(InvalidInput, match="at least one candidate"):
        february.backtest([])


def test_a_simulation_changes_no_stored_state(february: Shop) -> None:
    path = february.url.removeprefix("sqlite:///")

    def dump() -> list[str]:
        con = sqlite3.connect(path)
        try:
            return list(con.iterdump())
        finally:
            con.close()

    before = dump()
    before_usage = list(february.usage.events)
    february.backtest([february.candidate(BASE_FEE), february.candidate(CURRENT, "same.yaml")])
    assert dump() == before
    assert february.usage.events == before_usage


def test_three_months_bill_three_invoices(shop: Shop) -> None:
    shop.customer("q")
    for month in ("2026-02-10", "2026-03-10", "2026-04-10"):
        shop.resolutions("q", 100, at=month)
    window = type(FEB)(t("2026-02-01"), t("2026-05-01"))
    r = shop.backtest([shop.candidate(BASE_FEE)], window=window).candidates[0].results[0]
    assert r.invoices == 3
    assert r.old == D("297.00")                 # 300 × 0.99
    assert r.new == D("597.00")                 # 3 × 199, all within the allocation


def test_subscriptions_starting_in_the_window_get_their_first_fees(shop: Shop) -> None:
    shop.customer("new", start="2026-02-15")
    shop.resolutions("new", 10, at="2026-02-20")
    r = shop.backtest([shop.candidate(BASE_FEE)]).candidates[0].results[0]
    # the first invoice (Feb 15) bills the fee for Feb 15 - Mar 15 in advance; the
    # period ends before the next boundary, so the usage is not billed yet
    assert r.invoices == 1 and r.old == 0 and r.new == D("199.00")
    assert r.zero_baseline


@pytest.mark.parametrize(("p", "label"), [
    (D("-0.9"), "down more than 50%"), (D("-0.5"), "down 20-50%"),
    (D("-0.3"), "down 20-50%"), (D("-0.2"), "down 5-20%"), (D("-0.05"), "down 0-5%"),
    (D("-0.01"), "down 0-5%"), (D(0), "no change"), (D("0.05"), "up 0-5%"),
    (D("0.06"), "up 5-20%"), (D("0.5"), "up 20-50%"), (D("3"), "up more than 50%"),
])
def test_distribution_buckets(p: Decimal, label: str) -> None:
    assert bucket_of(p) == label


def test_html_report(february: Shop) -> None:
    bt = february.backtest([february.candidate(BASE_FEE)])
    html = render_html(bt)
    assert "Usage held fixed" in html
    assert "<svg" in html and 'data-label="d"' in html
    for cid in "abcde":
        assert f"<td>{cid}</td>" in html
    assert "zero baseline" in html
