"""The price book as small tables, so a usage store can cost millions of events in SQL.

The cost of a request depends on its price version (model, provider, region and
time), its long-context tier (prompt size) and whether it is a batch request, and
is linear in its token counts. So a store can:

1. join each event with the **segment** of its model's timeline it falls in
   (:func:`price_segments`: between two consecutive validity boundaries of any
   version of the model no price starts or ends) and put it in a **prompt bucket**
   (the number of the model's long-context thresholds its prompt is above);
2. sum tokens per (customer, model, provider, region, segment, bucket, batch);
3. multiply by the prices of each such combination (:func:`rate_row`), computed
   here with the very rules that price a single request, so a report and
   ``ratecard costs quote`` always agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from ratecard.costs.model import TOKEN_KINDS, ModelPrice, PriceBook, Unpriced
from ratecard.costs.rules import resolve_rate

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class Segment:
    """A stretch ``[start, end)`` of a model's timeline (``None``: unbounded) in which
    the same versions are in force, and every threshold any of them uses."""

    model: str
    seg: int
    start: datetime | None
    end: datetime | None
    thresholds: tuple[int, ...]

    def representative(self) -> datetime:
        """An instant inside the segment, to look its prices up."""
        if self.start is not None:
            return self.start
        if self.end is not None:
            return self.end - _TICK
        return _EPOCH


def price_segments(book: PriceBook, models: set[str] | None = None) -> list[Segment]:
    """Every model's timeline cut at each ``valid_from``/``valid_to`` of its versions."""
    out: list[Segment] = []
    for model in book.models():
        if models is not None and model not in models:
            continue
        versions = book.versions(model)
        cuts = sorted({t for v in versions for t in (v.valid_from, v.valid_to) if t is not None})
        thresholds = tuple(sorted({t.above for v in versions for t in v.long_context}))
        bounds: list[datetime | None] = [None, *cuts, None]
        for i in range(len(bounds) - 1):
            out.append(Segment(model, i, bounds[i], bounds[i + 1], thresholds))
    return out


def bucket_prompt(thresholds: tuple[int, ...], bucket: int) -> int:
    """A prompt size inside ``bucket`` (0: at most the first threshold)."""
    return 0 if bucket == 0 else thresholds[bucket - 1] + 1


def bucket_of(thresholds: tuple[int, ...], prompt: int) -> int:
    return sum(1 for t in thresholds if prompt > t)


@dataclass(frozen=True)
class RateRow:
    """Prices (USD per token) of one (segment, provider, region, bucket, batch) combination.

    ``rates[kind]`` is ``None`` when the kind has no price (only output and reasoning can
    lack one): a request with such tokens is unpriced. ``reason`` is set when no
    version applies at all.
    """

    model: str
    seg: int
    provider: str | None
    region: str | None
    bucket: int
    batch: bool
    version: ModelPrice | None
    rates: dict[str, Decimal | None]
    per_request: Decimal | None
    reason: str | None = None
    long_context_above: int | None = None


def rate_row(book: PriceBook, segment: Segment, provider: str | None, region: str | None,
             bucket: int, batch: bool) -> RateRow:
    """The prices for one combination, by the same rules as a single request."""
    try:
        version = book.lookup(segment.model, segment.representative(), provider=provider,
                              region=region)
    except Unpriced as e:
        return RateRow(segment.model, segment.seg, provider, region, bucket, batch, None,
                       dict.fromkeys(TOKEN_KINDS), None, reason=e.reason)
    prompt = bucket_prompt(segment.thresholds, bucket)
    rates: dict[str, Decimal | None] = {}
    for kind in TOKEN_KINDS:
        try:
            rates[kind] = resolve_rate(version, prompt, batch, kind).price
        except Unpriced:
            rates[kind] = None
    above = [t.above for t in version.long_context if prompt > t.above]
    return RateRow(segment.model, segment.seg, provider, region, bucket, batch, version, rates,
                   version.per_request, long_context_above=above[-1] if above else None)
