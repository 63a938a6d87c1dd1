"""Scale out on PostgreSQL + ClickHouse: sharded invoice runs in parallel processes.

Three ``ratecard invoices run --shard I/3`` processes start at once on one PostgreSQL
state database and one ClickHouse usage store: every subscription is billed exactly
once (each by one shard), and running the shards again, or unsharded, adds nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ratecard.billing.invoices import shard_of
from ratecard.metering.model import Event
from ratecard.store.usage import open_usage_store

pytestmark = [pytest.mark.clickhouse, pytest.mark.postgres]

CMD = [sys.executable, "-c", "import sys; from ratecard.cli import main; sys.exit(main())"]

CATALOG = """
currency: USD
meters:
  resolutions: {event: ticket.closed, aggregation: count, filter: {outcome: resolved}}
plans:
  starter:
    name: Starter
    base_fee: 31
    charges:
      - {name: Resolutions, meter: resolutions, model: per_unit, included: 10, unit_price: "1.29"}
"""

N_CUSTOMERS = 24
AT = "2026-02-01T06:00:00Z"


@pytest.fixture
def scaled(tmp_path: Path, pg_cluster: Any, clickhouse_usage_url: str) -> dict[str, Any]:
    """A workspace on PostgreSQL (state) and ClickHouse (usage) with customers and usage."""
    from ratecard.store import state

    db = pg_cluster.url(pg_cluster.create_database("scale"))
    state.migrate(db)
    state.dispose(db)
    env = {**os.environ, "RATECARD_HOME": str(tmp_path / "ws"), "RATECARD_DATABASE_URL": db,
           "RATECARD_USAGE_URL": clickhouse_usage_url}
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(CATALOG)
    script = [
        "from ratecard.cli import main",
        "assert main(['init']) in (0, None)",
        f"assert main(['catalog', 'apply', {str(catalog)!r}]) == 0",
    ]
    for i in range(N_CUSTOMERS):
        script.append(f"assert main(['customers', 'create', 'c{i:02d}']) == 0")
        script.append(f"assert main(['subscriptions', 'create', '--customer', 'c{i:02d}', "
                      f"'--plan', 'starter', '--start', '2026-01-01']) == 0")
    subprocess.run([sys.executable, "-c", "\n".join(script)], env=env, check=True,
                   capture_output=True, text=True, timeout=600)
    store = open_usage_store(clickhouse_usage_url)
    try:
        t = datetime(2026, 1, 9, tzinfo=UTC)
        store.append([Event(f"e{i}-{k}", "ticket.closed", f"c{i:02d}", t + timedelta(minutes=k),
                            {"outcome": "resolved"})
                      for i in range(N_CUSTOMERS) for k in range(i + 5)])
    finally:
        store.close()
    return {"env": env, "db": db}


def _run(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*CMD, "invoices", "run", "--at", AT, "--json", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _cli(env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
         capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the CLI in this process with the workspace's environment."""
    from ratecard.cli import main

    for k in ("RATECARD_HOME", "RATECARD_DATABASE_URL", "RATECARD_USAGE_URL"):
        monkeypatch.setenv(k, env[k])
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _invoices(env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
              capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    code, out, err = _cli(env, monkeypatch, capsys, "invoices", "list", "--json", *args)
    assert code == 0, err
    rows: list[dict[str, Any]] = json.loads(out)
    return rows


def test_three_shards_in_parallel_bill_every_subscription_exactly_once(
        scaled: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    env = scaled["env"]
    procs = [_run(env, "--shard", f"{k}/3") for k in (1, 2, 3)]
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        reports.append(json.loads(out))
    # the shards split the subscriptions: disjoint, and together all of them
    assert sum(r["subscriptions"] for r in reports) == N_CUSTOMERS
    expected = Counter(shard_of(f"c{i:02d}", 3) for i in range(N_CUSTOMERS))
    assert [r["subscriptions"] for r in reports] == [expected[k] for k in (1, 2, 3)]
    rows = _invoices(env, monkeypatch, capsys)
    # an invoice is one subscription's one boundary: never two of them
    per_sub = Counter((r["subscription"], r["period_end"]) for r in rows)
    assert all(n == 1 for n in per_sub.values()), per_sub.most_common(3)
    assert len({r["subscription"] for r in rows}) == N_CUSTOMERS
    assert len({n for n in Counter(r["subscription"] for r in rows).values()}) == 1
    assert sum(r["created"] for r in reports) == len(rows)
    # the usage came from ClickHouse: c23 closed 28 tickets in January
    used = Decimal(0)
    for r in _invoices(env, monkeypatch, capsys, "--customer", "c23"):
        _, shown, _ = _cli(env, monkeypatch, capsys, "invoices", "show", str(r["id"]), "--json")
        used += sum((Decimal(ln["quantity"]) for ln in json.loads(shown)["lines"]
                     if ln["meter"] == "resolutions"), Decimal(0))
    assert used == 28

    # overlapping and repeated runs are harmless: shard 1 twice at once, then everything
    again = [_run(env, "--shard", "1/3"), _run(env, "--shard", "1/3"), _run(env)]
    for p in again:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        assert json.loads(out)["created"] == 0
    assert len(_invoices(env, monkeypatch, capsys)) == len(rows)


def test_shard_option_is_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    env = {"RATECARD_HOME": str(tmp_path / "ws"),
           "RATECARD_DATABASE_URL": f"sqlite:///{tmp_path / 'state.db'}",
           "RATECARD_USAGE_URL": f"duckdb:///{tmp_path / 'usage.duckdb'}"}
    for bad in ("0/3", "4/3", "x", "1/0", "2"):
        code, _, err = _cli(env, monkeypatch, capsys, "invoices", "run", "--shard", bad)
        assert code == 1, (bad, err)
        assert "--shard" in err and "Traceback" not in err
    assert shard_of("acme", 1) == 1
    assert {shard_of(f"c{i}", 4) for i in range(200)} == {1, 2, 3, 4}
    assert shard_of("acme", 3) == shard_of("acme", 3)
