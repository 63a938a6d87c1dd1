"""Synthetic AI usage: llm.request events for many customers, as JSONL and Parquet.

``python bench/generate.py --events 10000000`` writes (and caches) two files in
``bench/data/``: ``usage-<events>-<seed>.jsonl`` and ``.parquet`` holding the same
events in time order. The shape:

* ``--customers`` customers (10,000) with Zipf-skewed volume (exponent 1: the largest
  customer sends about a tenth of all events), ids ``cust-00001``...;
* ``--models`` models (20), themselves Zipf-skewed;
* ``--days`` days (30) starting at ``--start`` (2026-04-01), with a daily cycle;
* properties ``model``, ``input_tokens``, ``output_tokens`` and ``cache_read_tokens``
  (integers, log-normal);
* a small share of resent lines (``--dup-rate``, 0.1%): the same event again, which
  ingest must count as a duplicate.

Vectorised with numpy and polars: ten million events take well under a minute.
Other benchmarks reuse the cached files through :func:`dataset`.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

DATA = Path(__file__).resolve().parent / "data"
MODELS = [
    "glm-4-plus", "glm-4-flash", "glm-4.6", "glm-z1", "gpt-4o", "gpt-4o-mini", "gpt-4.1",
    "gpt-4.1-mini", "o3", "o4-mini", "claude-sonnet-4", "claude-haiku-3.5", "claude-opus-4",
    "gemini-2.5-pro", "gemini-2.5-flash", "deepseek-v3", "deepseek-r1", "qwen-max",
    "qwen-plus", "llama-3.3-70b",
]
START = datetime(2026, 4, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Dataset:
    """The files of one generated data set and its shape."""

    events: int
    customers: int
    models: int
    days: int
    start: datetime
    seed: int
    jsonl: Path
    parquet: Path

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)


def _zipf_weights(n: int, s: float = 1.0) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** s
    return w / w.sum()


def build_frame(events: int, customers: int, models: int, days: int, start: datetime,
                seed: int, dup_rate: float) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    unique = max(1, round(events * (1 - dup_rate)))
    cust = rng.choice(customers, size=unique, p=_zipf_weights(customers))
    model = rng.choice(models, size=unique, p=_zipf_weights(models, 0.8))
    # a daily cycle: more traffic in the (UTC) afternoon
    hour_w = 0.55 + 0.45 * np.sin(np.pi * np.arange(24) / 24)
    day = rng.integers(0, days, size=unique, dtype=np.int64)
    hour = rng.choice(24, size=unique, p=hour_w / hour_w.sum()).astype(np.int64)
    within = rng.integers(0, 3_600_000_000, size=unique, dtype=np.int64)
    offs = np.sort(day * 86_400_000_000 + hour * 3_600_000_000 + within)
    inp = rng.lognormal(7.0, 1.1, size=unique).astype(np.int64) + 1
    out = rng.lognormal(5.5, 1.0, size=unique).astype(np.int64)
    cached = np.where(rng.random(unique) < 0.4,
                      (inp * rng.random(unique) * 0.9).astype(np.int64), 0)
    start_us = int(start.timestamp() * 1_000_000)
    idx = np.arange(unique, dtype=np.int64)
    if events > unique:
        # resend some events: the same line again, a little later in the file
        extra = events - unique
        src = np.sort(rng.choice(unique, size=extra, replace=False))
        order = np.argsort(np.concatenate([idx, src]), kind="stable")
        idx = np.concatenate([idx, src])[order]
    names = np.array([f"cust-{i + 1:05d}" for i in range(customers)])
    model_names = np.array((MODELS * (models // len(MODELS) + 1))[:models]) if models <= len(
        MODELS) else np.array([f"model-{i:03d}" for i in range(models)])
    df = pl.DataFrame({
        "n": idx,
        "customer": names[cust[idx]],
        "ts": (start_us + offs[idx]).astype("datetime64[us]"),
        "model": model_names[model[idx]],
        "input_tokens": inp[idx],
        "output_tokens": out[idx],
        "cache_read_tokens": cached[idx],
    })
    return df.select(
        pl.format("req-{}", pl.col("n")).alias("event_id"),
        pl.lit("llm.request").alias("type"),
        pl.col("customer"),
        pl.col("ts").dt.replace_time_zone("UTC").alias("timestamp"),
        pl.col("model"), pl.col("input_tokens"), pl.col("output_tokens"),
        pl.col("cache_read_tokens"),
    )


def write(df: pl.DataFrame, jsonl: Path, parquet: Path) -> None:
    jsonl.parent.mkdir(parents=True, exist_ok=True)
    df.write_parquet(parquet, row_group_size=1_000_000)
    chunk = 1_000_000
    tmp = jsonl.with_suffix(".jsonl.tmp")
    with tmp.open("wb") as f:
        for off in range(0, df.height, chunk):
            part = df.slice(off, chunk).select(
                pl.col("event_id"), pl.col("type"), pl.col("customer"),
                pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").alias("timestamp"),
                pl.struct("model", "input_tokens", "output_tokens",
                          "cache_read_tokens").alias("properties"),
            )
            part.write_ndjson(f)
    tmp.replace(jsonl)


def dataset(events: int = 10_000_000, *, customers: int = 10_000, models: int = 20,
            days: int = 30, start: datetime = START, seed: int = 7,
            dup_rate: float = 0.001, quiet: bool = False) -> Dataset:
    """The cached data set of this shape, generated on first use."""
    customers = min(customers, max(1, events // 10))
    tag = f"{events}-c{customers}-m{models}-d{days}-{start:%Y%m%d}-s{seed}"
    jsonl = DATA / f"usage-{tag}.jsonl"
    parquet = DATA / f"usage-{tag}.parquet"
    if not (jsonl.exists() and parquet.exists()):
        t = time.perf_counter()
        df = build_frame(events, customers, models, days, start, seed, dup_rate)
        write(df, jsonl, parquet)
        if not quiet:
            print(f"generated {events:,} events in {time.perf_counter() - t:.1f}s -> {jsonl}",
                  file=sys.stderr)
    return Dataset(events, customers, models, days, start, seed, jsonl, parquet)


def cli(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=10_000_000)
    p.add_argument("--customers", type=int, default=10_000)
    p.add_argument("--models", type=int, default=20)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args(argv)
    ds = dataset(a.events, customers=a.customers, models=a.models, days=a.days, seed=a.seed)
    print(ds.jsonl)
    print(ds.parquet)


if __name__ == "__main__":
    cli()
