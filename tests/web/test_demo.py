"""The demo (``scripts/demo.py --no-serve``, small) finishes with no failed command."""

from __future__ import annotations

from typing import Any


def test_demo_has_no_failed_commands(demo_ws: Any) -> None:
    res = demo_ws.result
    assert res.failures == []
    assert res.customers > 0 and res.events > 0 and res.invoices > 0
