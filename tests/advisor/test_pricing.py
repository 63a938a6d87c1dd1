"""Archetype targets, the price range, the cost gap and the BYOK recommendation."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratecard.advisor.archetypes import ARCHETYPES, archetype, target_margin
from ratecard.advisor.pricing import (
    MARGIN_LEVERS,
    SALES_MOTIONS,
    buyer,
    cost_gap,
    floor_price,
    margin_at,
    price_range,
    recommend_byok,
    round_sig_up,
    sales_motion,
)
from ratecard.errors import InvalidInput

D = Decimal


# --------------------------------------------------------------------------- archetypes


@pytest.mark.parametrize(("code", "low", "high"), [
    ("copilot", "0.70", "0.80"), ("agent", "0.50", "0.65"), ("service", "0.60", "0.75"),
    ("api", "0.50", "0.65"),
])
def test_archetype_margin_bands_follow_the_playbook(code: str, low: str, high: str) -> None:
    a = ARCHETYPES[code]
    assert (a.margin_low, a.margin_high) == (D(low), D(high))
    assert a.target_margin == D(low)


def test_agents_do_not_fit_seats_and_copilots_do() -> None:
    assert ARCHETYPES["copilot"].seats_fit
    assert not ARCHETYPES["agent"].seats_fit


@pytest.mark.parametrize(("name", "code"), [
    ("support_agent", "agent"), ("Coding Assistant", "copilot"), ("platform", "api"),
    ("AI-enabled service", "service"), ("agent", "agent"),
])
def test_product_type_aliases(name: str, code: str) -> None:
    assert archetype(name).code == code


def test_unknown_product_type_lists_the_choices() -> None:
    with pytest.raises(InvalidInput, match=r"copilot .* agent .* service .* api"):
        archetype("chatbot")


def test_min_margin_overrides_the_archetype_target() -> None:
    assert target_margin("agent") == D("0.50")
    assert target_margin("agent", D("0.58")) == D("0.58")
    assert target_margin(None, D("0.4")) == D("0.4")
    assert target_margin(None) is None


# --------------------------------------------------------------------------- price range


def test_price_range_worked_by_hand() -> None:
    # a human agent costs 15 per ticket; serving one costs 0.12; agent target 50%
    r = price_range(human_equivalent_cost=D(15), cost_per_task=D("0.12"),
                    target_margin=D("0.50"), position=SALES_MOTIONS["sales_assisted"])
    assert (r.low, r.high) == (D("1.5"), D(5))
    assert r.floor == D("0.24")                     # 0.12 / (1 - 0.5)
    # geometric middle of [1.5, 5] is sqrt(7.5) = 2.7386..., rounded up to 3 digits
    assert r.recommended == D("2.74")
    assert r.viable and not r.floor_binding
    assert margin_at(r.recommended, D("0.12")) == r.margin_at_recommended
    assert r.margin_at_recommended is not None and r.margin_at_recommended > D("0.95")


def test_sales_motion_moves_the_point_up_the_range() -> None:
    points = [price_range(human_equivalent_cost=D(30), cost_per_task=None,
                          target_margin=D("0.5"), position=SALES_MOTIONS[m]).recommended
              for m in ("self_serve", "sales_assisted", "enterprise")]
    assert points == sorted(points) and len(set(points)) == 3
    assert all(D(3) <= p <= D(10) for p in points)


def test_the_floor_binds_when_cost_is_high() -> None:
    r = price_range(human_equivalent_cost=D(15), cost_per_task=D("1.5"),
                    target_margin=D("0.5"), position=SALES_MOTIONS["self_serve"])
    assert r.floor == D(3)
    assert r.recommended == D(3) and r.floor_binding and r.viable


def test_a_floor_above_a_third_of_human_cost_is_not_viable() -> None:
    r = price_range(human_equivalent_cost=D(15), cost_per_task=D(3), target_margin=D("0.5"))
    assert not r.viable
    assert r.recommended == D(6)
    assert any("above a third" in n for n in r.notes)


def test_cost_gap_names_the_reduction_and_the_levers_that_reach_it() -> None:
    # at a price of 5 with a 50% target, cost may be 2.5; it is 12.5: 80% must go
    gap = cost_gap(D("12.5"), D(5), D("0.5"))
    assert gap is not None
    assert gap.max_cost == D("2.5")
    assert gap.reduction_needed == D("0.8")
    assert [lv.name for lv in gap.levers] == ["model routing", "prompt caching",
                                              "fine-tuned small models"]
    assert cost_gap(D(2), D(5), D("0.5")) is None
    assert len(MARGIN_LEVERS) == 7


def test_without_a_human_anchor_the_range_is_the_margin_band() -> None:
    r = price_range(human_equivalent_cost=None, cost_per_task=D(1), target_margin=D("0.50"),
                    margin_high=D("0.65"))
    assert r.anchor == "cost"
    assert r.low == D(2)
    assert r.high == D(1) / D("0.35")
    assert r.low <= r.recommended <= round_sig_up(r.high)


def test_no_anchor_and_no_cost_is_an_error() -> None:
    with pytest.raises(InvalidInput, match=r"human_equivalent_cost .* cost_per_task"):
        price_range(human_equivalent_cost=None, cost_per_task=None, target_margin=D("0.5"))
    with pytest.raises(InvalidInput, match="positive"):
        price_range(human_equivalent_cost=D(0), cost_per_task=None, target_margin=D("0.5"))
    with pytest.raises(InvalidInput, match="negative"):
        price_range(human_equivalent_cost=D(1), cost_per_task=D(-1), target_margin=D("0.5"))


amounts = st.decimals(min_value=D("0.01"), max_value=D(100000), places=2)


@settings(max_examples=200, deadline=None)
@given(human=amounts, cost=st.one_of(st.none(), st.decimals(min_value=D(0),
                                                            max_value=D(1000), places=4)),
       margin=st.sampled_from([D("0.5"), D("0.6"), D("0.7"), D("0.8")]),
       motion=st.sampled_from(sorted(SALES_MOTIONS)))
def test_the_recommended_price_never_misses_the_target_margin(
    human: Decimal, cost: Decimal | None, margin: Decimal, motion: str,
) -> None:
    r = price_range(human_equivalent_cost=human, cost_per_task=cost, target_margin=margin,
                    position=SALES_MOTIONS[motion])
    assert r.recommended >= r.low
    if cost is not None:
        assert r.recommended >= floor_price(cost, margin)
        m = margin_at(r.recommended, cost)
        assert m is not None and m >= margin
    if r.viable:
        assert r.recommended <= round_sig_up(r.high)


@pytest.mark.parametrize(("value", "rounded"), [
    (D("2.7386"), D("2.74")), (D("1096"), D(1100)), (D("0.0001234"), D("0.000124")),
    (D("343"), D(343)), (D("342.5"), D(343)), (D(0), D(0)), (D("12345"), D(12400)),
])
def test_round_sig_up(value: Decimal, rounded: Decimal) -> None:
    assert round_sig_up(value) == rounded


def test_names_for_buyers_and_motions() -> None:
    assert buyer("Business user") == "business"
    assert buyer("enterprise procurement") == "enterprise"
    assert sales_motion("self-serve") == "self_serve"
    assert sales_motion("PLG") == "self_serve"
    with pytest.raises(InvalidInput, match="developer, business"):
        buyer("martian")
    with pytest.raises(InvalidInput, match="self_serve"):
        sales_motion("cold calls")


# --------------------------------------------------------------------------- BYOK


def test_byok_offered_when_developers_ask() -> None:
    b = recommend_byok(buyer_type="developer", requested=True)
    assert b.verdict == "offer"
    assert b.markup == D("0.05")
    assert len(b.factors) == 7
    assert any("nothing" in s for s in b.structure)


def test_byok_not_yet_without_demand() -> None:
    b = recommend_byok(buyer_type="enterprise", requested=False)
    assert b.verdict == "not_yet"
    assert b.markup is None


@pytest.mark.parametrize(("kwargs", "blocker"), [
    ({"buyer_type": "business"}, "non-technical"),
    ({"buyer_type": "smb"}, "non-technical"),
    ({"buyer_type": "developer", "fine_tuned": True}, "fine-tuning"),
    ({"buyer_type": "developer", "needs_model_markup": True}, "markup"),
    ({"buyer_type": "enterprise", "quality_guarantee": True}, "quality"),
    ({"buyer_type": "enterprise", "multi_model_routing": True}, "routing"),
])
def test_byok_avoided_in_the_playbooks_when_not_cases(kwargs: dict[str, object],
                                                       blocker: str) -> None:
    b = recommend_byok(requested=True, **kwargs)  # type: ignore[arg-type]
    assert b.verdict == "avoid"
    assert any(blocker in x for x in b.blockers)
    assert b.structure == ()


def test_data_sensitivity_favours_byok() -> None:
    b = recommend_byok(buyer_type="enterprise", requested=True, data_sensitive=True)
    favors = {f.factor: f.favors for f in b.factors}
    assert favors["data sensitivity"] == "byok"
    assert recommend_byok(buyer_type="enterprise", requested=True).factors[-1].favors == \
        "neutral"
