"""Many clients at once: batches are merged into shared appends, yet every answer is
exact for its own request, and the store holds each event once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sdk_support import Live


def batch(ids: range, tag: str) -> list[dict[str, Any]]:
    ts = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    return [{"event_id": f"{tag}-{i}", "type": "ticket.closed", "customer": "cust-a",
             "timestamp": ts} for i in ids]


def test_concurrent_batches_answer_exactly(server: Live) -> None:
    h = {"Authorization": f"Bearer {server.tokens['ingest']}"}
    plans: list[list[dict[str, Any]]] = []
    for k in range(12):
        plans.append(batch(range(k * 100, k * 100 + 100), "g"))       # new
    plans.append(batch(range(0, 100), "g"))                            # a resend of one
    plans.append(batch(range(1150, 1250), "g"))                        # overlaps the last
    plans.append([*batch(range(5000, 5050), "g"), {"event_id": "bad"}])  # one rejected
    answers: list[dict[str, Any] | None] = [None] * len(plans)

    def send(i: int) -> None:
        with httpx.Client(base_url=server.url, headers=h, timeout=60) as c:
            r = c.post("/v1/events", json=plans[i])
            assert r.status_code == 200, r.text
            answers[i] = r.json()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(plans))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(a is not None for a in answers)
    got = [a for a in answers if a is not None]
    accepted = sum(a["accepted"] for a in got)
    duplicates = sum(a["duplicates"] for a in got)
    rejected = sum(len(a["rejected"]) for a in got)
    unique = {e["event_id"] for p in plans for e in p if e["event_id"] != "bad"}
    sent = sum(len(p) for p in plans)
    assert accepted == len(unique) == 1300
    assert rejected == 1 and got[-1]["rejected"][0]["index"] == 51
    assert accepted + duplicates + rejected == sent
    for a, p in zip(got, plans, strict=True):
        assert a["accepted"] + a["duplicates"] + len(a["rejected"]) == len(p)

    # the store holds each event once: resending everything is all duplicates
    with httpx.Client(base_url=server.url, headers=h, timeout=60) as c:
        again = c.post("/v1/events", json=[e for p in plans[:12] for e in p]).json()
    assert (again["accepted"], again["duplicates"]) == (0, 1200)
