"""Usage normalisation: every provider's ``usage`` object into ratecard's disjoint buckets.

Providers count the same tokens differently. ratecard prices
:class:`~ratecard.costs.model.TokenUsage`, whose buckets never overlap:

=================  ======================================================
bucket             meaning
=================  ======================================================
``input``          prompt tokens neither read from nor written to a cache
``cache_read``     prompt tokens read from a cache
``cache_write``    prompt tokens written to a 5-minute cache
``cache_write_1h`` prompt tokens written to a 1-hour cache
``output``         completion tokens, reasoning included
``reasoning``      the part of ``output`` spent reasoning (for reports)
=================  ======================================================

Shapes recognised (by their keys; mixing keys of two shapes is an error):

* **canonical** (``input_tokens``, ``cache_read_tokens``, ``cache_write_tokens``,
  ``cache_write_1h_tokens``, ``output_tokens``, ``reasoning_tokens``): taken as is.
* **OpenAI Chat Completions** (``prompt_tokens``, ``completion_tokens``):
  ``prompt_tokens`` *includes* ``prompt_tokens_details.cached_tokens`` and any
  cache writes (``prompt_tokens_details.cache_write_tokens`` or
  ``cache_creation_tokens``, or a top-level ``cache_creation_input_tokens`` as
  LiteLLM adds); ``completion_tokens`` *includes*
  ``completion_tokens_details.reasoning_tokens``.
* **OpenAI Responses** (``input_tokens`` with ``input_tokens_details``):
  ``input_tokens`` includes ``input_tokens_details.cached_tokens``;
  ``output_tokens`` includes ``output_tokens_details.reasoning_tokens``.
* **Anthropic** (``cache_read_input_tokens`` / ``cache_creation_input_tokens``):
  ``input_tokens`` *excludes* both; ``cache_creation.ephemeral_5m_input_tokens``
  and ``ephemeral_1h_input_tokens`` split the writes (without them every write is a
  5-minute write).
* **Gemini** (``promptTokenCount``): the prompt count includes
  ``cachedContentTokenCount``; ``thoughtsTokenCount`` is *not* included in
  ``candidatesTokenCount`` and is added to output (as reasoning).

Token kinds ratecard does not price separately (audio, images, accepted or
rejected predictions) stay in the bucket their provider counts them in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ratecard.costs.model import TokenUsage
from ratecard.errors import UsageInvalid

CANONICAL_KEYS: tuple[str, ...] = (
    "input_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens",
    "output_tokens", "reasoning_tokens",
)
_CANONICAL_ONLY = {"cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens",
                   "reasoning_tokens"}
_OPENAI = {"prompt_tokens", "completion_tokens", "prompt_tokens_details",
           "completion_tokens_details"}
_RESPONSES = {"input_tokens_details", "output_tokens_details"}
_ANTHROPIC = {"cache_read_input_tokens", "cache_creation_input_tokens", "cache_creation"}
_GEMINI = {"promptTokenCount", "candidatesTokenCount", "cachedContentTokenCount",
           "thoughtsTokenCount", "totalTokenCount", "toolUsePromptTokenCount"}

_DIGITS = re.compile(r"[0-9]+")

SHAPES = ("canonical", "openai", "openai_responses", "anthropic", "gemini")


def _integral(value: Decimal | float) -> bool:
    if isinstance(value, float):
        return value.is_integer()
    return value.is_finite() and value == value.to_integral_value()


def _count(value: Any, where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        raise UsageInvalid(f"{where}: {value!r} is not a token count")
    if isinstance(value, int):
        n = value
    elif isinstance(value, Decimal | float) and _integral(value):
        n = int(value)
    elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        n = int(value.strip())
    else:
        raise UsageInvalid(f"{where}: {value!r} is not a whole number of tokens")
    if n < 0:
        raise UsageInvalid(f"{where}: {n} is negative; token counts are >= 0")
    return n


def _details(usage: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    d = usage.get(key)
    if d is None:
        return {}
    if not isinstance(d, Mapping):
        raise UsageInvalid(f"usage.{key}: expected an object, got {d!r}")
    return d


def usage_shape(usage: Mapping[str, Any]) -> str:
    """Which provider's shape ``usage`` is in (see the module docs); mixed keys are an error."""
    if not isinstance(usage, Mapping):
        raise UsageInvalid(f"usage must be an object of token counts, got {usage!r}")
    keys = set(usage)
    found: list[str] = []
    if keys & _OPENAI:
        found.append("openai")
    if keys & _RESPONSES:
        found.append("openai_responses")
    if keys & _ANTHROPIC and "openai" not in found:
        found.append("anthropic")
    if keys & _GEMINI:
        found.append("gemini")
    if keys & _CANONICAL_ONLY:
        found.append("canonical")
    if not found and keys & {"input_tokens", "output_tokens"}:
        # input/output only: Anthropic, Responses and canonical all mean the same here
        found.append("canonical")
    if not found:
        raise UsageInvalid(
            f"usage has no token counts ({', '.join(sorted(map(str, keys))) or 'empty'}); send "
            "a provider's usage object or input_tokens/output_tokens"
        )
    if len(found) > 1:
        raise UsageInvalid(
            f"usage mixes the {' and '.join(found)} shapes "
            f"(keys: {', '.join(sorted(map(str, keys)))}); send one provider's usage object "
            "as it came, or ratecard's canonical buckets"
        )
    if found == ["openai"] and keys & {"input_tokens", "output_tokens"}:
        raise UsageInvalid("usage mixes prompt_tokens/completion_tokens with "
                           "input_tokens/output_tokens; send one shape")
    return found[0]


