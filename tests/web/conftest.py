"""Fixtures of the web tests: a small demo workspace, a live server, headless Chromium.

* ``demo_ws`` (session): the demo of ``scripts/demo.py`` at a small size (a few dozen
  customers, six weeks), built once through the same CLI commands ``make run`` uses.
  Its admin key, a read key, an ingest key and portal tokens come with it.
* ``live_server`` (session): uvicorn serving ``create_app(demo_ws)`` on a free loopback
  port, in a thread.
* ``chromium`` (session): Debian's ``chromium`` in headless mode, driven over the
  DevTools protocol (no browser download, no driver binary). When it is not installed
  the tests that need it fail with the command that installs it.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


def load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ratecard_demo", ROOT / "scripts" / "demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@dataclass
class DemoWorkspace:
    path: Path
    admin_key: str
    read_key: str
    ingest_key: str
    portal_token: str
    portal_customer: str
    other_portal_token: str
    other_customer: str
    result: Any


def _cli_json(ws: Path, *args: str) -> Any:
    import io

    from ratecard.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([*args, "--workspace", str(ws), "--json"])
    assert code == 0, f"ratecard {' '.join(args)} failed"
    return json.loads(out.getvalue())


@pytest.fixture(scope="session")
def demo_ws(tmp_path_factory: pytest.TempPathFactory) -> DemoWorkspace:
    demo = load_demo()
    path = tmp_path_factory.mktemp("demo") / "ws"
    args = demo.parse_args(["--workspace", str(path), "--customers", "24", "--days", "45",
                            "--seed", "11", "--no-serve"])
    result = demo.build(args)
    assert result.admin_key and result.portal_token, result.failures
    billed = _cli_json(path, "invoices", "list")
    rows = billed if isinstance(billed, list) else billed.get("data", [])
    other = next(i["customer"] for i in rows if i["customer"] != result.portal_customer)
    other_token = _cli_json(path, "portal-token", "create", "--customer", other)["token"]
    return DemoWorkspace(
        path=path, admin_key=result.admin_key,
        read_key=_cli_json(path, "keys", "create", "--role", "read")["token"],
        ingest_key=_cli_json(path, "keys", "create", "--role", "ingest")["token"],
        portal_token=result.portal_token, portal_customer=result.portal_customer,
        other_portal_token=other_token, other_customer=other, result=result)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    app: Any


@pytest.fixture(scope="session")
def live_server(demo_ws: DemoWorkspace) -> Iterator[LiveServer]:
    import uvicorn

    from ratecard.api.app import create_app

    app = create_app(demo_ws.path)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield LiveServer(f"http://127.0.0.1:{port}", app)
    server.should_exit = True
    thread.join(timeout=10)


# --------------------------------------------------------------------------- Chromium


CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
    "--remote-allow-origins=*", "--window-size=1366,900",
)


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError("Chromium is not installed; run `bash scripts/system-deps.sh` "
                       "(or `make test`, which does it): it installs Debian's chromium")


class Browser:
    """One headless Chromium page, driven over the DevTools protocol."""

    def __init__(self, binary: str, profile: Path) -> None:
        import websocket

        self.port = free_port()
        self.log = (profile / "chromium.log").open("wb")
        self.proc = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
             f"--remote-debugging-port={self.port}", "about:blank"],
            stdout=self.log, stderr=subprocess.STDOUT)
        ws_url = self._page_socket()
        self.ws = websocket.create_connection(ws_url, timeout=90, suppress_origin=True)
        self._id = 0
        self._events: list[dict[str, Any]] = []
        self.send("Page.enable")
        self.send("Runtime.enable")

    def _page_socket(self) -> str:
        deadline = time.monotonic() + 30
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list",
                                            timeout=2) as r:
                    targets = json.loads(r.read())
                pages = [t for t in targets if t.get("type") == "page"]
                if pages:
                    return str(pages[0]["webSocketDebuggerUrl"])
            except OSError as e:
                last = e
            time.sleep(0.1)
        raise RuntimeError(f"Chromium did not open its DevTools port: {last}")

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        mid = self._id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg.get("result") or {})
            if "method" in msg:
                self._events.append(msg)

    def wait_event(self, name: str, timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for i, e in enumerate(self._events):
                if e.get("method") == name:
                    del self._events[: i + 1]
                    return e
            self._events.clear()
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {name} within {timeout}s")
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                self._events.append(msg)

    def goto(self, url: str) -> None:
        self._events.clear()
        self.send("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")

    def eval(self, expression: str) -> Any:
        res = self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                        awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"script failed: {res['exceptionDetails']}")
        return res.get("result", {}).get("value")

    def submit(self, expression: str) -> None:
        """Run a script that submits a form or follows a link, and wait for the next page."""
        self._events.clear()
        self.send("Runtime.evaluate", expression=expression)
        self.wait_event("Page.loadEventFired")

    @property
    def url(self) -> str:
        return str(self.eval("location.href"))

    def screenshot(self, path: Path, width: int = 1366) -> Path:
        metrics = self.send("Page.getLayoutMetrics")
        height = int(metrics.get("cssContentSize", metrics.get("contentSize", {}))
                     .get("height", 900))
        self.send("Emulation.setDeviceMetricsOverride", width=width,
                  height=min(max(height, 600), 6000), deviceScaleFactor=1, mobile=False)
        shot = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        self.send("Emulation.clearDeviceMetricsOverride")
        return path

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing anyway
            self.send("Browser.close")
        try:
            self.ws.close()
        finally:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.log.close()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    binary = chromium_binary()
    profile = Path(tempfile.mkdtemp(prefix="ratecard-chromium-"))
    browser = Browser(binary, profile)
    try:
        yield browser
    finally:
        browser.close()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS

