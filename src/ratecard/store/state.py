"""The transactional state: engines, sessions and migrations.

SQLite in the workspace (``state.db``) by default; PostgreSQL when
``RATECARD_DATABASE_URL`` says so (``postgresql+psycopg://user@host:5432/db``).

* :func:`session_scope` opens a session on a workspace (or a URL), commits when the
  block succeeds and rolls back when it raises. The schema is brought up to date
  (Alembic ``upgrade heads``) the first time a process opens a database.
* :func:`migrate` runs every Alembic branch to its head.

SQLite runs in WAL mode with a busy timeout, and every transaction starts with
``BEGIN IMMEDIATE``: writers queue instead of failing halfway, which makes the
claim of an invoice period safe between two processes. PostgreSQL uses row locks
(``SELECT ... FOR UPDATE``) for the same claims.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ratecard.errors import Unavailable
from ratecard.money import to_str
from ratecard.workspace import Workspace

_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_factories: dict[str, sessionmaker[Session]] = {}
_migrated: set[str] = set()

SQLITE_BUSY_TIMEOUT_MS = 60_000
MIGRATION_LOCK = 7_261_001  # PostgreSQL advisory lock key held while migrating


def url_of(target: Workspace | str) -> str:
    return target.database_url if isinstance(target, Workspace) else str(target)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # let SQLAlchemy's begin event issue BEGIN itself (pysqlite's own is deferred)
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _json_default(o: Any) -> Any:
    """JSON for values the standard encoder refuses: exact decimals stay exact strings."""
    if isinstance(o, Decimal):
        return to_str(o)
    if isinstance(o, datetime):
        return o.isoformat().replace("+00:00", "Z")
    if isinstance(o, Mapping):
        return dict(o)
    if isinstance(o, set | frozenset):
        return sorted(o, key=str)
    if hasattr(o, "as_dict"):
        return o.as_dict()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def json_dumps(value: Any) -> str:
    """The JSON encoder of every state column (Decimals as exact strings)."""
    return json.dumps(value, default=_json_default, ensure_ascii=False, separators=(",", ":"))


def engine_for(url: str) -> Engine:
    """One engine per URL per process."""
    with _lock:
        engine = _engines.get(url)
        if engine is not None:
            return engine
        if is_sqlite(url):
            path = url.split(":///", 1)[1] if ":///" in url else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
                                   json_serializer=json_dumps)
            _sqlite_setup(engine)
        else:
            engine = create_engine(url, pool_pre_ping=True, json_serializer=json_dumps)
        _engines[url] = engine
        _factories[url] = sessionmaker(bind=engine, expire_on_commit=False)
        return engine


def dispose(url: str | None = None) -> None:
    """Close pooled connections (of one URL, or all): tests and forked workers call this."""
    with _lock:
        urls = [url] if url is not None else list(_engines)
        for u in urls:
            engine = _engines.pop(u, None)
            _factories.pop(u, None)
            _migrated.discard(u)
            if engine is not None:
                engine.dispose()


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", "ratecard.store:migrations")
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    """Run every Alembic branch to its head (``upgrade heads``)."""
    from alembic import command

    engine = engine_for(url)
    cfg = alembic_config(url)
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                # one migrating process at a time; the next finds the schema current
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "heads")
    except OperationalError as e:
        raise Unavailable(f"cannot reach the state database: {e.orig}") from None
    _migrated.add(url)


@functools.cache
def _script() -> Any:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://"))


def script_heads() -> frozenset[str]:
    """The head revision of every branch the installed package ships."""
    return frozenset(_script().get_heads())


def _with_ancestors(revisions: set[str]) -> set[str]:
    """The revisions and all they build on (down revisions and ``depends_on``)."""
    script = _script()
    seen: set[str] = set()
    todo = list(revisions)
    while todo:
        rid = todo.pop()
        if rid in seen:
            continue
        rev = script.get_revision(rid)
        if rev is None:
            continue
        seen.add(rev.revision)
        for attr in (rev.down_revision, rev.dependencies):
            if attr is None:
                continue
            todo.extend([attr] if isinstance(attr, str) else list(attr))
    return seen


def schema_is_current(url: str) -> bool:
    """Every branch head of the package is applied (Alembic keeps only the tips)."""
    from alembic.runtime.migration import MigrationContext

    with engine_for(url).connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
        conn.rollback()
    if not current:
        return False
    try:
        applied = _with_ancestors(current)
    except Exception:  # an unknown revision in the database: let migrate() report it
        return False
    return script_heads() <= applied


def ensure_schema(url: str) -> None:
    """Migrate once per process per database when the schema is behind."""
    if url in _migrated:
        return
    try:
        current = schema_is_current(url)
    except OperationalError as e:
        raise Unavailable(f"cannot reach the state database: {e.orig}") from None
    if not current:
        migrate(url)
    _migrated.add(url)


def session_factory(target: Workspace | str) -> sessionmaker[Session]:
    url = url_of(target)
    engine_for(url)
    ensure_schema(url)
    return _factories[url]


@contextmanager
def session_scope(target: Workspace | str) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    factory = session_factory(target)
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
