"""Alembic environment: runs on the connection :func:`ratecard.store.state.migrate` passes.

Run from the command line too: ``alembic -x url=sqlite:///state.db upgrade heads`` with a
config whose ``script_location`` is ``ratecard.store:migrations``.
"""

from __future__ import annotations

import importlib
import pkgutil

from alembic import context
from sqlalchemy import create_engine

import ratecard.store
from ratecard.store.models import Base

# every domain's tables: ratecard/store/models.py and ratecard/store/*_models.py
for _mod in pkgutil.iter_modules(ratecard.store.__path__):
    if _mod.name.endswith("_models"):
        importlib.import_module(f"ratecard.store.{_mod.name}")

config = context.config
target_metadata = Base.metadata


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    engine = create_engine(str(url))
    with engine.begin() as conn:
        _run(conn)


if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
