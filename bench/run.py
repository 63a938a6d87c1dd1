"""Run every benchmark: each ``bench/*.py`` module that defines ``main(argv)``.

``python bench/run.py [--events N] [--only NAME ...] [--skip NAME ...]``

Each benchmark runs in its own process (its own memory, its own failure); ``--events``
is passed through to every benchmark (a quick run: ``--events 200000``). Each writes
``bench/results/<name>.json`` and prints its table; this prints a summary of which
passed. Helper modules (``common``, ``generate``, ``run``) are not benchmarks.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HELPERS = {"common", "generate", "run"}


def benchmarks() -> list[str]:
    """Modules of bench/ that define a top-level ``main`` function."""
    out = []
    for path in sorted(HERE.glob("*.py")):
        if path.stem in HELPERS or path.stem.startswith("_"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body):
            out.append(path.stem)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=None,
                   help="events for every benchmark (default: each benchmark's own)")
    p.add_argument("--only", nargs="*", default=None, help="run only these benchmarks")
    p.add_argument("--skip", nargs="*", default=[], help="leave these out")
    a = p.parse_args(argv)
    names = [n for n in benchmarks() if (a.only is None or n in a.only) and n not in a.skip]
    unknown = set(a.only or []) - set(benchmarks())
    if unknown:
        p.error(f"no benchmark {', '.join(sorted(unknown))}; have {', '.join(benchmarks())}")
    results: list[tuple[str, int, float]] = []
    for name in names:
        args = ["--events", str(a.events)] if a.events else []
        code = ("import sys; sys.path.insert(0, sys.argv[1]); import importlib; "
                "m = importlib.import_module(sys.argv[2]); r = m.main(sys.argv[3:]); "
                "sys.exit(r if isinstance(r, int) else 0)")
        print(f"\n=== {name} {' '.join(args)}", flush=True)
        t = time.perf_counter()
        rc = subprocess.run([sys.executable, "-c", code, str(HERE), name, *args]).returncode
        results.append((name, rc, time.perf_counter() - t))
    print("\n=== summary")
    for name, rc, secs in results:
        print(f"{name:<12} {'ok' if rc == 0 else f'FAILED (exit {rc})':<16} {secs:8.1f}s")
    return 0 if all(rc == 0 for _, rc, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