def normalise_usage(usage: Mapping[str, Any], *, batch: bool = False) -> TokenUsage:
    """``usage`` (any shape this module documents) as disjoint :class:`TokenUsage` buckets."""
    shape = usage_shape(usage)
    return {
        "canonical": _canonical,
        "openai": _openai,
        "openai_responses": _responses,
        "anthropic": _anthropic,
        "gemini": _gemini,
    }[shape](usage, batch)


def _build(where: str, *, input: int, cache_read: int = 0, cache_write: int = 0,
           cache_write_1h: int = 0, output: int = 0, reasoning: int = 0,
           batch: bool = False) -> TokenUsage:
    if reasoning > output:
        raise UsageInvalid(f"{where}: reasoning tokens ({reasoning}) exceed output tokens "
                           f"({output}); reasoning is a part of output")
    return TokenUsage(input=input, cache_read=cache_read, cache_write=cache_write,
                      cache_write_1h=cache_write_1h, output=output, reasoning=reasoning,
                      batch=batch)


def _canonical(u: Mapping[str, Any], batch: bool) -> TokenUsage:
    return _build(
        "usage", input=_count(u.get("input_tokens"), "usage.input_tokens"),
        cache_read=_count(u.get("cache_read_tokens"), "usage.cache_read_tokens"),
        cache_write=_count(u.get("cache_write_tokens"), "usage.cache_write_tokens"),
        cache_write_1h=_count(u.get("cache_write_1h_tokens"), "usage.cache_write_1h_tokens"),
        output=_count(u.get("output_tokens"), "usage.output_tokens"),
        reasoning=_count(u.get("reasoning_tokens"), "usage.reasoning_tokens"), batch=batch,
    )


def _openai(u: Mapping[str, Any], batch: bool) -> TokenUsage:
    prompt = _count(u.get("prompt_tokens"), "usage.prompt_tokens")
    ptd = _details(u, "prompt_tokens_details")
    ctd = _details(u, "completion_tokens_details")
    cached = _count(ptd.get("cached_tokens"), "usage.prompt_tokens_details.cached_tokens")
    top_read = u.get("cache_read_input_tokens")
    if top_read is not None:
        top = _count(top_read, "usage.cache_read_input_tokens")
        if "cached_tokens" in ptd and top != cached:
            raise UsageInvalid(
                f"usage.cache_read_input_tokens ({top}) differs from "
                f"prompt_tokens_details.cached_tokens ({cached}); send one of them"
            )
        cached = top
    written = 0
    for key in ("cache_write_tokens", "cache_creation_tokens"):
        if ptd.get(key) is not None:
            written = _count(ptd.get(key), f"usage.prompt_tokens_details.{key}")
    if u.get("cache_creation_input_tokens") is not None and not written:
        written = _count(u.get("cache_creation_input_tokens"), "usage.cache_creation_input_tokens")
    uncached = prompt - cached - written
    if uncached < 0:
        raise UsageInvalid(
            f"usage.prompt_tokens ({prompt}) is less than its cached ({cached}) and written "
            f"({written}) tokens; in the OpenAI shape prompt_tokens includes both"
        )
    output = _count(u.get("completion_tokens"), "usage.completion_tokens")
    reasoning = _count(ctd.get("reasoning_tokens"),
                       "usage.completion_tokens_details.reasoning_tokens")
    return _build("usage (OpenAI shape: completion_tokens includes reasoning)", input=uncached,
                  cache_read=cached, cache_write=written, output=output, reasoning=reasoning,
                  batch=batch)


