"""Versioned catalog storage: apply, diff, versions, grandfathering inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from ratecard.billing.catalogs import (
    apply_catalog,
    current_catalog,
    diff_values,
    plan_version,
    plan_versions,
    rating_catalog,
)
from ratecard.catalog import load_catalog
from ratecard.catalog.loader import parse_catalog_text
from ratecard.errors import NotFound
from ratecard.store.state import session_scope

from .conftest import CATALOG, Billing

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))


def test_every_example_round_trips_through_storage(state_url: str) -> None:
    assert len(EXAMPLES) >= 5
    for path in EXAMPLES:
        catalog = load_catalog(path)
        with session_scope(state_url) as s:
            result = apply_catalog(s, catalog, path.read_text())
            assert result.changed
        with session_scope(state_url) as s:
            stored = current_catalog(s)
            assert stored is not None
            assert stored.plans.keys() == catalog.plans.keys()
            for code, plan in catalog.plans.items():
                pv = plan_version(s, code)
                assert pv.plan.charges == plan.charges
                assert pv.plan.base_fee == plan.base_fee
                rc = rating_catalog(pv, stored)
                assert rc.plans[code].charges == plan.charges
            # applying the same file again changes nothing
            again = apply_catalog(s, catalog, path.read_text())
            assert not again.changed and again.lines() == ["no changes"]


def test_a_changed_plan_gets_a_new_version_and_others_keep_theirs(billing: Billing) -> None:
    changed = CATALOG.replace("base_fee: 62", "base_fee: 70")
    with billing.session() as s:
        dry = apply_catalog(s, parse_catalog_text(changed), changed, dry_run=True)
        assert [(p.code, p.kind) for p in dry.plans if p.kind != "unchanged"] == [
            ("pro", "changed")]
        assert plan_version(s, "pro").version == 1  # nothing written by the dry run
    result = billing.apply(changed)
    pro = next(p for p in result.plans if p.code == "pro")
    assert (pro.old_version, pro.new_version) == (1, 2)
    assert pro.diff == ("~ plans.pro.base_fee: 62 -> 70",)
    assert "~ plan pro: version 1 -> 2" in result.lines()
    with billing.session() as s:
        assert [v.version for v in plan_versions(s, "pro")] == [1, 2]
        assert plan_version(s, "pro", 1).plan.base_fee == 62
        assert plan_version(s, "pro").plan.base_fee == 70
        assert plan_version(s, "starter").version == 1
        with pytest.raises(NotFound, match="versions 1 to 2"):
            plan_version(s, "pro", 3)
        with pytest.raises(NotFound, match="no plan 'gold'"):
            plan_version(s, "gold")


def test_a_meter_change_is_a_plan_change(billing: Billing) -> None:
    changed = CATALOG.replace("filter: {outcome: resolved}", "filter: {outcome: [resolved, ok]}")
    result = billing.apply(changed)
    kinds = {p.code: p.kind for p in result.plans}
    assert kinds["starter"] == kinds["pro"] == kinds["committed"] == "changed"
    assert kinds["team"] == kinds["api"] == "unchanged"
    with billing.session() as s:
        old = plan_version(s, "starter", 1)
        assert old.meters["resolutions"]["filter"] == {"outcome": "resolved"}


def test_a_removed_plan_is_retired_then_restored(billing: Billing) -> None:
    without = CATALOG.replace("  euro:\n    name: Euro\n    currency: EUR\n    base_fee: 10\n", "")
    result = billing.apply(without)
    assert [(p.code, p.kind) for p in result.plans if p.kind != "unchanged"] == [
        ("euro", "removed")]
    with billing.session() as s:
        assert plan_version(s, "euro").retired
    result = billing.apply(CATALOG)
    assert [(p.code, p.kind) for p in result.plans if p.kind != "unchanged"] == [
        ("euro", "restored")]


def test_diff_values_names_each_path() -> None:
    old = {"a": {"b": "1", "c": ["x", "y"]}, "gone": 1}
    new = {"a": {"b": "2", "c": ["x", "z"]}, "new": {"k": True}}
    assert diff_values(old, new) == [
        "~ a.b: 1 -> 2", "~ a.c[1]: y -> z", "- gone (was 1)", '+ new: {"k": true}']
