"""Every example catalog validates, and its usage file quotes to a total worked by hand."""

import json
from decimal import Decimal
from pathlib import Path

import pytest

from ratecard.catalog import load_catalog
from ratecard.cli import main
from ratecard.pricing import rate_plan, with_catalog_costs
from ratecard.pricing.usage_file import parse_usage

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# (catalog, plan, seats, total) — the arithmetic for each is in the comment.
CASES = [
    # input 120M×0.70 + 900M×0.02 + 15M×2.00 = 132; cached 40M×0.14 + 5M×0.40 = 7.60;
    # output 30M×2.10 + 200M×0.06 + 6M×8.00 = 123  → 262.60
    ("llm_api", "payg", None, "262.60"),
    # volume tier 1 everywhere: 16.20+75.60+27.00+10.80+56.70+43.20 = 229.50 < 1,000 minimum
    ("llm_api", "scale", None, "1000.00"),
    # BYOK pays its provider; we charge 49 + 5% of that cost per line:
    # input 87 × 0.05 = 4.35; cached 5.5 × 0.05 = 0.275 → 0.28; output 81.8 × 0.05 = 4.09
    ("llm_api", "byok", None, "57.72"),
    ("coding_plan", "lite", None, "20.00"),
    ("coding_plan", "max", None, "200.00"),
    ("support_agent", "starter", None, "392.50"),   # 199 + 150 × 1.29
    ("support_agent", "pro", None, "599.00"),       # 350 < 1,000 included
    ("support_agent", "enterprise", None, "5000.00"),  # 350 × 0.99 = 346.50 → minimum
    # 10 seats × 39 + (4,200 − 3,000 credits) × 0.01 = 390 + 12
    ("copilot_seats", "team", 10, "402.00"),
    # 10 seats but a 50-seat minimum: 50 × 59; 4,200 credits within 60,000
    ("copilot_seats", "enterprise", 10, "2950.00"),
    # 19 per seat; 4,200 credits burned, 500 granted, beyond that blocked (no charge)
    ("copilot_seats", "individual", 1, "19.00"),
    # 2000 + SSO 270×5 + logs (900×1.5 + 450.5×1) + 42×30 + 13 packs×20 + 86×4
    # + email 150×1 + push 1×5 + sms 4×45 + 13,000×0.01 + 20% × 14,618.50
    ("enterprise_platform", "modules", None, "10403.20"),
    ("enterprise_platform", "private", None, "660000.00"),  # license + 20% + operations
]


@pytest.mark.parametrize(("name", "plan", "seats", "total"), CASES)
def test_example_quotes(name: str, plan: str, seats: int | None, total: str) -> None:
    catalog = load_catalog(EXAMPLES / f"{name}.yaml")
    usage = parse_usage((EXAMPLES / f"{name}.usage.json").read_text(), catalog)
    q = rate_plan(catalog, plan, with_catalog_costs(catalog, usage), seats=seats)
    assert q.total == Decimal(total)


def test_every_example_has_a_usage_file_and_validates() -> None:
    names = sorted(p.stem for p in EXAMPLES.glob("*.yaml"))
    assert names == ["coding_plan", "copilot_seats", "enterprise_platform", "llm_api",
                     "support_agent"]
    for n in names:
        assert (EXAMPLES / f"{n}.usage.json").exists()
        assert main(["catalog", "validate", str(EXAMPLES / f"{n}.yaml")]) == 0


def test_quote_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["quote", str(EXAMPLES / "support_agent.yaml"), "--plan", "starter",
                 "--usage", str(EXAMPLES / "support_agent.usage.json"), "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["total"] == "392.50" and out["subtotal"] == "392.50"
    assert out["currency"] == "USD" and out["plan"] == "starter"
    assert [ln["amount"] for ln in out["lines"]] == ["199.00", "193.50"]
    assert set(out["lines"][0]) == {"kind", "meter", "group", "quantity", "amount", "label",
                                    "details"}
