"""``ratecard serve``: the REST API (and the dashboard and portal) over HTTP."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from ratecard.cli.common import WorkspaceOpt, console_err
from ratecard.errors import InvalidInput
from ratecard.workspace import Workspace

WORKSPACE_ENV = "RATECARD_SERVE_WORKSPACE"


def check_workers(ws: Workspace, workers: int) -> None:
    """Refuse several worker processes on a usage store that allows one writer."""
    if workers < 1:
        raise InvalidInput(f"--workers must be at least 1, not {workers}")
    if workers > 1 and ws.usage_url.startswith("duckdb"):
        raise InvalidInput(
            f"--workers {workers}: the DuckDB usage store ({ws.usage_url}) takes one writer "
            "process; run one worker, or set RATECARD_USAGE_URL to a ClickHouse store "
            "(clickhouse://...) and RATECARD_DATABASE_URL to PostgreSQL to run several"
        )


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes (more than 1 "
                                         "needs a ClickHouse usage store).")] = 1,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "info",
    workspace: WorkspaceOpt = None,
) -> None:
    """Serve the REST API under /v1 (OpenAPI at /docs), the dashboard and the portal."""
    import uvicorn

    ws = Workspace.open(workspace)
    check_workers(ws, workers)
    if not 0 < port < 65536:
        raise InvalidInput(f"--port must be between 1 and 65535, not {port}")
    console_err.print(f"ratecard: serving workspace {ws.path} on http://{host}:{port} "
                      f"(API docs at http://{host}:{port}/docs)")
    if workers == 1:
        from ratecard.api.app import create_app

        uvicorn.run(create_app(ws), host=host, port=port, log_level=log_level,
                    access_log=False, server_header=False)
        return
    os.environ[WORKSPACE_ENV] = str(ws.path.resolve())
    uvicorn.run("ratecard.cli.serve:app_from_env", factory=True, host=host, port=port,
                workers=workers, log_level=log_level, access_log=False, server_header=False)


def app_from_env() -> object:
    """The app of the workspace named by ``RATECARD_SERVE_WORKSPACE`` (each worker calls it)."""
    from ratecard.api.app import create_app

    return create_app(Workspace.open(os.environ.get(WORKSPACE_ENV)))


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
