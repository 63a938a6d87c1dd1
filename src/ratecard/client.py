"""The Python SDK: send usage events, ask entitlement checks, get quotes.

::

    from ratecard.client import Client, event_from_openai

    rc = Client("http://127.0.0.1:8000", key="rck_...")
    rc.track({"type": "ticket.closed", "customer": "acme",
              "properties": {"outcome": "resolved"}})
    if rc.check("acme", "prompts", quantity=1)["allowed"]:
        response = openai.chat.completions.create(...)
        rc.track(event_from_openai(response, customer="acme"))   # metering an LLM call
    rc.flush()                                                   # or let exit do it

* :meth:`Client.track` queues an event and returns at once; a background thread sends
  the queue in batches (up to ``batch_size`` events, at least every
  ``flush_interval`` seconds). Every event gets an ``event_id`` (a UUID unless it has
  one) and a ``timestamp`` (now unless it has one) when it is tracked, so a batch
  sent twice after a network error is counted once: the server answers the second
  copy as duplicates. That is what makes retries safe.
* Network errors, 429 and 5xx answers are retried with exponential backoff (with
  jitter, up to ``max_retries`` times); other errors (a bad key, 4xx) are not: the
  batch is reported to ``on_error`` and kept in :attr:`Client.failed`.
* Events the server rejects (a bad timestamp, a missing customer) come back with
  reasons: they are reported to ``on_rejected`` and kept in :attr:`Client.rejected`.
* :meth:`Client.flush` sends everything queued and waits; the queue is flushed at
  interpreter exit too (``atexit``), and by :meth:`Client.close` / ``with Client(...)``.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import queue
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote as urlquote

import httpx

from ratecard.errors import RatecardError
from ratecard.metering.events import dumps_json

log = logging.getLogger("ratecard.client")

DEFAULT_BATCH = 1000
MAX_BATCH = 10_000
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class ApiError(RatecardError):
    """An error answer of the API: its HTTP status, stable ``code`` and ``detail``."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.http_status = status
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Failed:
    """A batch the client gave up on, and why."""

    events: tuple[Mapping[str, Any], ...]
    error: Exception


def _iso(dt: datetime) -> str:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"timestamp {dt.isoformat()} has no timezone; use an aware datetime")
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    """A JSON-able copy: datetimes as RFC 3339, Decimals kept (written exactly)."""
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def prepare_event(event: Mapping[str, Any] | Any) -> dict[str, Any]:
    """The event as it is sent: with an ``event_id`` and a ``timestamp`` fixed now."""
    if not isinstance(event, Mapping):
        from ratecard.metering.events import event_to_json
        from ratecard.metering.model import Event

        if not isinstance(event, Event):
            raise TypeError(f"an event is a mapping or a ratecard Event, not "
                            f"{type(event).__name__}")
        event = event_to_json(event)
    out = _plain(event)
    for key in ("type", "customer"):
        if not out.get(key):
            raise ValueError(f"an event needs a {key!r}")
    if out.get("event_id") in (None, ""):
        out["event_id"] = uuid.uuid4().hex
    if out.get("timestamp") is None:
        out["timestamp"] = _iso(datetime.now(UTC))
    return out