def _responses(u: Mapping[str, Any], batch: bool) -> TokenUsage:
    total_in = _count(u.get("input_tokens"), "usage.input_tokens")
    cached = _count(_details(u, "input_tokens_details").get("cached_tokens"),
                    "usage.input_tokens_details.cached_tokens")
    if cached > total_in:
        raise UsageInvalid(
            f"usage.input_tokens ({total_in}) is less than input_tokens_details.cached_tokens "
            f"({cached}); in the OpenAI Responses shape input_tokens includes cached tokens"
        )
    output = _count(u.get("output_tokens"), "usage.output_tokens")
    reasoning = _count(_details(u, "output_tokens_details").get("reasoning_tokens"),
                       "usage.output_tokens_details.reasoning_tokens")
    return _build("usage (OpenAI Responses shape: output_tokens includes reasoning)",
                  input=total_in - cached, cache_read=cached, output=output,
                  reasoning=reasoning, batch=batch)


def _anthropic(u: Mapping[str, Any], batch: bool) -> TokenUsage:
    written = _count(u.get("cache_creation_input_tokens"), "usage.cache_creation_input_tokens")
    split = _details(u, "cache_creation")
    w5, w1h = written, 0
    if split:
        w5 = _count(split.get("ephemeral_5m_input_tokens"),
                    "usage.cache_creation.ephemeral_5m_input_tokens")
        w1h = _count(split.get("ephemeral_1h_input_tokens"),
                     "usage.cache_creation.ephemeral_1h_input_tokens")
        if u.get("cache_creation_input_tokens") is not None and w5 + w1h != written:
            raise UsageInvalid(
                f"usage.cache_creation_input_tokens ({written}) is not the sum of "
                f"cache_creation.ephemeral_5m_input_tokens ({w5}) and "
                f"ephemeral_1h_input_tokens ({w1h})"
            )
    return _build(
        "usage", input=_count(u.get("input_tokens"), "usage.input_tokens"),
        cache_read=_count(u.get("cache_read_input_tokens"), "usage.cache_read_input_tokens"),
        cache_write=w5, cache_write_1h=w1h,
        output=_count(u.get("output_tokens"), "usage.output_tokens"), batch=batch,
    )


def _gemini(u: Mapping[str, Any], batch: bool) -> TokenUsage:
    prompt = _count(u.get("promptTokenCount"), "usage.promptTokenCount")
    tool = _count(u.get("toolUsePromptTokenCount"), "usage.toolUsePromptTokenCount")
    cached = _count(u.get("cachedContentTokenCount"), "usage.cachedContentTokenCount")
    if cached > prompt:
        raise UsageInvalid(
            f"usage.promptTokenCount ({prompt}) is less than cachedContentTokenCount ({cached}); "
            "in the Gemini shape the prompt count includes cached tokens"
        )
    thoughts = _count(u.get("thoughtsTokenCount"), "usage.thoughtsTokenCount")
    candidates = _count(u.get("candidatesTokenCount"), "usage.candidatesTokenCount")
    return _build("usage", input=prompt - cached + tool, cache_read=cached,
                  output=candidates + thoughts, reasoning=thoughts, batch=batch)


def _flag(value: Any, where: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise UsageInvalid(f"{where}: {value!r} is not true or false")


def usage_from_properties(props: Mapping[str, Any]) -> TokenUsage:
    """The token usage of an ``llm.request`` event's properties.

    The event carries either a raw ``usage`` object (any shape above) or the
    canonical buckets as top-level properties, never both; ``batch: true`` marks
    a batch request.
    """
    batch = _flag(props.get("batch"), "batch")
    raw = props.get("usage")
    top = [k for k in CANONICAL_KEYS if k in props]
    if raw is not None:
        if top:
            raise UsageInvalid(
                f"the event has both a usage object and {', '.join(top)}; send one of them"
            )
        if not isinstance(raw, Mapping):
            raise UsageInvalid(f"usage must be an object of token counts, got {raw!r}")
        return normalise_usage(raw, batch=batch)
    if not top:
        raise UsageInvalid(
            "the event has no token usage: add a usage object or input_tokens/output_tokens"
        )
    return _canonical({k: props[k] for k in top}, batch)
