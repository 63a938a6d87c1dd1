"""Unit economics: revenue, cost of goods, margins, CPT, CPR, CPAM, model cost ratio.

Pure rules live in :mod:`ratecard.analytics.rules` over the facts of
:mod:`ratecard.analytics.model`; :mod:`ratecard.analytics.service` gathers the facts
of a workspace. ``margins`` and ``cost_per_task`` are imported lazily, so importing
the pure modules pulls in no storage library.
"""

from __future__ import annotations

from typing import Any

__all__ = ["cost_per_task", "margins"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ratecard.analytics import service

        return getattr(service, name)
    raise AttributeError(f"module 'ratecard.analytics' has no attribute {name!r}")
