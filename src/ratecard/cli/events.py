"""``ratecard events ingest|void|show``: usage events into the workspace's usage store."""

from __future__ import annotations

import json as jsonlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from ratecard.cli.common import JsonOpt, WorkspaceOpt, console, console_err, print_json
from ratecard.clock import iso
from ratecard.metering.events import event_to_json
from ratecard.metering.ingest import FORMATS, IngestReport
from ratecard.metering.ingest import Progress as IngestProgress
from ratecard.store.usage import AppendResult, StoredEvent
from ratecard.workspace import Workspace

events_app = typer.Typer(help="Usage events: ingest files, void an event, show one.",
                         no_args_is_help=True)

SHOWN_REJECTIONS = 5


class _LazyFile:
    """A text file opened on first write (a rejects file only exists when needed)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._f: IO[str] | None = None

    def write(self, text: str) -> int:
        if self._f is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = self.path.open("a", encoding="utf-8")
        return self._f.write(text)

    def flush(self) -> None:
        if self._f is not None:
            self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()

    @property
    def used(self) -> bool:
        return self._f is not None


@events_app.command("ingest")
def ingest(
    files: Annotated[list[str], typer.Argument(
        metavar="FILE...", help="JSONL, CSV or Parquet files; - reads JSONL from standard input.")],
    rejects: Annotated[Path | None, typer.Option(
        "--rejects", help="Write every rejected line here (JSON lines: line, event_id, reason, "
        "raw). Default: <workspace>/rejects/ingest-<time>.jsonl when anything is rejected.",
        show_default=False)] = None,
    fmt: Annotated[str | None, typer.Option(
        "--format", help=f"Input format ({', '.join(FORMATS)}); default from the extension.",
        show_default=False)] = None,
    commit_log: Annotated[Path | None, typer.Option(
        "--commit-log", help="Append one JSON line per committed batch (source, last line, "
        "counts), written after the commit: a record of what is durable.",
        show_default=False)] = None,
    batch_mb: Annotated[float, typer.Option(
        "--batch-mb", help="Read and commit batches of about this many megabytes.")] = 48.0,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Validate, deduplicate and store events; print accepted, duplicates and rejected.

    Each batch is committed before the next is read, so an interrupted ingest keeps
    every batch it reported, and running it again adds exactly the rest.
    """
    from ratecard.metering.service import ingest_files, workspace_catalog
    from ratecard.store.usage import open_usage_store

    ws = Workspace.open(workspace)
    if batch_mb <= 0:
        from ratecard.errors import InvalidInput

        raise InvalidInput("--batch-mb must be positive")
    catalog = workspace_catalog(ws)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    rejects_path = rejects or ws.path / "rejects" / f"ingest-{stamp}.jsonl"
    rejects_file = _LazyFile(rejects_path)
    log: IO[str] | None = commit_log.open("a", encoding="utf-8") if commit_log else None

    def on_commit(source: str, last_line: int, result: AppendResult) -> None:
        if log is None:
            return
        log.write(jsonlib.dumps({"source": source, "line": last_line,
                                 "accepted": result.accepted,
                                 "duplicates": result.duplicates,
                                 "rejected": len(result.rejected)}) + "\n")
        log.flush()
        os.fsync(log.fileno())

    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
        TextColumn("{task.fields[counts]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console_err, transient=True,
    )
    tasks: dict[str, Any] = {}
    totals = {"accepted": 0, "duplicates": 0, "rejected": 0}

    def on_progress(p: IngestProgress) -> None:
        totals["accepted"] += p.result.accepted
        totals["duplicates"] += p.result.duplicates
        totals["rejected"] += len(p.result.rejected)
        counts = (f"{totals['accepted']:,} accepted  {totals['duplicates']:,} duplicates  "
                  f"{totals['rejected']:,} rejected")
        task = tasks.get(p.source)
        if task is None:
            name = "stdin" if p.source == "-" else Path(p.source).name
            task = progress.add_task(name, total=p.total_bytes, counts=counts)
            tasks[p.source] = task
        progress.update(task, completed=p.done_bytes, counts=counts)

    store = open_usage_store(ws.usage_url)
    try:
        with progress:
            report = ingest_files(ws, store, files, catalog=catalog, fmt=fmt,
                                  batch_bytes=int(batch_mb * 1024 * 1024),
                                  rejects=rejects_file, on_progress=on_progress,
                                  on_commit=on_commit)
    finally:
        store.close()
        rejects_file.close()
        if log is not None:
            log.close()
    if rejects_file.used:
        report.rejects_file = str(rejects_path)
    _print_report(report, json)


