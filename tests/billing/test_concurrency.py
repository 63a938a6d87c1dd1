"""Two invoice runs at once, in two processes, never bill a boundary twice."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from .conftest import Billing

CHILD = r"""
import json, sys, time
from pathlib import Path
from datetime import datetime
from ratecard.billing.invoices import run_invoices
from ratecard.billing.usage import EventsUsage
from ratecard.metering.model import Event
from ratecard.store.state import session_scope

url, at, go, events_file, out = sys.argv[1:6]
events = [Event(e["id"], e["type"], e["customer"], datetime.fromisoformat(e["ts"]),
                e["props"]) for e in json.loads(Path(events_file).read_text())]
source = EventsUsage(events)
deadline = time.time() + 60
while not Path(go).exists() and time.time() < deadline:
    time.sleep(0.005)
report = run_invoices(lambda: session_scope(url), datetime.fromisoformat(at), source, chunk=3)
Path(out).write_text(json.dumps(report.as_dict()))
"""


def test_two_processes_run_at_once_without_double_billing(
    billing: Billing, tmp_path: Path
) -> None:
    n = 12
    for i in range(n):
        billing.customer(f"c{i:02d}")
        billing.subscribe(f"c{i:02d}", "starter", "2026-01-01")
        billing.events(f"c{i:02d}", "2026-01-10", n=i + 10)
    events = [{"id": e.event_id, "type": e.type, "customer": e.customer,
               "ts": e.timestamp.isoformat(), "props": dict(e.properties)}
              for e in billing.usage.events]
    ev_file = tmp_path / "events.json"
    ev_file.write_text(json.dumps(events))
    go = tmp_path / "go"
    procs = []
    for k in range(2):
        out = tmp_path / f"report{k}.json"
        procs.append((subprocess.Popen(
            [sys.executable, "-c", CHILD, billing.url, "2026-03-05T00:00:00+00:00", str(go),
             str(ev_file), str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), out))
    time.sleep(1.0)  # both processes are importing and waiting
    go.write_text("go")
    reports = []
    for p, out in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        reports.append(json.loads(out.read_text()))
    rows = billing.invoices()
    keys = [(r["subscription"], r["period_end"]) for r in rows]
    assert len(keys) == len(set(keys)) == n * 3  # Jan 1, Feb 1, Mar 1 boundaries
    assert sum(r["created"] for r in reports) == n * 3
    assert all(r["errors"] == [] for r in reports), reports
    numbers = sorted(int(r["number"].split("-")[1]) for r in rows if r["number"])
    assert numbers == list(range(1, len(numbers) + 1))
    assert len(numbers) == n * 3  # all finalized (the run is 4 days after the last one)
