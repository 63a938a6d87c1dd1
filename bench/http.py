"""HTTP load on a real server: event ingest in batches of 1,000, and the check endpoint.

``python bench/http.py [--events 300000] [--batch 1000] [--connections 8]
[--check-rate 500] [--check-seconds 10]`` (``make bench`` runs it through
``bench/run.py``). The server is ``ratecard serve`` in its own process; this one is
the load generator. Targets: at least 50,000 events/s ingested over HTTP in batches of
1,000 on 2 cores; the check endpoint's p99 under 10 ms at 500 requests/s; afterwards
the store holds exactly what was acknowledged. Writes ``bench/results/http.json``.

The work is in ``bench/_http_load.py``, run as a script: this module's name is the
standard library's ``http``, so ``bench/run.py`` (which imports benchmarks by name)
gets this small module, and the load generator, which needs ``http.client``, runs in
a process of its own.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "_http_load.py"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    return subprocess.run([sys.executable, str(SCRIPT), *args]).returncode


if __name__ == "__main__":
    sys.exit(main())
