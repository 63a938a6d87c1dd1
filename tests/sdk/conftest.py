"""SDK fixtures: a real ratecard server on a free loopback port, in a thread.

``server`` yields a :class:`Live` with the base URL, the workspace and one token per
role (customers ``cust-a`` and ``cust-b`` exist).
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from ratecard.api import keys
from ratecard.api.app import create_app
from ratecard.store.state import session_scope
from ratecard.workspace import Workspace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_support import add_customer
from sdk_support import Live


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Live]:
    monkeypatch.delenv("RATECARD_DATABASE_URL", raising=False)
    monkeypatch.delenv("RATECARD_USAGE_URL", raising=False)
    ws = Workspace.open(tmp_path / "ws", create=True)
    app = create_app(ws)
    live = Live(url="", ws=ws)
    for c in ("cust-a", "cust-b"):
        add_customer(ws, c)
    with session_scope(ws) as s:
        for role in keys.KEY_ROLES:
            live.tokens[role] = keys.create_key(s, role).token
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    live.url = f"http://127.0.0.1:{port}"
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield live
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
        sock.close()