class Client:
    """A client of one ratecard server (see the module docstring)."""

    def __init__(
        self,
        url: str,
        key: str,
        *,
        timeout: float = 10.0,
        batch_size: int = DEFAULT_BATCH,
        flush_interval: float = 1.0,
        max_queue: int = 100_000,
        max_retries: int = 6,
        backoff: float = 0.25,
        max_backoff: float = 20.0,
        on_error: Callable[[Failed], None] | None = None,
        on_rejected: Callable[[Mapping[str, Any]], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH}")
        self.url = url.rstrip("/")
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.on_error = on_error
        self.on_rejected = on_rejected
        self.http = httpx.Client(
            base_url=self.url, timeout=timeout, transport=transport,
            headers={"Authorization": f"Bearer {key}", "User-Agent": "ratecard-python"},
        )
        self.accepted = 0
        self.duplicates = 0
        self.rejected: deque[Mapping[str, Any]] = deque(maxlen=10_000)
        self.failed: deque[Failed] = deque(maxlen=1_000)
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=max_queue)
        self._pending = 0  # queued or being sent
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._closing = False
        self._closed = False
        self._thread: threading.Thread | None = None
        atexit.register(self._at_exit)

    # ------------------------------------------------------------------ context

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ events

    def track(self, event: Mapping[str, Any] | Any) -> str:
        """Queue one event for sending; returns its ``event_id``.

        Blocks only when ``max_queue`` events are already waiting (back-pressure).
        """
        if self._closed:
            raise RuntimeError("this client is closed")
        prepared = prepare_event(event)
        with self._cond:
            self._pending += 1
        try:
            self._queue.put(prepared)
        except BaseException:
            with self._cond:
                self._pending -= 1
                self._cond.notify_all()
            raise
        self._ensure_thread()
        if self._queue.qsize() >= self.batch_size:
            self._wake.set()
        return str(prepared["event_id"])

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued now and wait for it; ``False`` if ``timeout`` ran out."""
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending > 0:
                if (self._thread is None or not self._thread.is_alive()) and self._queue.qsize():
                    self._ensure_thread()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(timeout=0.1 if remaining is None else min(remaining, 0.1))
                self._wake.set()
        return True

    def send(self, events: Iterable[Mapping[str, Any] | Any]) -> dict[str, Any]:
        """Send a batch now (no queue), with the same retries; returns the server's answer:
        ``{"accepted", "duplicates", "rejected": [{"index", "event_id", "reason"}]}``."""
        batch = [prepare_event(e) for e in events]
        if len(batch) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} events per batch; got {len(batch)}")
        return self._post_batch(batch)

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush what is queued, stop the sender thread and close the connection."""
        if self._closed:
            return
        try:
            self.flush(timeout)
        finally:
            self._closing = True
            self._wake.set()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._closed = True
            self.http.close()
            atexit.unregister(self._at_exit)

    def _at_exit(self) -> None:
        try:
            self.close(timeout=10.0)
        except Exception as e:  # pragma: no cover - best effort at exit
            log.warning("ratecard: could not flush events at exit: %s", e)

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._run, name="ratecard-sender",
                                            daemon=True)
            self._thread.start()

    def _take_batch(self) -> list[dict[str, Any]]:
        try:
            first = self._queue.get(timeout=min(self.flush_interval, 0.2))
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.flush_interval
        while len(batch) < self.batch_size:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            if self._wake.is_set() or self._closing:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._wake.wait(timeout=min(left, 0.05))
        return batch

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if not batch:
                self._wake.clear()
                if self._closing and self._queue.empty():
                    return
                continue
            if self._queue.empty():
                self._wake.clear()
            try:
                self._post_batch(batch)
            except Exception as e:
                failed = Failed(tuple(batch), e)
                self.failed.append(failed)
                log.error("ratecard: dropped a batch of %d events: %s", len(batch), e)
                if self.on_error is not None:
                    try:
                        self.on_error(failed)
                    except Exception:  # pragma: no cover - the callback's problem
                        log.exception("ratecard: on_error callback failed")
            finally:
                with self._cond:
                    self._pending -= len(batch)
                    self._cond.notify_all()

    def _post_batch(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        body = dumps_json({"events": batch}).encode("utf-8")
        answer = self._request("POST", "/v1/events", content=body,
                               headers={"Content-Type": "application/json"}, retry=True)
        self.accepted += int(answer.get("accepted", 0))
        self.duplicates += int(answer.get("duplicates", 0))
        for r in answer.get("rejected", ()):
            self.rejected.append(r)
            if self.on_rejected is not None:
                try:
                    self.on_rejected(r)
                except Exception:  # pragma: no cover
                    log.exception("ratecard: on_rejected callback failed")
        return answer

    # ------------------------------------------------------------------ calls

    def check(self, customer: str, feature: str, quantity: Decimal | int | str | None = None,
              *, value: str | None = None) -> dict[str, Any]:
        """May ``customer`` use ``feature`` (``quantity`` more of it) now?

        Answers ``{"allowed", "limit", "used", "remaining", "resets_at", "reason", ...}``;
        nothing is consumed.
        """
        params: dict[str, str] = {}
        if quantity is not None:
            params["quantity"] = str(quantity)
        if value is not None:
            params["value"] = value
        path = (f"/v1/customers/{urlquote(customer, safe='')}/entitlements/"
                f"{urlquote(feature, safe='')}")
        return self._request("GET", path, params=params, retry=True)

    def quote(self, plan: str, usage: Mapping[str, Any] | None = None, *,
              seats: int | None = None, version: int | None = None,
              catalog: str | None = None) -> dict[str, Any]:
        """Price one period of ``plan`` for ``usage`` (meter → quantity); nothing is stored."""
        body: dict[str, Any] = {"plan": plan, "usage": _plain(dict(usage or {}))}
        if seats is not None:
            body["seats"] = seats
        if version is not None:
            body["version"] = version
        if catalog is not None:
            body["catalog"] = catalog
        return self._request("POST", "/v1/quotes", content=dumps_json(body).encode("utf-8"),
                             headers={"Content-Type": "application/json"}, retry=True)

    def get(self, path: str, **params: Any) -> Any:
        """GET any API path (``/v1/...``) and return its JSON."""
        return self._request("GET", path, params={k: v for k, v in params.items()
                                                  if v is not None}, retry=True)

    def post(self, path: str, body: Any) -> Any:
        """POST JSON to any API path and return its JSON (not retried: it may not be
        idempotent)."""
        return self._request("POST", path, content=dumps_json(_plain(body)).encode("utf-8"),
                             headers={"Content-Type": "application/json"}, retry=False)

    def _request(self, method: str, path: str, *, retry: bool, **kw: Any) -> Any:
        attempt = 0
        while True:
            try:
                r = self.http.request(method, path, **kw)
            except httpx.TransportError as e:
                if not retry or attempt >= self.max_retries:
                    raise
                self._sleep(attempt, str(e))
                attempt += 1
                continue
            if r.status_code in RETRY_STATUSES and retry and attempt < self.max_retries:
                self._sleep(attempt, f"HTTP {r.status_code}", r.headers.get("retry-after"))
                attempt += 1
                continue
            if r.status_code >= 400:
                raise _api_error(r)
            if r.headers.get("content-type", "").startswith("application/json"):
                return r.json(parse_float=Decimal)
            return r.content

    def _sleep(self, attempt: int, why: str, retry_after: str | None = None) -> None:
        delay = min(self.max_backoff, self.backoff * (2 ** attempt))
        delay = delay * (0.5 + random.random() / 2)
        if retry_after:
            with contextlib.suppress(ValueError):
                delay = max(delay, min(self.max_backoff, float(retry_after)))
        log.info("ratecard: %s; retrying in %.2fs", why, delay)
        time.sleep(delay)


def _api_error(r: httpx.Response) -> ApiError:
    try:
        body = r.json()
        return ApiError(r.status_code, str(body.get("error", "error")),
                        str(body.get("detail", r.text)))
    except ValueError:
        return ApiError(r.status_code, "error", r.text[:500])


# --------------------------------------------------------------------------- LLM calls


def _as_mapping(obj: Any) -> Any:
    """Plain data out of a dict, a pydantic model (OpenAI's SDK) or any object."""
    if obj is None or isinstance(obj, str | int | float | bool | Decimal):
        return obj
    if isinstance(obj, Mapping):
        return {str(k): _as_mapping(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_as_mapping(v) for v in obj]
    for method in ("model_dump", "to_dict", "dict"):
        fn = getattr(obj, method, None)
        if callable(fn):
            try:
                return _as_mapping(fn())
            except TypeError:
                continue
    if hasattr(obj, "__dict__"):
        return {k: _as_mapping(v) for k, v in vars(obj).items() if not k.startswith("_")}
    return obj


def event_from_openai(response: Any, *, customer: str, event_id: str | None = None,
                      type: str = "llm.request", **props: Any) -> dict[str, Any]:
    """An ``llm.request`` event from an OpenAI-compatible response (or its dict).

    Reads ``usage`` in any shape ratecard knows (Chat Completions, Responses,
    Anthropic, Gemini; see :mod:`ratecard.costs.usage`) and writes ratecard's disjoint
    token counts: ``input_tokens`` (not cached), ``cache_read_tokens``,
    ``cache_write_tokens``, ``output_tokens`` (reasoning included) and
    ``reasoning_tokens``, plus ``model``. The event id defaults to the response's
    ``id`` (so tracking the same response twice counts once), the timestamp to its
    ``created`` time. Extra keyword arguments become properties
    (``feature="chat"``).
    """
    from ratecard.costs.usage import normalise_usage

    data = _as_mapping(response)
    if not isinstance(data, Mapping):
        raise ValueError("the response must be an object or a mapping with a `usage`")
    usage = data.get("usage") or data.get("usageMetadata")
    if not isinstance(usage, Mapping):
        raise ValueError("the response has no `usage`; pass a non-streaming response, or "
                         "a streamed one with usage included (stream_options.include_usage)")
    tokens = normalise_usage(usage)
    properties: dict[str, Any] = {}
    model = data.get("model") or data.get("modelVersion")
    if model:
        properties["model"] = str(model)
    properties.update({
        "input_tokens": tokens.input,
        "cache_read_tokens": tokens.cache_read,
        "cache_write_tokens": tokens.cache_write,
        "output_tokens": tokens.output,
        "reasoning_tokens": tokens.reasoning,
    })
    if tokens.cache_write_1h:
        properties["cache_write_1h_tokens"] = tokens.cache_write_1h
    properties.update(_plain(props))
    event: dict[str, Any] = {"type": type, "customer": customer, "properties": properties}
    rid = event_id or data.get("id") or data.get("responseId")
    event["event_id"] = str(rid) if rid else uuid.uuid4().hex
    created = data.get("created") or data.get("created_at")
    if isinstance(created, int | float) and not isinstance(created, bool) and created > 0:
        event["timestamp"] = _iso(datetime.fromtimestamp(created, UTC))
    else:
        event["timestamp"] = _iso(datetime.now(UTC))
    return event
