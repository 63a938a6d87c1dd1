"""Shared test setup: the throwaway PostgreSQL cluster and the state database fixtures.

Domain fixtures live in each ``tests/<domain>/conftest.py``.

Fixtures:

* ``pg_cluster`` (session): a PostgreSQL cluster started for this test run on a free
  loopback port, in a temporary folder, as the ``postgres`` user when the tests run
  as root (``initdb`` refuses root). Stopped and removed at the end. When it cannot
  start, every test that needs it fails with the server's log: no silent skip.
* ``postgres_url`` (session): one database on that cluster (``postgresql+psycopg://``).
* ``state_url``: a fresh, migrated state database for one test, parametrised over
  ``sqlite`` and ``postgres`` so every storage test runs on both.
* ``empty_state_url``: the same, not migrated (for tests of migrations themselves).
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# ClickHouse fixtures (a server, a two-shard cluster, chdb, and usage_url over every backend)
pytest_plugins = ["ratecard.store.clickhouse_testing"]


def _pg_bin() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError(
        "PostgreSQL is not installed (no initdb under /usr/lib/postgresql/*/bin or on PATH); "
        "run `bash scripts/system-deps.sh` (or `make test`, which does it)"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """A throwaway PostgreSQL cluster owned by this test run."""

    def __init__(self) -> None:
        self.bin = _pg_bin()
        self.as_root = os.geteuid() == 0
        self.user = "postgres" if self.as_root else pwd.getpwuid(os.geteuid()).pw_name
        self.dir = Path(tempfile.mkdtemp(prefix="ratecard-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.port = 0
        self._names = itertools.count(1)
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            os.chmod(self.dir, 0o700)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=120)

    def start(self) -> None:
        init = self._run("initdb", "-D", str(self.data), "-U", self.user, "-A", "trust",
                         "-E", "UTF8", "--locale=C", "--no-sync", check=False)
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{init.stdout}\n{init.stderr}")
        opts = (f"-p {{port}} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300 "
                "-c shared_buffers=32MB")
        last = ""
        for _ in range(5):
            self.port = _free_port()
            started = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w",
                                "-t", "60", "-o", opts.format(port=self.port), "start",
                                check=False)
            if started.returncode == 0:
                return
            last = started.stdout + started.stderr + self._log_tail()
            time.sleep(0.2)
        raise RuntimeError(f"PostgreSQL did not start:\n{last}")

    def _log_tail(self) -> str:
        try:
            return subprocess.run(["tail", "-n", "40", str(self.log)], capture_output=True,
                                  text=True, check=False).stdout
        except OSError:
            return ""

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop",
                      check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={self.user} "
                             "dbname=postgres", autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def create_database(self, prefix: str = "t", template: str | None = None) -> str:
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        tmpl = f" TEMPLATE {template}" if template else ""
        self.execute(f"CREATE DATABASE {name}{tmpl}")
        return name


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    cluster = PgCluster()
    try:
        cluster.start()
    except Exception:
        cluster.stop()
        raise
    try:
        yield cluster
    finally:
        from ratecard.store import state

        state.dispose()
        cluster.stop()


@pytest.fixture(scope="session")
def postgres_url(pg_cluster: PgCluster) -> str:
    """One database on the throwaway cluster, for the whole test run."""
    return pg_cluster.url(pg_cluster.create_database("shared"))


@pytest.fixture(scope="session")
def _pg_template(pg_cluster: PgCluster) -> str:
    """A migrated database that each test's database is cloned from."""
    from ratecard.store import state

    name = pg_cluster.create_database("template")
    url = pg_cluster.url(name)
    state.migrate(url)
    state.dispose(url)
    return name


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ratecard.store import state

    path = tmp_path_factory.mktemp("state-template") / "state.db"
    url = f"sqlite:///{path}"
    state.migrate(url)
    state.dispose(url)  # closing the last connection checkpoints the WAL into the file
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    return path


def _fresh(request: pytest.FixtureRequest, tmp_path: Path, migrated: bool) -> Iterator[str]:
    from ratecard.store import state

    if request.param == "sqlite":
        path = tmp_path / "state.db"
        if migrated:
            shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        template = request.getfixturevalue("_pg_template") if migrated else None
        url = cluster.url(cluster.create_database("t", template=template))
    try:
        yield url
    finally:
        state.dispose(url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh migrated state database (SQLite file, then PostgreSQL) for one test."""
    yield from _fresh(request, tmp_path, migrated=True)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty (not migrated) state database, on SQLite and on PostgreSQL."""
    yield from _fresh(request, tmp_path, migrated=False)
