"""Backtest at scale: 5 candidates over 10,000 customers and 3 months of stored usage.

``python bench/simulate.py [--events 3000000] [--customers 10000] [--catalog blended|models]
[--workers 2]``

1. Takes the synthetic data set of ``bench/generate.py`` (``llm.request`` events of
   Zipf-skewed customers) over February-April 2026 and ingests it into a DuckDB usage
   store with rollups for the catalog's meters (cached in ``bench/data``).
2. Subscribes every customer (since 2026-01-01) to the current plan in a SQLite state
   database (cached too).
3. Times ``ratecard.simulate.service.backtest`` of five candidate catalogs over
   ``[2026-02-01, 2026-05-01)``: the three monthly invoices of every subscription, under
   the current plan and each candidate, with billing's rules (``--workers`` processes),
   and each phase of it: loading subscriptions, planning, reading usage (one aggregation
   per meter set and month), rating, comparing.
4. Checks the result (every customer in every report; an identical candidate changes
   nothing; a sample of customers re-rated through ``billing.assemble``) and writes
   ``bench/results/simulate-<catalog>.json`` with the rating cost per customer-period.

Target: the whole backtest under 30 s on 2 cores. ``--catalog blended`` prices tokens at
one price (a platform fee, blended tokens, requests on a graduated scale); ``models``
prices input, output and cached tokens per model (20 models: dimension pricing), the
shape of ``bench/billing.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate import MODELS, dataset  # noqa: E402

from ratecard.billing.catalogs import apply_catalog  # noqa: E402
from ratecard.billing.customers import create_customer  # noqa: E402
from ratecard.billing.invoices import fetch_usage  # noqa: E402
from ratecard.billing.subscriptions import create_subscription  # noqa: E402
from ratecard.billing.usage import StoreUsage  # noqa: E402
from ratecard.catalog.loader import parse_catalog_text  # noqa: E402
from ratecard.clock import Window  # noqa: E402
from ratecard.metering.events import EventRules  # noqa: E402
from ratecard.simulate import rules  # noqa: E402
from ratecard.simulate.model import Candidate  # noqa: E402
from ratecard.simulate.service import load_inputs, rate_parallel  # noqa: E402
from ratecard.store import state  # noqa: E402
from ratecard.store.state import session_factory, session_scope  # noqa: E402
from ratecard.store.usage import open_usage_store  # noqa: E402

START = datetime(2026, 2, 1, tzinfo=UTC)
WINDOW = Window(START, datetime(2026, 5, 1, tzinfo=UTC))
SUBSCRIBED = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 89

BLENDED = """
currency: USD
meters:
  requests:      {event: llm.request, aggregation: count}
  input_tokens:  {event: llm.request, aggregation: sum, property: input_tokens}
  output_tokens: {event: llm.request, aggregation: sum, property: output_tokens}
costs:
  meters: {requests: "0.0004"}
plans:
  api:
    name: API
    archetype: api
    base_fee: 49
    minimum: 100
    charges:
      - {name: Input tokens, meter: input_tokens, model: per_unit, per: 1000000,
         unit_price: "1.20"}
      - {name: Output tokens, meter: output_tokens, model: per_unit, per: 1000000,
         unit_price: "4.80"}
      - name: Requests
        meter: requests
        model: graduated
        tiers: [{up_to: 10000, unit_price: 0}, {up_to: null, unit_price: "0.0005"}]
"""


def models_catalog() -> str:
    """Input, output and cached tokens priced per model (dimension pricing)."""
    def prices(base: float) -> str:
        return "".join(f'\n          {m}: {{unit_price: "{base * (1 + i % 5) / 2:.2f}"}}'
                       for i, m in enumerate(MODELS))

    return f"""
currency: USD
meters:
  requests:      {{event: llm.request, aggregation: count}}
  input_tokens:  {{event: llm.request, aggregation: sum, property: input_tokens,
                  group_by: [model]}}
  output_tokens: {{event: llm.request, aggregation: sum, property: output_tokens,
                  group_by: [model]}}
  cached_tokens: {{event: llm.request, aggregation: sum, property: cache_read_tokens,
                  group_by: [model]}}
