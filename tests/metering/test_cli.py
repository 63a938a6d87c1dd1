"""The metering CLI end to end: init, events ingest (JSONL, CSV, Parquet, stdin), usage,
void, show; and durability: an ingest killed with SIGKILL loses no acknowledged event."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ratecard.cli import main
from ratecard.store.usage import open_usage_store

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "examples" / "llm_api.yaml"
DAY = (datetime.now(UTC) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)


def at(minutes: int) -> str:
    return (DAY + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def event(i: int, customer: str = "acme", model: str = "glm-4-plus", tokens: Any = 100,
          **extra: Any) -> dict[str, Any]:
    return {"event_id": f"req-{i}", "type": "llm.request", "customer": customer,
            "timestamp": at(i), "properties": {"model": model, "input_tokens": tokens,
                                                "output_tokens": 10, **extra}}


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Any:
    monkeypatch.delenv("RATECARD_DATABASE_URL", raising=False)
    monkeypatch.delenv("RATECARD_USAGE_URL", raising=False)
    ws = tmp_path / "ws"

    def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
        capsys.readouterr()
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
        code = main([*args, "--workspace", str(ws)])
        out, err = capsys.readouterr()
        return code, out, err

    run.ws = ws  # type: ignore[attr-defined]
    run.tmp = tmp_path  # type: ignore[attr-defined]
    return run


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_init_makes_a_workspace_once(cli: Any, tmp_path: Path, capsys: Any) -> None:
    capsys.readouterr()
    assert main(["init", str(tmp_path / "w2")]) == 0
    out = capsys.readouterr().out
    assert "created workspace" in out
    assert (tmp_path / "w2" / "ratecard.toml").exists()
    assert (tmp_path / "w2" / "usage.duckdb").exists()
    assert (tmp_path / "w2" / "state.db").exists()
    assert main(["init", str(tmp_path / "w2"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["created"] is False


def test_ingest_usage_void(cli: Any) -> None:
    assert cli("init")[0] == 0
    assert cli("catalog", "apply", str(CATALOG))[0] == 0
    f = write_jsonl(cli.tmp / "events.jsonl", [
        event(1), event(2, model="glm-4-flash", tokens="250"), event(1),
        "", event(3, tokens="lots"), "{broken", event(4, customer="beta"),
        {**event(5), "timestamp": "2020-01-01T00:00:00Z"},
    ])
    code, out, _ = cli("events", "ingest", str(f), "--json")
    assert code == 0
    summary = json.loads(out)
    assert (summary["accepted"], summary["duplicates"], summary["rejected"]) == (3, 1, 3)
    assert [r["line"] for r in summary["first_rejections"]] == [5, 6, 8]
    rejects = [json.loads(x) for x in Path(summary["rejects_file"]).read_text().splitlines()]
    assert [r["line"] for r in rejects] == [5, 6, 8]
    assert rejects[0]["event_id"] == "req-3" and "input_tokens" in rejects[0]["reason"]
    assert rejects[1]["raw"] == "{broken"
    # the same file again changes nothing
    code, out, _ = cli("events", "ingest", str(f), "--json",
                       "--rejects", str(cli.tmp / "r.jsonl"))
    again = json.loads(out)
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 4, 3)
    assert len((cli.tmp / "r.jsonl").read_text().splitlines()) == 3

    window = ["--from", DAY.date().isoformat(), "--to", (DAY + timedelta(days=1)).isoformat()]
    code, out, _ = cli("usage", "--customer", "acme", "--meter", "input_tokens", *window,
                       "--json")
    assert code == 0
    got = json.loads(out)
    assert got["quantity"] == "350" and got["customer"] == "acme"
    assert got["from"] == DAY.isoformat().replace("+00:00", "Z")
    assert got["groups"] == [{"group": {"model": "glm-4-flash"}, "quantity": "250"},
                             {"group": {"model": "glm-4-plus"}, "quantity": "100"}]
    code, out, _ = cli("usage", "--customer", "acme", "--meter", "input_tokens", *window,
                       "--group-by", "", "--json")
    assert json.loads(out)["groups"] == []

    code, out, _ = cli("events", "void", "req-2", "--reason", "test traffic")
    assert code == 0 and "voided req-2" in out
    code, out, _ = cli("usage", "--customer", "acme", "--meter", "input_tokens", *window,
                       "--json")
    assert json.loads(out)["quantity"] == "100"
    code, out, _ = cli("events", "show", "req-2", "--json")
    shown = json.loads(out)
    assert shown["voided"] is True and shown["void_reason"] == "test traffic"
    assert shown["properties"]["input_tokens"] == "250"

    code, _, err = cli("events", "void", "req-2", "--reason", "again")
    assert code == 4 and err.startswith("error: event 'req-2' was already voided")
    code, _, err = cli("events", "void", "nope", "--reason", "x")
    assert code == 3 and "no event 'nope'" in err
    code, _, err = cli("usage", "--customer", "acme", "--meter", "nope", *window)
    assert code == 3 and "input_tokens" in err and "Traceback" not in err
    code, _, err = cli("usage", "--customer", "acme", "--meter", "input_tokens",
                       "--from", "yesterday", "--to", "2026-01-01")
    assert code == 1 and "--from" in err


def test_ingest_without_catalog_warns_and_stores(cli: Any) -> None:
    cli("init")
    f = write_jsonl(cli.tmp / "e.jsonl", [event(1, tokens="lots")])
    code, out, err = cli("events", "ingest", str(f))
    assert code == 0
    assert "1 accepted, 0 duplicates, 0 rejected" in out
    assert "no catalog is applied" in err


def test_csv_parquet_and_stdin(cli: Any) -> None:
    cli("init")
    cli("catalog", "apply", str(CATALOG))
    csv = cli.tmp / "e.csv"
    csv.write_text(
        "event_id,type,customer,timestamp,model,input_tokens,properties\n"
        f"c1,llm.request,acme,{at(1)},glm-z1,12.5,\n"
        f"c2,llm.request,acme,{at(2)},glm-z1,abc,\n"
        f"c3,llm.request,acme,{at(3)},glm-z1,7,\"{{\"\"region\"\": \"\"eu\"\"}}\"\n"
        f"c4,llm.request,,{at(4)},glm-z1,7,\n"
    )
    code, out, _ = cli("events", "ingest", str(csv), "--json")
    s = json.loads(out)
    assert (s["accepted"], s["rejected"]) == (2, 2)
    assert [r["line"] for r in s["first_rejections"]] == [3, 5]
    code, out, _ = cli("events", "show", "c3", "--json")
    assert json.loads(out)["properties"] == {"region": "eu", "model": "glm-z1",
                                             "input_tokens": "7"}

    table = pa.table({
        "event_id": ["p1", "p2"], "type": ["llm.request"] * 2, "customer": ["acme", "beta"],
        "timestamp": pa.array([DAY + timedelta(hours=1), DAY + timedelta(hours=2)],
                              pa.timestamp("us", tz="UTC")),
        "model": ["glm-z1", "glm-z1"], "input_tokens": pa.array([5, 6], pa.int64()),
    })
    pq.write_table(table, cli.tmp / "e.parquet")
    code, out, _ = cli("events", "ingest", str(cli.tmp / "e.parquet"), "--json")
    assert json.loads(out)["accepted"] == 2

    code, out, _ = cli("events", "ingest", "-", "--json",
                       stdin=json.dumps(event(9, model="glm-z1", tokens=1)) + "\n")
    assert json.loads(out)["accepted"] == 1
    window = ["--from", DAY.isoformat(), "--to", (DAY + timedelta(days=1)).isoformat()]
    code, out, _ = cli("usage", "--customer", "acme", "--meter", "input_tokens", *window,
                       "--json")
    assert code == 0 and json.loads(out)["quantity"] == "25.5"


def test_unknown_extension_and_missing_file(cli: Any) -> None:
    cli("init")
    (cli.tmp / "e.txt").write_text("{}\n")
    code, _, err = cli("events", "ingest", str(cli.tmp / "e.txt"))
    assert code == 1 and "--format" in err
    code, _, err = cli("events", "ingest", str(cli.tmp / "missing.jsonl"))
    assert code == 3 and "no such file" in err


def test_sigkill_loses_no_acknowledged_event(tmp_path: Path) -> None:
    """Kill an ingest part way: every event it acknowledged (in its commit log) is stored,
    and ingesting the same file again adds exactly the rest."""
    env = {**os.environ, "RATECARD_HOME": str(tmp_path / "ws")}
    env.pop("RATECARD_DATABASE_URL", None)
    env.pop("RATECARD_USAGE_URL", None)
    cmd = [sys.executable, "-c", "import sys; from ratecard.cli import main; sys.exit(main())"]
    subprocess.run([*cmd, "init"], env=env, check=True, capture_output=True)
    n = 12_000
    f = tmp_path / "big.jsonl"
    with f.open("w") as out:
        for i in range(n):
            out.write(json.dumps(event(i % 2000, customer=f"c{i % 7}", tokens=i)
                                 | {"event_id": f"e{i}"}) + "\n")
    log = tmp_path / "commits.jsonl"
    proc = subprocess.Popen([*cmd, "events", "ingest", str(f), "--commit-log", str(log),
                             "--batch-mb", "0.05"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if log.exists() and len(log.read_text().splitlines()) >= 3:
            break
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    acks = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    assert acks, "the ingest acknowledged nothing before it was killed"
    last = acks[-1]["line"]
    acknowledged = sum(a["accepted"] for a in acks)
    assert last < n, "the ingest finished before it was killed; the test proves nothing"

    store = open_usage_store(f"duckdb:///{tmp_path / 'ws' / 'usage.duckdb'}")
    try:
        stored = {e.event_id for e in store.scan()}
    finally:
        store.close()
    assert {f"e{i}" for i in range(last)} <= stored
    assert len(stored) >= acknowledged

    done = subprocess.run([*cmd, "events", "ingest", str(f), "--json"], env=env, check=True,
                          capture_output=True, text=True)
    summary = json.loads(done.stdout)
    assert summary["accepted"] == n - len(stored)
    assert summary["duplicates"] == len(stored)
    store = open_usage_store(f"duckdb:///{tmp_path / 'ws' / 'usage.duckdb'}")
    try:
        assert sum(1 for _ in store.scan()) == n
    finally:
        store.close()
