"""``event_from_openai``: any OpenAI-compatible response (object or dict) → llm.request."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ratecard.client import event_from_openai
from ratecard.metering.events import parse_event

CHAT = {
    "id": "chatcmpl-abc123",
    "object": "chat.completion",
    "created": 1767225600,  # 2026-01-01T00:00:00Z
    "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
    "usage": {
        "prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 200},
        "completion_tokens_details": {"reasoning_tokens": 100},
    },
}


def test_chat_completion_dict() -> None:
    ev = event_from_openai(CHAT, customer="acme", feature="chat")
    assert ev["type"] == "llm.request" and ev["customer"] == "acme"
    assert ev["event_id"] == "chatcmpl-abc123"
    assert ev["timestamp"] == "2026-01-01T00:00:00Z"
    p = ev["properties"]
    # prompt tokens include the cached ones: ratecard's buckets are disjoint
    assert (p["input_tokens"], p["cache_read_tokens"], p["output_tokens"],
            p["reasoning_tokens"]) == (1000, 200, 300, 100)
    assert p["model"] == "gpt-4o-2024-08-06" and p["feature"] == "chat"
    # it is an event the server accepts
    from datetime import UTC, datetime

    parsed = parse_event(ev, now=datetime(2026, 1, 2, tzinfo=UTC))
    assert parsed.properties["input_tokens"] == 1000


def test_object_like_the_openai_sdk_returns() -> None:
    class Model:  # what pydantic models in the OpenAI SDK offer
        def __init__(self, data: dict[str, object]) -> None:
            self._data = data

        def model_dump(self) -> dict[str, object]:
            return self._data

    ev = event_from_openai(Model(CHAT), customer="acme", event_id="mine-1")
    assert ev["event_id"] == "mine-1"
    assert ev["properties"]["cache_read_tokens"] == 200

    plain = SimpleNamespace(id="r1", model="glm-4.6", created=None,
                            usage=SimpleNamespace(prompt_tokens=10, completion_tokens=5))
    ev = event_from_openai(plain, customer="c")
    assert (ev["properties"]["input_tokens"], ev["properties"]["output_tokens"]) == (10, 5)
    assert ev["timestamp"].endswith("Z")


def test_responses_and_anthropic_shapes() -> None:
    responses = {"id": "resp_1", "model": "o4-mini", "created_at": 1767225600,
                 "usage": {"input_tokens": 500, "output_tokens": 50,
                           "input_tokens_details": {"cached_tokens": 100},
                           "output_tokens_details": {"reasoning_tokens": 20}}}
    p = event_from_openai(responses, customer="c")["properties"]
    assert (p["input_tokens"], p["cache_read_tokens"], p["output_tokens"],
            p["reasoning_tokens"]) == (400, 100, 50, 20)
    anthropic = {"id": "msg_1", "model": "claude-sonnet-4",
                 "usage": {"input_tokens": 30, "output_tokens": 7,
                           "cache_read_input_tokens": 1000,
                           "cache_creation_input_tokens": 50}}
    p = event_from_openai(anthropic, customer="c")["properties"]
    assert (p["input_tokens"], p["cache_read_tokens"], p["cache_write_tokens"]) == (
        30, 1000, 50)


def test_no_usage_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="usage"):
        event_from_openai({"id": "x", "model": "m"}, customer="c")
    ev = event_from_openai({"usage": {"prompt_tokens": 1, "completion_tokens": 1}},
                           customer="c")
    assert len(ev["event_id"]) == 32  # a fresh UUID when the response has no id