def _print_report(report: IngestReport, as_json: bool) -> None:
    if as_json:
        print_json(report.to_json())
        return
    for w in report.warnings:
        console_err.print(f"warning: {w}", markup=False, highlight=False)
    rate = f" ({report.lines / report.seconds:,.0f} lines/s)" if report.seconds else ""
    console.print(
        f"{report.accepted:,} accepted, {report.duplicates:,} duplicates, "
        f"{report.rejected:,} rejected of {report.lines:,} lines in {report.seconds:.1f}s{rate}",
        markup=False,
    )
    if report.rejected:
        for r in report.first_rejections[:SHOWN_REJECTIONS]:
            where = f"{Path(r.source).name if r.source and r.source != '-' else 'stdin'}:{r.line}"
            eid = f" {r.event_id}" if r.event_id else ""
            console.print(f"  {where}{eid}: {r.reason}", markup=False, highlight=False)
        more = report.rejected - min(SHOWN_REJECTIONS, len(report.first_rejections))
        if more > 0:
            console.print(f"  ... and {more:,} more", markup=False)
        if report.rejects_file:
            console.print(f"every rejected line is in {report.rejects_file}", markup=False)


@events_app.command("void")
def void(
    event_id: Annotated[str, typer.Argument(metavar="EVENT_ID", help="The event to retract.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept with the event).")],
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Retract an event: it is kept and marked, with the reason, and no aggregate counts it.

    Send a corrected event with a new event_id to replace it.
    """
    from ratecard.metering.service import void_event
    from ratecard.store.usage import open_usage_store

    ws = Workspace.open(workspace)
    store = open_usage_store(ws.usage_url)
    try:
        got = void_event(store, event_id, reason)
    finally:
        store.close()
    if json:
        print_json(_stored_json(got))
        return
    console.print(f"voided {event_id} ({got.event.type}, {got.event.customer}, "
                  f"{iso(got.event.timestamp)}): {got.void_reason}", markup=False)


@events_app.command("show")
def show(
    event_id: Annotated[str, typer.Argument(metavar="EVENT_ID")],
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Print one stored event, with its ingest time and void status."""
    from ratecard.errors import NotFound
    from ratecard.store.usage import open_usage_store

    ws = Workspace.open(workspace)
    store = open_usage_store(ws.usage_url, read_only=True)
    try:
        got = store.get(event_id)
    finally:
        store.close()
    if got is None:
        raise NotFound(f"no event {event_id!r} in the usage store")
    data = _stored_json(got)
    if json:
        print_json(data)
        return
    t = Table(show_header=False, box=None)
    for k in ("event_id", "type", "customer", "timestamp", "ingested_at", "voided_at",
              "void_reason"):
        if data.get(k) is not None:
            t.add_row(k, str(data[k]))
    t.add_row("properties", jsonlib.dumps(data["properties"], default=str, ensure_ascii=False))
    console.print(t)


def _stored_json(got: StoredEvent) -> dict[str, Any]:
    out = event_to_json(got.event)
    out["ingested_at"] = iso(got.ingested_at)
    out["voided"] = got.voided
    out["voided_at"] = iso(got.voided_at) if got.voided_at else None
    out["void_reason"] = got.void_reason
    return out


def register(app: typer.Typer) -> None:
    app.add_typer(events_app, name="events")
