"""Migration paths, the renewal choice and the price-response assumption."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ratecard.errors import InvalidInput
from ratecard.simulate.migration import plan_migration, price_response, renewal_choice
from ratecard.simulate.service import migration_plans
from ratecard.store.state import session_factory

from .conftest import BASE_FEE, Shop, t

D = Decimal


def test_each_customer_gets_a_path_and_a_renewal(february: Shop) -> None:
    february.customer("g")
    february.resolutions("g", 178)          # 176.22 -> 199: +12.9%, between 10% and 15%
    bt = february.backtest([february.candidate(BASE_FEE)])
    session = session_factory(february.url)()
    try:
        (mp,) = migration_plans(session, bt, t("2026-03-10"))
    finally:
        session.rollback()
        session.close()
    steps = {s.customer: s for s in mp.steps}
    assert {c: s.path for c, s in steps.items()} == {
        "a": "keep grandfathered",    # 49.50 -> 199: staying with +15% is far cheaper
        "b": "move at renewal",       # +0.5%
        "c": "move at renewal",       # pays less
        "d": "move at renewal",
        "e": "move at renewal",       # no baseline
        "g": "move with a cap",       # +12.9%: first term capped at +10%
    }
    g = steps["g"]
    assert g.first_term == D("176.22") * D("1.10")
    assert g.waived == D("199.00") - D("176.22") * D("1.10")
    assert g.choice == "either"
    assert steps["a"].choice == "stay" and steps["a"].command is None
    assert steps["a"].stay_high == D("49.50") * D("1.15")
    assert steps["c"].choice == "move"
    assert steps["b"].renewal_at == t("2026-04-01")
    assert steps["b"].command == "ratecard subscriptions change 2 --plan payg --at-renewal"
    assert [s.path for s in mp.steps] == sorted(
        (s.path for s in mp.steps),
        key=["move at renewal", "move with a cap", "keep grandfathered"].index)
    summary = mp.summary()
    assert summary["move at renewal"]["customers"] == 4
    assert summary["keep grandfathered"]["old"] == D("49.50")
    assert "sunset" in mp.as_dict()["rules"]


def test_cap_bounds(february: Shop) -> None:
    rep = february.backtest([february.candidate(BASE_FEE)]).candidates[0]
    with pytest.raises(InvalidInput, match=r"between 0 and 0\.15"):
        plan_migration(rep, {}, cap=D("0.5"))
    zero_cap = plan_migration(rep, {}, cap=D(0))
    assert {s.customer: s.path for s in zero_cap.steps}["b"] == "move with a cap"


@pytest.mark.parametrize(("old", "new", "choice"), [
    (D(100), D(90), "move"), (D(100), D(110), "move"), (D(100), D(112), "either"),
    (D(100), D(115), "either"), (D(100), D(116), "stay"), (D(0), D(50), "move"),
])
def test_renewal_choice(old: Decimal, new: Decimal, choice: str) -> None:
    assert renewal_choice(old, new) == choice


def test_price_response_is_an_expected_revenue_labelled_as_an_assumption(
    february: Shop,
) -> None:
    rep = february.backtest([february.candidate(BASE_FEE)]).candidates[0]
    (resp,) = price_response(rep, D("0.005"))
    # a (+302%) leaves for sure; b (+0.505%) with 0.2525%; decreases and e stay
    b_keep = D(1) - D("0.005") * (D("1.00") / D("198.00")) * 100
    assert resp.expected == D("199.00") * b_keep + D("238.50") + D("752.00") + D("199.00")
    assert resp.expected_churn == D(1) + (D(1) - b_keep)
    assert resp.new == D("1587.50")
    assert "assumption" in resp.assumption
    assert price_response(rep, D(0))[0].expected == resp.new
    with pytest.raises(InvalidInput, match="probability"):
        price_response(rep, D("1.5"))
