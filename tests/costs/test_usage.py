"""Usage normalisation: every provider shape into the canonical, disjoint buckets."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from ratecard.costs import TokenUsage, normalise_usage, usage_from_properties, usage_shape
from ratecard.errors import InvalidInput, UsageInvalid

# One real request seen by each provider's API: 1,000 uncached prompt tokens, 50,000
# read from the cache, 3,000 written to it, 2,000 output of which 1,500 reasoning.
EXPECTED = TokenUsage(input=1000, cache_read=50_000, cache_write=3000, output=2000,
                      reasoning=1500)

CASES: dict[str, dict[str, Any]] = {
    "canonical": {"input_tokens": 1000, "cache_read_tokens": 50_000,
                  "cache_write_tokens": 3000, "output_tokens": 2000, "reasoning_tokens": 1500},
    "openai": {"prompt_tokens": 54_000, "completion_tokens": 2000, "total_tokens": 56_000,
               "prompt_tokens_details": {"cached_tokens": 50_000, "cache_write_tokens": 3000,
                                         "audio_tokens": 0},
               "completion_tokens_details": {"reasoning_tokens": 1500}},
    "openai_responses": None,  # Responses API reports no cache writes: tested below
    "gemini": None,
}


def test_canonical_and_openai_shapes_agree() -> None:
    assert usage_shape(CASES["canonical"]) == "canonical"
    assert usage_shape(CASES["openai"]) == "openai"
    assert normalise_usage(CASES["canonical"]) == EXPECTED
    assert normalise_usage(CASES["openai"]) == EXPECTED


def test_anthropic_shape_input_excludes_cache_tokens() -> None:
    u = {"input_tokens": 1000, "cache_read_input_tokens": 50_000,
         "cache_creation_input_tokens": 3000, "output_tokens": 2000,
         "service_tier": "standard"}
    assert usage_shape(u) == "anthropic"
    assert normalise_usage(u) == TokenUsage(input=1000, cache_read=50_000, cache_write=3000,
                                            output=2000)


def test_anthropic_1h_cache_writes_are_split() -> None:
    u = {"input_tokens": 10, "cache_creation_input_tokens": 700,
         "cache_creation": {"ephemeral_5m_input_tokens": 300, "ephemeral_1h_input_tokens": 400},
         "output_tokens": 5}
    assert normalise_usage(u) == TokenUsage(input=10, cache_write=300, cache_write_1h=400,
                                            output=5)
    bad = {**u, "cache_creation_input_tokens": 701}
    with pytest.raises(UsageInvalid, match="not the sum"):
        normalise_usage(bad)


def test_litellm_style_openai_usage_with_top_level_cache_fields() -> None:
    u = {"prompt_tokens": 54_000, "completion_tokens": 2000,
         "prompt_tokens_details": {"cached_tokens": 50_000},
         "cache_read_input_tokens": 50_000, "cache_creation_input_tokens": 3000}
    assert normalise_usage(u) == TokenUsage(input=1000, cache_read=50_000, cache_write=3000,
                                            output=2000)
    with pytest.raises(UsageInvalid, match="differs"):
        normalise_usage({**u, "cache_read_input_tokens": 49_999})


def test_openai_responses_shape() -> None:
    u = {"input_tokens": 51_000, "input_tokens_details": {"cached_tokens": 50_000},
         "output_tokens": 2000, "output_tokens_details": {"reasoning_tokens": 1500},
         "total_tokens": 53_000}
    assert usage_shape(u) == "openai_responses"
    assert normalise_usage(u) == TokenUsage(input=1000, cache_read=50_000, output=2000,
                                            reasoning=1500)


def test_gemini_shape_adds_thoughts_to_output() -> None:
    u = {"promptTokenCount": 51_000, "cachedContentTokenCount": 50_000,
         "candidatesTokenCount": 500, "thoughtsTokenCount": 1500, "totalTokenCount": 53_000}
    assert usage_shape(u) == "gemini"
    assert normalise_usage(u) == TokenUsage(input=1000, cache_read=50_000, output=2000,
                                            reasoning=1500)


def test_input_output_only_is_the_same_in_every_shape() -> None:
    assert normalise_usage({"input_tokens": 5, "output_tokens": 7}) == TokenUsage(
        input=5, output=7)


def test_batch_flag() -> None:
    assert normalise_usage({"input_tokens": 5}, batch=True).batch is True


@pytest.mark.parametrize(("usage", "message"), [
    ({"prompt_tokens": 10, "cache_read_tokens": 3}, "mixes"),
    ({"prompt_tokens": 10, "input_tokens": 3}, "mixes"),
    ({"input_tokens": 10, "input_tokens_details": {}, "cache_read_input_tokens": 1}, "mixes"),
    ({"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 11}}, "less than"),
    ({"input_tokens": 1, "input_tokens_details": {"cached_tokens": 2}}, "less than"),
    ({"promptTokenCount": 1, "cachedContentTokenCount": 2}, "less than"),
    ({"prompt_tokens": 10, "completion_tokens": 1,
      "completion_tokens_details": {"reasoning_tokens": 2}}, "exceed"),
    ({"input_tokens": -1}, "negative"),
    ({"input_tokens": 1.5}, "whole number"),
    ({"input_tokens": True}, "not a token count"),
    ({"input_tokens": "ten"}, "whole number"),
    ({"input_tokens": "\u00b2"}, "whole number"),  # a superscript two is not a count
    ({"prompt_tokens_details": "x", "prompt_tokens": 1}, "expected an object"),
    ({"foo": 1}, "no token counts"),
    ({}, "no token counts"),
])
def test_bad_usage_is_a_clear_error(usage: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageInvalid, match=message):
        normalise_usage(usage)


def test_counts_given_as_decimals_or_digit_strings() -> None:
    u = {"input_tokens": Decimal("10"), "output_tokens": "20"}
    assert normalise_usage(u) == TokenUsage(input=10, output=20)


def test_event_properties_raw_usage_or_canonical_buckets() -> None:
    raw = usage_from_properties({"model": "x", "batch": True,
                                 "usage": {"prompt_tokens": 10, "completion_tokens": 2}})
    assert raw == TokenUsage(input=10, output=2, batch=True)
    flat = usage_from_properties({"model": "x", "input_tokens": 10, "output_tokens": 2,
                                  "batch": "false"})
    assert flat == TokenUsage(input=10, output=2)
    with pytest.raises(UsageInvalid, match="both"):
        usage_from_properties({"usage": {"input_tokens": 1}, "input_tokens": 1})
    with pytest.raises(UsageInvalid, match="no token usage"):
        usage_from_properties({"model": "x"})
    with pytest.raises(UsageInvalid, match="true or false"):
        usage_from_properties({"input_tokens": 1, "batch": "sometimes"})


def test_token_usage_validates_itself() -> None:
    with pytest.raises(InvalidInput, match="exceed"):
        TokenUsage(output=1, reasoning=2)
    with pytest.raises(InvalidInput, match="negative"):
        TokenUsage(input=-1)
    assert TokenUsage(input=1, cache_read=2, cache_write=3, cache_write_1h=4).prompt == 10