costs:
  meters: {{requests: "0.0004"}}
plans:
  api:
    name: API
    archetype: api
    base_fee: 49
    minimum: 100
    charges:
      - name: Input tokens
        meter: input_tokens
        model: per_unit
        per: 1000000
        prices_by: model
        prices:{prices(1.0)}
      - name: Output tokens
        meter: output_tokens
        model: per_unit
        per: 1000000
        prices_by: model
        prices:{prices(4.0)}
      - name: Cached input tokens
        meter: cached_tokens
        model: per_unit
        per: 1000000
        prices_by: model
        prices:{prices(0.2)}
      - name: Requests
        meter: requests
        model: graduated
        tiers: [{{up_to: 10000, unit_price: 0}}, {{up_to: null, unit_price: "0.0005"}}]
"""


def candidates(text: str) -> list[Candidate]:
    """Five candidates: a higher fee, cheaper tokens, a free request allowance cut, a
    higher minimum, and the current catalog unchanged (a control)."""
    variants = {
        "fee-99": text.replace("base_fee: 49", "base_fee: 99"),
        "tokens-20pct-off": text.replace('unit_price: "1.20"', 'unit_price: "0.96"')
                                .replace('unit_price: "4.80"', 'unit_price: "3.84"')
                                .replace("per: 1000000\n        prices_by: model",
                                         "per: 1250000\n        prices_by: model"),
        "requests-5k-free": text.replace("up_to: 10000, unit_price: 0",
                                         "up_to: 5000, unit_price: 0"),
        "minimum-250": text.replace("minimum: 100", "minimum: 250"),
        "control": text,
    }
    return [Candidate(name, parse_catalog_text(body)) for name, body in variants.items()]


def usage_store(ds: Any, catalog: Any, tag: str, rebuild: bool) -> Path:
    from ratecard.metering.ingest import ingest_sources

    path = HERE / "data" / f"simulate-usage-{tag}-{ds.events}-c{ds.customers}.duckdb"
    if path.exists() and not rebuild:
        return path
    path.unlink(missing_ok=True)
    t = time.perf_counter()
    store = open_usage_store(f"duckdb:///{path}")
    try:
        ingest_sources(store, [str(ds.parquet)], catalog=catalog,
                       rules=EventRules(late=timedelta(days=3650)), now=lambda: ds.end)
    finally:
        store.close()
    print(f"ingested {ds.events:,} events in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    return path


def state_db(customers: int, catalog: Any, text: str, tag: str, rebuild: bool) -> str:
    cached = HERE / "data" / f"simulate-state-{tag}-c{customers}.db"
    if rebuild or not cached.exists():
        cached.unlink(missing_ok=True)
        url = f"sqlite:///{cached}"
        t = time.perf_counter()
        with session_scope(url) as s:
            apply_catalog(s, catalog, text)
            for i in range(customers):
                cid = f"cust-{i + 1:05d}"
                create_customer(s, cid)
                create_subscription(s, cid, "api", start=SUBSCRIBED)
        state.dispose(url)
        print(f"state: {customers:,} subscriptions in {time.perf_counter() - t:.1f}s",
              file=sys.stderr)
    work = HERE / "data" / f"simulate-state-{tag}-run.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{work}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(cached, work)
    return f"sqlite:///{work}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=3_000_000)
    p.add_argument("--customers", type=int, default=10_000)
    p.add_argument("--catalog", choices=("blended", "models"), default="blended")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--rebuild", action="store_true")
    a = p.parse_args(argv)

    text = BLENDED if a.catalog == "blended" else models_catalog()
    catalog = parse_catalog_text(text)
    ds = dataset(a.events, customers=a.customers, days=DAYS, start=START)
    store_path = usage_store(ds, catalog, a.catalog, a.rebuild)
    url = state_db(ds.customers, catalog, text, a.catalog, a.rebuild)
    cands = candidates(text)
    store = open_usage_store(f"duckdb:///{store_path}", read_only=True)
    source = StoreUsage(store)
    phases: dict[str, float] = {}
    phase_cpu: dict[str, float] = {}
    cpu0 = time.process_time()
    child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    session = session_factory(url)()
    try:
        t, c = time.perf_counter(), time.process_time()
        inputs, base = load_inputs(session, WINDOW)
        phases["load_subscriptions_s"] = time.perf_counter() - t
        phase_cpu["load_subscriptions_cpu_s"] = time.process_time() - c
    finally:
        session.rollback()
        session.close()
    t, c = time.perf_counter(), time.process_time()
    prep = rules.prepare(inputs, cands, WINDOW, base=base)
    phases["plan_invoices_s"] = time.perf_counter() - t
    phase_cpu["plan_invoices_cpu_s"] = time.process_time() - c
    t, c = time.perf_counter(), time.process_time()
    usage = fetch_usage(source, prep.requests + prep.cost_requests)
    phases["read_usage_s"] = time.perf_counter() - t
    phase_cpu["read_usage_cpu_s"] = time.process_time() - c
    t = time.perf_counter()
    rules.check_usage(prep, usage)
    rated = rate_parallel(prep, usage, workers=a.workers)
    phases["rate_s"] = time.perf_counter() - t
    t, c = time.perf_counter(), time.process_time()
    bt = rules.compare(prep, rated)
    phases["compare_s"] = time.perf_counter() - t
    phase_cpu["compare_cpu_s"] = time.process_time() - c
    total = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = (child1.ru_utime + child1.ru_stime) - (child0.ru_utime + child0.ru_stime)
    cpu_serial = sum(phase_cpu.values())   # the parent's own phases (rating runs in the workers)

    # checks
    n = len(inputs)
    for rep in bt.candidates:
        assert len(rep.results) + len(rep.errors) == n, (rep.name, len(rep.results))
        assert not rep.errors, rep.errors[:3]
    control = next(r for r in bt.candidates if r.name == "control")
    assert all(r.delta == 0 for r in control.results)
    sample = random.Random(7).sample(range(n), min(20, n))
    ref = rules.rate_subs(prep, usage, sample, reference=True)
    for i in sample:
        assert ref.baseline[i][:2] == rated.baseline[i][:2], i
        for j in range(len(cands)):
            assert ref.moved[(i, j)] == rated.moved[(i, j)], (i, j)
    store.close()
    state.dispose(url)

    periods = n * 3
    ratings = periods * (1 + len(cands))
    result = {
        "benchmark": "simulate",
        "catalog": a.catalog,
        "events": ds.events,
        "customers": n,
        "candidates": len(cands),
        "months": 3,
        "workers": a.workers,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg()[0],
        "total_s": round(total, 2),
        "target_s": 30,
        "within_target": total < 30,
        "process_cpu_s": round(cpu, 2),
        "workers_cpu_s": round(child_cpu, 2),
        "cpu_s_per_rating_us": round((cpu + child_cpu) * 1e6 / ratings, 1),
        **{k: round(v, 3) for k, v in phases.items()},
        **{k: round(v, 3) for k, v in phase_cpu.items()},
        "idle_estimate_s": round(cpu_serial + child_cpu / max(1, a.workers), 1),
        "customer_periods": periods,
        "ratings": ratings,
        "rating_ms_per_customer_period_all_scenarios": round(
            phases["rate_s"] * 1000 / periods, 3),
        "rating_us_per_rating": round(phases["rate_s"] * 1e6 / ratings, 1),
        "comparison": [{k: str(v) if not isinstance(v, int | type(None)) else v
                        for k, v in row.items()} for row in bt.comparison()],
        "checked": {"control_unchanged": True, "reference_sample": len(sample)},
    }
    out = HERE / "results" / f"simulate-{a.catalog}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "comparison"}, indent=2))
    return result


if __name__ == "__main__":
    main()
