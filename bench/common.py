"""Shared benchmark helpers: timing, peak memory of a phase, results files, tables.

* :func:`timed` / :class:`Timer`: wall and CPU seconds of a block.
* :func:`run_phase`: run ``python <script> --phase NAME --args JSON`` in a child
  process and return its JSON answer with the child's own peak resident memory, so
  every measured step has its own peak RSS (DuckDB's native memory included).
* :func:`phase_main`: the child side: dispatch ``--phase`` to a function of the module.
* :func:`percentiles`, :func:`write_results` (``bench/results/<name>.json``),
  :func:`print_table`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DATA = HERE / "data"


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Timer:
    wall: float = 0.0
    cpu: float = 0.0


@contextmanager
def timed() -> Iterator[Timer]:
    t = Timer()
    w0, c0 = time.perf_counter(), cpu_seconds()
    try:
        yield t
    finally:
        t.wall = time.perf_counter() - w0
        t.cpu = cpu_seconds() - c0


def percentiles(values: Sequence[float]) -> dict[str, float]:
    xs = sorted(values)
    if not xs:
        return {}

    def pct(p: float) -> float:
        k = min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))
        return xs[k]

    return {"n": len(xs), "p50": pct(50), "p90": pct(90), "p99": pct(99), "max": xs[-1],
            "mean": statistics.fmean(xs)}


def run_phase(script: Path | str, phase: str, args: dict[str, Any] | None = None,
              *, timeout: float | None = None) -> dict[str, Any]:
    """Run one phase of a benchmark script in a child process; its answer plus
    ``peak_rss_mb`` and the child's ``wall_s``/``cpu_s``."""
    cmd = [sys.executable, str(script), "--phase", phase, "--args", json.dumps(args or {})]
    w0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=None, text=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    wall = time.perf_counter() - w0
    if proc.returncode != 0:
        raise RuntimeError(f"phase {phase} of {script} failed with exit {proc.returncode}")
    lines = [x for x in out.splitlines() if x.startswith("{")]
    answer: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    answer.setdefault("wall_s", wall)
    return answer


def phase_main(phases: dict[str, Callable[[dict[str, Any]], dict[str, Any]]],
               argv: list[str] | None = None) -> bool:
    """If called with ``--phase``, run that phase, print its JSON answer, return True."""
    argv = sys.argv[1:] if argv is None else argv
    if "--phase" not in argv:
        return False
    p = argparse.ArgumentParser()
    p.add_argument("--phase", required=True)
    p.add_argument("--args", default="{}")
    a = p.parse_args(argv)
    w0, c0 = time.perf_counter(), cpu_seconds()
    answer = phases[a.phase](json.loads(a.args))
    answer.setdefault("wall_s", time.perf_counter() - w0)
    answer.setdefault("cpu_s", cpu_seconds() - c0)
    answer["peak_rss_mb"] = round(peak_rss_mb(), 1)
    sys.stdout.write(json.dumps(answer, default=str) + "\n")
    sys.stdout.flush()
    return True


def machine() -> dict[str, Any]:
    try:
        load = os.getloadavg()
    except OSError:  # pragma: no cover
        load = (0.0, 0.0, 0.0)
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "load_avg": [round(x, 2) for x in load],
            "at": datetime.now(UTC).isoformat(timespec="seconds")}


def write_results(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def print_table(title: str, rows: Sequence[Sequence[Any]], header: Sequence[str]) -> None:
    cells = [[str(c) for c in header]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(cells[0], widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in cells[1:]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v >= 100:
            return f"{v:,.0f}"
        if v >= 1:
            return f"{v:.2f}"
        return f"{v:.3f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)
