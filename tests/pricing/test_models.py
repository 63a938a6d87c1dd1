"""Table tests per price model, worked by hand."""

from decimal import Decimal

import pytest

from ratecard.catalog.schema import Tier
from ratecard.money import D
from ratecard.pricing.cost_plus import price_cost_plus
from ratecard.pricing.flat import price_flat
from ratecard.pricing.graduated import price_graduated
from ratecard.pricing.package import price_package
from ratecard.pricing.per_unit import price_per_unit
from ratecard.pricing.percentage import price_percentage
from ratecard.pricing.volume import price_volume

# The playbook's enterprise volume tiers: 0.99 up to 5,000, 0.79 up to 20,000, 0.59 above.
VOLUME = [Tier(up_to=D(5000), unit_price=D("0.99")), Tier(up_to=D(20000), unit_price=D("0.79")),
          Tier(up_to=None, unit_price=D("0.59"))]
# Graduated with a flat fee on each tier.
GRAD = [Tier(up_to=D(100), unit_price=D("1.00"), flat_fee=D(10)),
        Tier(up_to=D(1000), unit_price=D("0.50"), flat_fee=D(5)),
        Tier(up_to=None, unit_price=D("0.10"))]


def test_flat() -> None:
    assert price_flat(D(199)).amount == D(199)
    assert price_flat(D("500000"), once=True).label.endswith("once")


@pytest.mark.parametrize(("qty", "included", "unit", "per", "expected"), [
    ("350", "200", "1.29", "1", "193.50"),        # the playbook's Starter overage
    ("200", "200", "1.29", "1", "0"),             # exactly the included amount
    ("150", "200", "1.29", "1", "0"),             # included above usage
    ("0", "0", "1.29", "1", "0"),                 # zero usage
    ("2.5", "0", "4", "1", "10.0"),               # fractional quantity
    ("1500000", "0", "2.50", "1000000", "3.75"),  # tokens per million
    ("1", "0", "2.50", "1000000", "0.0000025"),   # full precision kept
])
def test_per_unit(qty: str, included: str, unit: str, per: str, expected: str) -> None:
    r = price_per_unit(D(qty), unit_price=D(unit), per=D(per), included=D(included))
    assert r.amount == D(expected)
    assert r.billable == max(D(0), D(qty) - D(included))


@pytest.mark.parametrize(("qty", "size", "rnd", "expected_packages"), [
    ("0", "1000", "up", 0), ("1", "1000", "up", 1), ("1000", "1000", "up", 1),
    ("1001", "1000", "up", 2), ("1999", "1000", "down", 1), ("2000", "1000", "down", 2),
    ("999.5", "1000", "up", 1),
])
def test_package(qty: str, size: str, rnd: str, expected_packages: int) -> None:
    r = price_package(D(qty), price=D(20), size=D(size), round=rnd)
    assert r.amount == D(20) * expected_packages


def test_package_included_removed_first() -> None:
    assert price_package(D(2500), price=D(20), size=D(1000), included=D(1000)).amount == D(40)


@pytest.mark.parametrize(("qty", "expected"), [
    ("0", "10"),            # zero usage pays tier 1's flat fee
    ("1", "11.00"),
    ("100", "110.00"),      # exactly at the bound: tier 2 not reached
    ("101", "115.50"),      # just above: tier 2 reached, its flat fee too
    ("100.5", "115.25"),    # fractional
    ("1000", "565.00"),     # 10 + 100 + 5 + 900 × 0.5
    ("1001", "565.10"),     # tier 3 (no flat fee)
    ("5000", "965.00"),     # 565 + 4000 × 0.10
])
def test_graduated(qty: str, expected: str) -> None:
    assert price_graduated(D(qty), tiers=GRAD).amount == D(expected)


@pytest.mark.parametrize(("qty", "expected"), [
    ("0", "0"), ("350", "346.50"), ("5000", "4950.00"), ("5001", "3950.79"),
    ("20000", "15800.00"), ("20001", "11800.59"), ("12000.5", "9480.395"),
])
def test_volume_playbook_tiers(qty: str, expected: str) -> None:
    assert price_volume(D(qty), tiers=VOLUME).amount == D(expected)


def test_volume_zero_usage_pays_tier_one_fee() -> None:
    tiers = [Tier(up_to=D(10), unit_price=D(1), flat_fee=D(7)), Tier(unit_price=D("0.5"))]
    assert price_volume(D(0), tiers=tiers).amount == D(7)
    assert price_volume(D(10), tiers=tiers).amount == D(17)
    assert price_volume(D(11), tiers=tiers).amount == D("5.5")


def test_tiers_per_million() -> None:
    tiers = [Tier(up_to=D(1_000_000_000), unit_price=D("0.63")), Tier(unit_price=D("0.49"))]
    assert price_volume(D(2_000_000_000), tiers=tiers, per=D(1_000_000)).amount == D(980)
    assert price_graduated(D(2_000_000_000), tiers=tiers, per=D(1_000_000)).amount == D(1120)


def test_included_applies_before_tiers() -> None:
    assert price_graduated(D(150), tiers=GRAD, included=D(50)).amount == D(110)
    assert price_volume(D(5050), tiers=VOLUME, included=D(50)).amount == D("4950.00")


@pytest.mark.parametrize(("values", "kw", "expected"), [
    (["100"], {"rate": D("2.9"), "fixed_fee": D("0.30")}, "3.20"),
    (["100", "200"], {"rate": D(20)}, "60"),
    (["1", "1000"], {"rate": D(10), "min_per_event": D("0.50"), "max_per_event": D(50)},
     "50.50"),
    (["100", "100", "100"], {"rate": D(10), "free_events": 2}, "10"),
    ([], {"rate": D(10)}, "0"),
])
def test_percentage(values: list[str], kw: dict[str, Decimal], expected: str) -> None:
    r = price_percentage([D(v) for v in values], **kw)  # type: ignore[arg-type]
    assert r.amount == D(expected)


def test_cost_plus() -> None:
    assert price_cost_plus(D("87"), markup=D("0.05")).amount == D("91.35")
    assert price_cost_plus(D("0"), markup=D("0.05")).amount == D(0)
    byok = price_cost_plus(D("87"), markup=D("0.05"), include_cost=False)
    assert byok.amount == D("4.35") and len(byok.breakdown) == 1
