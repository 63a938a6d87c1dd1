"""Throwaway ClickHouse servers on loopback, for the test suite and the benchmarks.

:class:`LocalClickHouse` starts one or more ``clickhouse-server`` processes (Debian's
``clickhouse-server`` package, or an upstream ``clickhouse`` binary) with a
config written into a temporary folder: data, logs and config live there and are
removed by :meth:`LocalClickHouse.stop`. Only the native (TCP) port is opened, on
``127.0.0.1``, at a port the kernel reported free. With ``shards=2`` it starts two
servers that both know a cluster named :data:`CLUSTER` with one shard each, so
``clickhouse://...?cluster=ratecard_test`` exercises Distributed tables for real.

This is not how to run ClickHouse in production (see ``docs/deployment.md``); it
is the smallest real server a test can own.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CLUSTER = "ratecard_test"
"""The cluster name a multi-shard :class:`LocalClickHouse` declares."""

INSTALL_HINT = (
    "install it with `bash scripts/system-deps.sh` (Debian: apt-get install clickhouse-server), "
    "or put an upstream `clickhouse` binary on PATH"
)


class ServerError(RuntimeError):
    """The throwaway server could not be started (the message carries its log)."""


def server_command() -> list[str]:
    """The command that runs a ClickHouse server binary found on this machine."""
    for name in ("clickhouse-server",):
        found = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists()
                                       else None)
        if found:
            return [found]
    found = shutil.which("clickhouse")
    if found:
        return [found, "server"]
    raise ServerError(f"no ClickHouse server binary found; {INSTALL_HINT}")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the server gets SIGKILL when the process that started it dies (a test run
    that is killed leaves no server behind)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cluster_xml(ports: list[int]) -> str:
    if len(ports) < 2:
        return ""
    shards = "".join(
        f"<shard><replica><host>127.0.0.1</host><port>{p}</port></replica></shard>"
        for p in ports
    )
    return f"<remote_servers><{CLUSTER}>{shards}</{CLUSTER}></remote_servers>"


def escape(text: str) -> str:
    """Text for an XML element."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _config(folder: Path, port: int, cluster: str, memory_bytes: int) -> str:
    d = escape(str(folder))
    return f"""<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>{d}/server.log</log>
    <errorlog>{d}/server.err.log</errorlog>
    <size>20M</size>
    <count>1</count>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>{port}</tcp_port>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>{d}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <max_concurrent_queries>200</max_concurrent_queries>
  <mlock_executable>false</mlock_executable>
  {cluster}
</yandex>
"""


def _users(memory_bytes: int) -> str:
    return f"""<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>{memory_bytes}</max_memory_usage></default></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
  </interval></default></quotas>
</yandex>
"""


@dataclass
class _Node:
    folder: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    def log_tail(self, lines: int = 30) -> str:
        out = []
        for name in ("stderr.txt", "server.err.log"):
            p = self.folder / name
            with contextlib.suppress(OSError):
                text = p.read_text(errors="replace").splitlines()[-lines:]
                if text:
                    out.append(f"--- {name}\n" + "\n".join(text))
        return "\n".join(out) or "(no log)"


@dataclass
class LocalClickHouse:
    """One or more throwaway ClickHouse servers (``shards``) owned by the caller."""

    shards: int = 1
    memory_bytes: int = 4 * 1024**3
    start_timeout: float = 60.0
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ratecard-ch-")))
    nodes: list[_Node] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.nodes[0].port

    @property
    def ports(self) -> list[int]:
        return [n.port for n in self.nodes]

    def url(self, database: str, *, cluster: bool = False) -> str:
        query = f"?cluster={CLUSTER}" if cluster and self.shards > 1 else ""
        return f"clickhouse://127.0.0.1:{self.port}/{database}{query}"

    def start(self) -> LocalClickHouse:
        """Start every node and wait until each answers; retry on a port taken meanwhile."""
        cmd = server_command()
        last = ""
        for _attempt in range(4):
            self._stop_nodes()
            ports = [free_port() for _ in range(self.shards)]
            while len(set(ports)) < len(ports):
                ports = [free_port() for _ in range(self.shards)]
            cluster = _cluster_xml(ports)
            self.nodes = []
            for i, port in enumerate(ports):
                folder = self.root / f"node{i + 1}"
                shutil.rmtree(folder, ignore_errors=True)
                for sub in ("data", "tmp", "user_files", "format_schemas"):
                    (folder / sub).mkdir(parents=True, exist_ok=True)
                (folder / "config.xml").write_text(
                    _config(folder, port, cluster, self.memory_bytes), encoding="utf-8")
                (folder / "users.xml").write_text(_users(self.memory_bytes), encoding="utf-8")
                node = _Node(folder=folder, port=port)
                with (folder / "stderr.txt").open("wb") as err:
                    node.proc = subprocess.Popen(
                        [*cmd, f"--config-file={folder / 'config.xml'}"],
                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                        cwd=folder, start_new_session=True, preexec_fn=_die_with_parent,
                    )
                self.nodes.append(node)
            problem = self._wait_ready()
            if problem is None:
                return self
            last = problem
            if "Address already in use" not in problem:
                break
        self.stop()
        raise ServerError(f"ClickHouse server did not start:\n{last}")

    def _wait_ready(self) -> str | None:
        deadline = time.monotonic() + self.start_timeout
        pending = list(self.nodes)
        while pending:
            node = pending[0]
            assert node.proc is not None
            if node.proc.poll() is not None:
                return (f"server on port {node.port} exited with code {node.proc.returncode}\n"
                        + node.log_tail())
            if _answers(node.port):
                pending.pop(0)
                continue
            if time.monotonic() > deadline:
                return (f"server on port {node.port} did not answer within "
                        f"{self.start_timeout:.0f}s\n" + node.log_tail())
            time.sleep(0.1)
        return None

    def _stop_nodes(self) -> None:
        for node in self.nodes:
            proc = node.proc
            if proc is None or proc.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=3)  # throwaway data: no need to wait for a clean shutdown
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(timeout=15)

    def kill(self) -> None:
        """Kill every node at once (SIGKILL), keeping the data: a crash, for tests."""
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.kill()
                node.proc.wait(timeout=15)

    def restart(self) -> None:
        """Start the killed nodes again on the same ports with the same data."""
        cmd = server_command()
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                continue
            with (node.folder / "stderr.txt").open("ab") as err:
                node.proc = subprocess.Popen(
                    [*cmd, f"--config-file={node.folder / 'config.xml'}"],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                    cwd=node.folder, start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
        problem = self._wait_ready()
        if problem is not None:
            raise ServerError(f"ClickHouse server did not restart:\n{problem}")

    def stop(self) -> None:
        """Stop every node and remove the folder with its data, config and logs."""
        self._stop_nodes()
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self) -> str:
        return "\n".join(n.log_tail() for n in self.nodes)

    def __enter__(self) -> LocalClickHouse:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _answers(port: int) -> bool:
    """Whether a native-protocol server on ``port`` answers a query."""
    import logging

    from clickhouse_driver import Client

    logging.getLogger("clickhouse_driver").addHandler(logging.NullHandler())
    logging.getLogger("clickhouse_driver").propagate = False
    client = Client("127.0.0.1", port=port, connect_timeout=1, send_receive_timeout=5,
                    sync_request_timeout=2)
    try:
        client.execute("SELECT 1")
        return True
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            client.disconnect()

