"""Price files: the LiteLLM map, ratecard's price book file, catalog costs, the default book."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from costs_helpers import MARCH_15, book_prices, rates

from ratecard.catalog.loader import parse_catalog_text
from ratecard.costs import (
    ModelPrice,
    PriceBook,
    PriceBookInvalid,
    TokenUsage,
    cost_of_request,
    import_litellm,
    merge_catalog_costs,
    read_price_file,
)
from ratecard.costs.default import default_book
from ratecard.costs.pricefile import combine, dump_pricebook, load_pricebook, write_pricebook
from ratecard.errors import InvalidAmount, NotFound

AT = datetime(2026, 3, 10, tzinfo=UTC)

LITELLM = {
    "sample_spec": {"input_cost_per_token": 0.0, "litellm_provider": "one of ..."},
    "claude-y": {
        "litellm_provider": "anthropic", "mode": "chat",
        "input_cost_per_token": "3e-6", "output_cost_per_token": "1.5e-5",
        "cache_read_input_token_cost": "3e-7", "cache_creation_input_token_cost": "3.75e-6",
        "cache_creation_input_token_cost_above_1hr": "6e-6",
        "input_cost_per_token_batches": "1.5e-6", "output_cost_per_token_batches": "7.5e-6",
        "input_cost_per_token_above_200k_tokens": "6e-6",
        "output_cost_per_token_above_200k_tokens": "2.25e-5",
        "cache_read_input_token_cost_above_200k_tokens": "6e-7",
        "input_cost_per_token_above_200k_tokens_batches": "3e-6",
        "input_cost_per_token_priority": "9e-6",
    },
    "deepseek-z": {"litellm_provider": "deepseek", "input_cost_per_token": "2.8e-7",
                   "input_cost_per_token_cache_hit": "2.8e-8", "output_cost_per_token": "4.2e-7",
                   "output_cost_per_reasoning_token": "5e-7"},
    "qwen-t": {"litellm_provider": "dashscope", "tiered_pricing": [
        {"input_cost_per_token": "5e-8", "output_cost_per_token": "4e-7", "range": [0, 256000]},
        {"input_cost_per_token": "2.5e-7", "output_cost_per_token": "2e-6",
         "range": [256000, 1000000]}]},
    "pplx": {"litellm_provider": "perplexity", "input_cost_per_token": 0,
             "output_cost_per_token": "2.8e-6", "input_cost_per_request": "0.005"},
    "dall-e": {"litellm_provider": "openai", "mode": "image_generation",
               "output_cost_per_image": "0.04"},
}


def test_litellm_strings_parse_exactly() -> None:
    book = import_litellm(LITELLM)
    p = book.versions("claude-y")[0]
    assert p.rates.cache_read == Decimal("3e-7") == Decimal("0.0000003")
    assert p.rates.cache_write_1h == Decimal("0.000006")
    assert p.batch.input == Decimal("0.0000015")
    assert p.provider == "anthropic"
    (tier,) = p.long_context
    assert tier.above == 200_000
    assert tier.rates.input == Decimal("0.000006") and tier.batch.input == Decimal("0.000003")
    assert "sample_spec" not in book and "dall-e" not in book


def test_litellm_fields_map_to_token_kinds() -> None:
    book = import_litellm(LITELLM)
    ds = book.versions("deepseek-z")[0]
    assert ds.rates.cache_read == Decimal("2.8e-8")  # from input_cost_per_token_cache_hit
    assert ds.rates.reasoning == Decimal("5e-7")
    q = book.versions("qwen-t")[0]
    assert q.rates.input == Decimal("5e-8")
    assert [(t.above, t.rates.input) for t in q.long_context] == [(256_000, Decimal("2.5e-7"))]
    assert book.versions("pplx")[0].per_request == Decimal("0.005")


def test_litellm_golden_request() -> None:
    # 300,000-token prompt (above 200k) in batch: input has a tier batch price (3/M),
    # output has none: half of 22.5/M. 250,000 × 3/M + 50,000 × 0.6/M / 2 + 1,000 × 11.25/M
    book = import_litellm(LITELLM)
    u = TokenUsage(input=250_000, cache_read=50_000, output=1000, batch=True)
    b = cost_of_request(book, "claude-y", u, AT)
    assert b.total == Decimal("0.75") + Decimal("0.015") + Decimal("0.01125")


def test_litellm_file_is_read_without_floats(tmp_path: Path) -> None:
    f = tmp_path / "prices.json"
    f.write_text('{"m": {"litellm_provider": "x", "input_cost_per_token": 1e-07, '
                 '"output_cost_per_token": 3.3e-07}}')
    p = import_litellm(f).versions("m")[0]
    assert p.rates.input == Decimal("1E-7") and p.rates.output == Decimal("3.3E-7")


def test_float_prices_in_a_mapping_are_refused() -> None:
    with pytest.raises(PriceBookInvalid, match="parse_float=Decimal"):
        import_litellm({"m": {"litellm_provider": "x", "input_cost_per_token": 1e-07}})


def test_negative_price_is_refused_with_the_entry_named() -> None:
    bad = {"m": {"litellm_provider": "x", "input_cost_per_token": "-1e-6",
                 "output_cost_per_token": "1e-6"}}
    with pytest.raises(PriceBookInvalid, match=r"m\.input_cost_per_token.*negative"):
        import_litellm(bad)
    with pytest.raises(InvalidAmount, match="negative"):
        PriceBook.build([ModelPrice(model="n", rates=rates(input="1", output="-2"))])


def test_overlapping_validity_is_refused() -> None:
    a = ModelPrice(model="m", rates=rates(input="1", output="1"), valid_to=MARCH_15)
    b = ModelPrice(model="m", rates=rates(input="1", output="1"),
                   valid_from=datetime(2026, 3, 1, tzinfo=UTC))
    with pytest.raises(PriceBookInvalid, match="overlaps"):
        PriceBook.build([a, b])
    # adjacent half-open windows are fine, and so are different providers
    PriceBook.build([a, ModelPrice(model="m", rates=rates(input="1", output="1"),
                                   valid_from=MARCH_15)])
    PriceBook.build([a, ModelPrice(model="m", provider="p", rates=rates(input="1", output="1"))])


def test_unknown_format_is_a_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "prices.json"
    f.write_text('{"hello": [1, 2, 3]}')
    with pytest.raises(PriceBookInvalid, match="unknown price file format"):
        read_price_file(f)
    g = tmp_path / "broken.json"
    g.write_text('{"m": ')
    with pytest.raises(PriceBookInvalid, match="not valid JSON"):
        read_price_file(g)
    with pytest.raises(NotFound):
        read_price_file(tmp_path / "missing.json")


def test_pricebook_file_round_trips(tmp_path: Path) -> None:
    book = PriceBook.build(book_prices(), meter_costs={"resolutions": Decimal("0.12")},
                           source="test")
    f = tmp_path / "pricebook.json"
    write_pricebook(book, f)
    doc = json.loads(f.read_text())
    assert doc["models"]["claude-x"][0]["input"] == "3"  # per million, a string
    back = read_price_file(f)
    assert back.format == "ratecard-pricebook"
    assert [replace(p, source="") for p in back.book.all_prices()] == book.all_prices()
    assert back.book.meter_costs == {"resolutions": Decimal("0.12")}
    assert dump_pricebook(back.book) == dump_pricebook(book)


def test_pricebook_file_errors_name_the_place() -> None:
    doc = {"format": "ratecard-pricebook", "version": 1,
           "models": {"m": [{"input": "1", "output": "x"}], "n": [{"input": "1", "colour": 1}]}}
    with pytest.raises(PriceBookInvalid) as e:
        load_pricebook(doc)
    assert "models.m[0].output" in str(e.value) and "unknown field 'colour'" in str(e.value)
    with pytest.raises(PriceBookInvalid, match="version"):
        load_pricebook({**doc, "version": 9})


def test_catalog_costs_file(tmp_path: Path) -> None:
    f = tmp_path / "costs.yaml"
    f.write_text("models:\n  gpt-4o: {input: '2.50', output: '10.00', cached_input: '1.25'}\n"
                 "  glm-4-plus:\n    - {input: '0.7', output: '0.7', valid_to: '2026-03-15'}\n"
                 "    - {input: '0.5', output: '0.5', valid_from: '2026-03-15'}\n"
                 "meters: {resolutions: '0.12'}\n")
    r = read_price_file(f)
    assert r.format == "catalog-costs"
    assert r.book.versions("gpt-4o")[0].rates.cache_read == Decimal("0.00000125")
    assert [v.valid_from for v in r.book.versions("glm-4-plus")] == [None, MARCH_15]
    assert r.book.meter_costs == {"resolutions": Decimal("0.12")}


def test_catalog_costs_override_the_book() -> None:
    catalog = parse_catalog_text(
        "meters: {storage_gb: {event: storage.snapshot, aggregation: latest, property: gb}}\n"
        "costs:\n"
        "  models:\n"
        "    claude-x: {input: '2', output: '10', per: 1000}\n"
        "    house-model: {input: '0.1', output: '0.2'}\n"
        "  meters: {storage_gb: '0.02'}\n"
    )
    base = PriceBook.build(book_prices(), meter_costs={"resolutions": Decimal("0.12")})
    merged = merge_catalog_costs(base, catalog.costs)
    (claude,) = merged.versions("claude-x")  # replaced: every earlier version is gone
    assert claude.rates.input == Decimal("0.002")  # $2 per thousand
    assert claude.source == "catalog"
    assert "house-model" in merged and "plain" in merged
    assert merged.meter_costs == {"resolutions": Decimal("0.12"),
                                  "storage_gb": Decimal("0.02")}


def test_combine_ends_old_prices_where_new_ones_start() -> None:
    old = PriceBook.build([ModelPrice(model="m", rates=rates(input="1", output="2")),
                           ModelPrice(model="keep", rates=rates(input="1", output="1"))])
    new = PriceBook.build([ModelPrice(model="m", valid_from=MARCH_15,
                                      rates=rates(input="0.5", output="1"))])
    both = combine(old, new, MARCH_15)
    u = TokenUsage(input=1_000_000)
    assert cost_of_request(both, "m", u, datetime(2026, 3, 1, tzinfo=UTC)).total == 1
    assert cost_of_request(both, "m", u, MARCH_15).total == Decimal("0.5")
    assert "keep" in both


def test_default_book_is_made_from_the_litellm_map() -> None:
    book = default_book()
    assert len(book) > 1000
    p = book.versions("claude-sonnet-4-5")[0]
    assert p.rates.input == Decimal("0.000003") and p.rates.cache_write_1h == Decimal("0.000006")
    assert "LiteLLM" in book.source
    # cached reads + 1h writes + output, by hand: 1,000 × 3 + 10,000 × 0.3 + 2,000 × 6
    # + 500 × 15 per million = 0.003 + 0.003 + 0.012 + 0.0075
    u = TokenUsage(input=1000, cache_read=10_000, cache_write_1h=2000, output=500)
    assert cost_of_request(book, "claude-sonnet-4-5", u, AT).total == Decimal("0.0255")


def test_default_book_notice_is_shipped() -> None:
    from ratecard.costs.default import DATA_DIR

    notice = (DATA_DIR / "NOTICE.txt").read_text()
    assert "MIT License" in notice and "Berri AI" in notice and "sha256" in notice
