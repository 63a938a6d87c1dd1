"""The state database: migrations on both backends, exact types, session scope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import inspect, select, text

from ratecard.store import state
from ratecard.store.models import CustomerRow, NumberSeries


def test_migrate_creates_every_billing_table(empty_state_url: str) -> None:
    state.migrate(empty_state_url)
    names = set(inspect(state.engine_for(empty_state_url)).get_table_names())
    assert {"customers", "plans", "plan_versions", "subscriptions", "subscription_phases",
            "invoices", "invoice_lines", "credit_notes", "number_series",
            "catalog_revisions"} <= names
    assert state.schema_is_current(empty_state_url)
    state.migrate(empty_state_url)  # a second upgrade is a no-op
    assert state.schema_is_current(empty_state_url)


def test_session_scope_migrates_a_fresh_database(empty_state_url: str) -> None:
    assert not state.schema_is_current(empty_state_url)
    with state.session_scope(empty_state_url) as s:
        assert s.scalars(select(CustomerRow)).all() == []
    assert state.schema_is_current(empty_state_url)


def test_session_scope_commits_and_rolls_back(state_url: str) -> None:
    with state.session_scope(state_url) as s:
        s.add(NumberSeries(series="A", next_number=7))
    with pytest.raises(RuntimeError), state.session_scope(state_url) as s:
        s.add(NumberSeries(series="B", next_number=1))
        s.flush()
        raise RuntimeError("boom")
    with state.session_scope(state_url) as s:
        assert {r.series for r in s.scalars(select(NumberSeries))} == {"A"}


def test_amounts_and_times_round_trip_exactly(state_url: str) -> None:
    at = datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    with state.session_scope(state_url) as s:
        s.add(CustomerRow(external_id="c1", name="", currency="USD", timezone="UTC",
                          metadata_={"k": "v"}, byok=False, created_at=at))
    with state.session_scope(state_url) as s:
        c = s.scalars(select(CustomerRow)).one()
        assert c.created_at == at
        assert c.created_at.tzinfo is not None and c.created_at.utcoffset() == timedelta(0)
        assert c.metadata_ == {"k": "v"}


def test_decimal_column_keeps_every_digit(state_url: str) -> None:
    from ratecard.store.models import Amount

    engine = state.engine_for(state_url)
    typ = Amount()
    value = Decimal("12345678901234567890.123456789012345678")
    bound = typ.process_bind_param(value, engine.dialect)
    assert typ.process_result_value(bound, engine.dialect) == value
    with engine.connect() as conn:
        conn.rollback()
        assert conn.execute(text("select 1")).scalar() == 1


def test_naive_datetime_is_refused(state_url: str) -> None:
    with pytest.raises(Exception, match="naive"), state.session_scope(state_url) as s:
        s.add(CustomerRow(external_id="c2", name="", currency="USD", timezone="UTC",
                          metadata_={}, byok=False, created_at=datetime(2026, 1, 1)))
        s.flush()
    assert datetime(2026, 1, 1, tzinfo=UTC)


def test_two_processes_migrating_a_fresh_database_at_once(empty_state_url: str) -> None:
    import subprocess
    import sys

    code = ("import sys; from ratecard.store import state; state.migrate(sys.argv[1]); "
            "print('ok')")
    procs = [subprocess.Popen([sys.executable, "-c", code, empty_state_url],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out.strip() == "ok"
    assert state.schema_is_current(empty_state_url)
