"""`make run`: a demo company on the five example catalogs, billed, and served.

What it does, with the same commands a user types (called in-process through
``ratecard.cli.main``; no private shortcut into the database):

1. merges ``examples/*.yaml`` into one demo catalog (one company selling five product
   lines: a token API, a coding plan, a support agent, copilot seats and an enterprise
   platform); plan codes get their product line as a prefix (``coding_pro``);
2. ``ratecard init`` a workspace (``.ratecard/demo`` by default) and ``catalog apply``;
3. ``customers create`` about 200 customers and ``subscriptions create`` their plans,
   starting over the first weeks of a three-month history;
4. writes three months of synthetic usage events (seeded: the same seed gives the same
   customers and the same events, relative to the start) and ``events ingest`` them;
5. a price change half-way: ``catalog apply`` of a second revision gives ``api_payg``
   a version 2; customers who signed up after it are on v2, the others grandfathered;
6. ``invoices run`` (drafts, finalized and numbered invoices), ``invoices pay`` for most
   older invoices, credit pack purchases where the credits commands exist;
7. ``keys create --role admin`` and ``portal-token create`` for one customer;
8. ``ratecard serve`` on 127.0.0.1:8000 (until Ctrl-C) after printing the dashboard
   address, the admin key and a portal link. ``--no-serve`` stops after the setup.

A step whose command this version does not have is skipped with a note, so the demo
runs with whatever is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DEFAULT_DIR = ROOT / ".ratecard" / "demo"

# product line of each example file, the prefix of its plan codes
LINES: dict[str, str] = {
    "llm_api": "api",
    "coding_plan": "coding",
    "support_agent": "support",
    "copilot_seats": "copilot",
    "enterprise_platform": "platform",
}
LINE_NAMES: dict[str, str] = {
    "api": "LLM API", "coding": "Coding plan", "support": "Support agent",
    "copilot": "Copilot", "platform": "Enterprise platform",
}
# how many of every 200 customers take each plan
MIX: dict[str, int] = {
    "api_payg": 30, "api_scale": 6, "api_byok": 8,
    "coding_lite": 26, "coding_pro": 14, "coding_max": 6,
    "support_starter": 18, "support_pro": 10, "support_enterprise": 3,
    "copilot_individual": 26, "copilot_team": 15, "copilot_enterprise": 3,
    "platform_modules": 31, "platform_private": 4,
}
PRICE_CHANGE_PLAN = "api_payg"


# --------------------------------------------------------------------------- catalog


def demo_catalog(examples: Path = EXAMPLES) -> tuple[dict[str, Any], list[str]]:
    """The five examples as one catalog document, and notes on what the merge decided.

    Meters keep their names (no two examples share one); plans get their product line
    as a prefix and their example's currency; costs and credit packs are merged. When
    two examples price the same model differently, the first (in file order) is kept
    and a note says so: a catalog's costs are plain numbers, read in each plan's
    currency.
    """
    merged: dict[str, Any] = {"name": "Demo AI company (five product lines)",
                              "currency": "USD", "meters": {}, "costs": {"models": {},
                              "meters": {}}, "plans": {}, "credits": {"packs": {}}}
    notes: list[str] = []
    for stem, prefix in LINES.items():
        doc = yaml.safe_load((examples / f"{stem}.yaml").read_text(encoding="utf-8"))
        currency = doc.get("currency", "USD")
        for name, meter in (doc.get("meters") or {}).items():
            if name in merged["meters"] and merged["meters"][name] != meter:
                raise SystemExit(f"examples disagree on meter {name!r}; rename one")
            merged["meters"][name] = meter
        costs = doc.get("costs") or {}
        for model, price in (costs.get("models") or {}).items():
            have = merged["costs"]["models"].get(model)
            if have is not None and have != price:
                notes.append(f"model {model} is costed by two examples; the demo keeps the "
                             f"first one's price ({have})")
                continue
            merged["costs"]["models"][model] = price
        merged["costs"]["meters"].update(costs.get("meters") or {})
        for code, plan in (doc.get("plans") or {}).items():
            plan = dict(plan)
            plan["name"] = f"{LINE_NAMES[prefix]} · {plan.get('name') or code}"
            if plan.get("currency") is None and currency != merged["currency"]:
                plan["currency"] = currency
            merged["plans"][f"{prefix}_{code}"] = plan
        credits = doc.get("credits") or {}
        if credits.get("unit"):
            merged["credits"]["unit"] = credits["unit"]
        merged["credits"]["packs"].update(credits.get("packs") or {})
    return merged, notes


def price_change(doc: dict[str, Any]) -> dict[str, Any]:
    """The second catalog revision: glm-4-plus input on pay-as-you-go from 0.70 to 0.60."""
    changed = json.loads(json.dumps(doc))
    for charge in changed["plans"][PRICE_CHANGE_PLAN]["charges"]:
        if charge.get("meter") == "input_tokens":
            charge["prices"]["glm-4-plus"] = {"unit_price": "0.60"}
    return changed


# --------------------------------------------------------------------------- the CLI


@dataclass
class Runner:
    """Calls ``ratecard`` commands in-process and keeps count of what failed."""

    workspace: Path
    quiet: bool = True
    failures: list[str] = field(default_factory=list)
    skipped: set[str] = field(default_factory=set)
    calls: int = 0

    def has(self, *path: str) -> bool:
        import typer.main

        from ratecard.cli import app

        cmd: Any = typer.main.get_command(app)
        for name in path:
            subs = getattr(cmd, "commands", None)
            if not subs or name not in subs:
                return False
            cmd = subs[name]
        return True

    def run(self, *args: str, json_out: bool = False, workspace: bool = True) -> Any:
        """Run one command; its JSON output when ``json_out``; ``None`` when it failed."""
        from ratecard.cli import main

        argv = list(args)
        if workspace:
            argv += ["--workspace", str(self.workspace)]
        if json_out:
            argv.append("--json")
        out, err = io.StringIO(), io.StringIO()
        self.calls += 1
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except Exception as e:  # a command that is still being built: note it, go on
                err.write(f"{type(e).__name__}: {e}")
                code = 1
        if code != 0:
            self.failures.append(f"ratecard {' '.join(args)}: "
                                 f"{(err.getvalue() or out.getvalue()).strip()[:300]}")
            return None
        if not self.quiet:
            sys.stdout.write(out.getvalue())
        if json_out:
            text = out.getvalue().strip()
            return json.loads(text) if text else {}
        return out.getvalue()

    def step(self, *path: str) -> bool:
        """Whether the command exists; says once that it is skipped when it does not."""
        if self.has(*path):
            return True
        name = " ".join(path)
        if name not in self.skipped:
            self.skipped.add(name)
            say(f"  skipped: `ratecard {name}` is not in this version")
        return False


def say(text: str) -> None:
    print(text, flush=True)


# --------------------------------------------------------------------------- people


ADJ = ("Blue", "Bright", "North", "Silver", "Rapid", "Quiet", "Golden", "Clear", "Bold",
       "Red", "Green", "Deep", "Open", "Prime", "True", "Swift", "Iron", "Cloud", "Solar",
       "Lunar", "Cedar", "Maple", "Coral", "Amber", "Polar", "Urban", "Summit", "Harbor")
NOUN = ("Harbor", "Labs", "Systems", "Works", "Analytics", "Robotics", "Health", "Logistics",
        "Media", "Finance", "Studio", "Foods", "Energy", "Retail", "Bank", "Insurance",
        "Networks", "Games", "Legal", "Travel", "Motors", "Pharma", "Learning", "Security")
SUFFIX = ("Inc", "Ltd", "GmbH", "Co", "AG", "LLC", "Group", "SAS")
CN_CITY = ("Hangzhou", "Shenzhen", "Chengdu", "Suzhou", "Nanjing", "Wuhan", "Xiamen", "Tianjin")
USD_TZ = ("America/New_York", "America/Los_Angeles", "Europe/Berlin", "Europe/London", "UTC",
          "Asia/Singapore")


@dataclass
class Customer:
    id: str
    name: str
    plan: str
    currency: str
    timezone: str
    start: datetime
    size: float  # relative activity (a float is fine here: it shapes synthetic counts only)
    seats: int = 1
    term: str | None = None
    byok: bool = False
    version: int | None = None
    cancel_at: datetime | None = None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def make_customers(rng: random.Random, n: int, start: datetime, end: datetime,
                   currencies: dict[str, str], change_at: datetime) -> list[Customer]:
    plans = [p for p, w in MIX.items() for _ in range(w)]
    total = sum(MIX.values())
    chosen = [plans[(i * total) // n] for i in range(n)]
    rng.shuffle(chosen)
    seen: set[str] = set()
    out: list[Customer] = []
    for plan in chosen:
        line = plan.split("_", 1)[0]
        cny = currencies[plan] == "CNY"
        while True:
            if cny:
                name = f"{rng.choice(CN_CITY)} {rng.choice(ADJ)} {rng.choice(NOUN)}"
            else:
                name = f"{rng.choice(ADJ)} {rng.choice(NOUN)} {rng.choice(SUFFIX)}"
            cid = _slug(name)
            if cid not in seen:
                seen.add(cid)
                break
        # most customers were there from the start; some signed up later
        late = rng.random() < 0.22
        span = (end - start).days
        offset = rng.randint(span // 3, span - 12) if late else rng.randint(0, 20)
        begin = (start + timedelta(days=offset)).replace(hour=0, minute=0, second=0)
        size = min(rng.lognormvariate(0, 0.6), 3.0)
        c = Customer(id=cid, name=name, plan=plan, currency=currencies[plan],
                     timezone="Asia/Shanghai" if cny else rng.choice(USD_TZ),
                     start=begin, size=size)
        if line == "copilot":
            c.seats = {"copilot_individual": 1, "copilot_team": rng.randint(3, 25),
                       "copilot_enterprise": rng.randint(50, 90)}[plan]
        if line == "coding":
            c.term = rng.choices(["month", "quarter", "year"], [70, 20, 10])[0]
        if plan == "api_byok":
            c.byok = True
        if plan == PRICE_CHANGE_PLAN:
            c.version = 2 if begin >= change_at else 1
        if rng.random() < 0.04 and not late:
            c.cancel_at = begin + timedelta(days=rng.randint(35, 60))
        out.append(c)
    return out


# --------------------------------------------------------------------------- usage


def _times(rng: random.Random, day: datetime, count: int, tz_shift: int,
           now: datetime) -> list[datetime]:
    """``count`` instants in a working day (local 08:00-20:00), before ``now``."""
    out = []
    for _ in range(count):
        t = day + timedelta(hours=8 - tz_shift, seconds=rng.randint(0, 12 * 3600 - 1))
        if t < now:
            out.append(t)
    return sorted(out)


TZ_SHIFT = {"Asia/Shanghai": 8, "Asia/Singapore": 8, "America/New_York": -5,
            "America/Los_Angeles": -8, "Europe/Berlin": 1, "Europe/London": 0, "UTC": 0}


def customer_events(rng: random.Random, c: Customer, now: datetime) -> Iterator[dict[str, Any]]:
    """Synthetic usage of one customer from its start until ``now`` (seeded, plausible)."""
    n = 0
    shift = TZ_SHIFT.get(c.timezone, 0)
    stop = min(now, c.cancel_at) if c.cancel_at else now

    def ev(kind: str, at: datetime, props: dict[str, Any]) -> dict[str, Any]:
        nonlocal n
        n += 1
        return {"event_id": f"{c.id}-{n}", "type": kind, "customer": c.id,
                "timestamp": at.isoformat().replace("+00:00", "Z"), "properties": props}

    day = c.start
    while day < stop:
        weekday = day.weekday() < 5
        busy = c.size * (1.0 if weekday else 0.35) * rng.uniform(0.7, 1.3)
        line = c.plan.split("_", 1)[0]
        if line == "api":
            big = {"api_scale": 60.0, "api_byok": 6.0}.get(c.plan, 1.0)
            for t in _times(rng, day, max(1, int(8 * busy)), shift, stop):
                model = rng.choices(["glm-4-flash", "glm-4-plus", "glm-z1"], [55, 35, 10])[0]
                inp = int(rng.randint(20_000, 250_000) * big * busy)
                yield ev("llm.request", t, {
                    "model": model, "input_tokens": inp,
                    "cache_read_tokens": int(inp * rng.uniform(0, 0.4)),
                    "output_tokens": int(inp * rng.uniform(0.1, 0.35))})
        elif line == "coding":
            per_day = {"coding_lite": 12, "coding_pro": 45, "coding_max": 130}[c.plan]
            for t in _times(rng, day, max(0, int(per_day * busy)), shift, stop):
                model = rng.choices(["glm-4.6", "glm-4-flash"], [75, 25])[0]
                yield ev("coding.prompt", t, {
                    "model": model, "input_tokens": rng.randint(4_000, 40_000),
                    "output_tokens": rng.randint(300, 4_000)})
        elif line == "support":
            per_day = {"support_starter": 7, "support_pro": 30,
                       "support_enterprise": 170}[c.plan]
            tickets = _times(rng, day, max(0, int(per_day * busy)), shift, stop)
            for t in tickets:
                outcome = "resolved" if rng.random() < 0.82 else "escalated"
                yield ev("ticket.closed", t, {"outcome": outcome})
            if tickets:
                yield ev("llm.request", tickets[-1], {
                    "model": "gpt-4o", "input_tokens": 2_600 * len(tickets),
                    "output_tokens": 400 * len(tickets)})
        elif line == "copilot":
            active = max(1, int(c.seats * rng.uniform(0.5, 0.95) * (1 if weekday else 0.3)))
            for user in range(active):
                stamps = _times(rng, day, 1 + int(3 * busy), shift, stop)
                if stamps:
                    yield ev("user.active", stamps[0], {"user_id": f"{c.id}-u{user}"})
                for t in stamps:
                    kind = rng.choices(["chat", "edit", "agent"], [70, 25, 5])[0]
                    yield ev("ai.action", t, {"kind": kind, "user_id": f"{c.id}-u{user}"})
        elif line == "platform":
            yield from _platform_day(rng, c, day, shift, stop, busy, ev)
        day += timedelta(days=1)


def _platform_day(rng: random.Random, c: Customer, day: datetime, shift: int, stop: datetime,
                  busy: float, ev: Callable[..., dict[str, Any]]) -> Iterator[dict[str, Any]]:
    if c.plan == "platform_private":
        return  # licensed: fees only
    noon = day + timedelta(hours=12 - shift)
    if noon >= stop:
        return
    users = int(60 + 120 * c.size)
    if day.day in (1, 2) or day == c.start:
        for u in range(users):
            yield ev("sso.login", noon, {"user_id": f"u{u}"})
    yield ev("logs.ingested", noon, {"gb": f"{rng.uniform(5, 45) * c.size:.1f}"})
    yield ev("monitoring.snapshot", noon, {"nodes": int(10 + 30 * c.size)})
    for t in _times(rng, day, int(6 * busy), shift, stop):
        yield ev("tests.run", t, {})
    yield ev("llm.request", noon, {"input_tokens": int(2_500_000 * busy)})
    for channel, count in (("email", int(3 * busy)), ("sms", int(1 * busy)),
                           ("push", int(1 * busy))):
        for t in _times(rng, day, count, shift, stop):
            yield ev("notify.sent", t, {"channel": channel, "count": 1})
    for t in _times(rng, day, int(3 * busy), shift, stop):
        yield ev("workflow.run", t, {})
    if rng.random() < 0.25 * busy:
        yield ev("marketplace.sale", noon, {"amount": rng.choice(["99", "199", "499", "1999"])})


# --------------------------------------------------------------------------- the demo


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Build the demo workspace and serve it.")
    p.add_argument("--workspace", type=Path, default=DEFAULT_DIR,
                   help=f"demo workspace folder (default {DEFAULT_DIR.relative_to(ROOT)})")
    p.add_argument("--customers", type=int, default=200)
    p.add_argument("--days", type=int, default=90, help="days of usage history")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--no-serve", action="store_true", help="build, print, and exit")
    p.add_argument("--reuse", action="store_true",
                   help="serve an existing demo workspace without rebuilding it")
    p.add_argument("--now", help="pin 'now' (RFC 3339) for a byte-identical rebuild")
    return p.parse_args(argv)


@dataclass
class Result:
    workspace: Path
    admin_key: str | None
    portal_token: str | None
    portal_customer: str | None
    customers: int
    events: int
    invoices: int
    seconds: float
    failures: list[str]


def build(args: argparse.Namespace) -> Result:
    from ratecard.clock import parse_time

    t0 = time.monotonic()
    ws: Path = args.workspace.resolve()
    if ws.exists():
        import shutil

        shutil.rmtree(ws)
    now = parse_time(args.now) if args.now else datetime.now(UTC).replace(microsecond=0)
    start = (now - timedelta(days=args.days)).replace(hour=0, minute=0, second=0)
    change_at = start + timedelta(days=args.days // 2)
    rng = random.Random(args.seed)
    r = Runner(ws)

    say(f"ratecard demo: building {ws} (seed {args.seed}, {args.customers} customers, "
        f"{args.days} days to {now:%Y-%m-%d %H:%M} UTC)")
    doc, notes = demo_catalog()
    for note in notes:
        say(f"  note: {note}")
    ws.mkdir(parents=True, exist_ok=True)
    if r.step("init"):
        r.run("init", str(ws), workspace=False)
    else:
        from ratecard.workspace import Workspace

        Workspace.open(ws, create=True)
    _allow_history(ws, args.days)
    catalog_v1 = ws / "demo-catalog.yaml"
    catalog_v1.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True),
                          encoding="utf-8")
    catalog_v2 = ws / "demo-catalog-v2.yaml"
    catalog_v2.write_text(yaml.safe_dump(price_change(doc), sort_keys=False,
                                         allow_unicode=True), encoding="utf-8")
    if r.step("catalog", "apply"):
        r.run("catalog", "apply", str(catalog_v1))
    say(f"  catalog: {len(doc['plans'])} plans, {len(doc['meters'])} meters "
        f"({time.monotonic() - t0:.1f}s)")

    currencies = {code: plan.get("currency") or doc["currency"]
                  for code, plan in doc["plans"].items()}
    people = make_customers(rng, args.customers, start, now, currencies, change_at)
    # subscriptions that begin after the price change are created after it, on v2
    early = [c for c in people if c.start < change_at]
    later = [c for c in people if c.start >= change_at]
    created = 0
    if r.step("customers", "create"):
        for c in people:
            extra = ["--byok"] if c.byok else []
            if r.run("customers", "create", c.id, "--name", c.name, "--currency", c.currency,
                     "--timezone", c.timezone, "--email", f"billing@{c.id}.example",
                     *extra) is not None:
                created += 1
    if r.step("subscriptions", "create"):
        _subscribe(r, early)
        if r.step("catalog", "apply"):
            r.run("catalog", "apply", str(catalog_v2))
        _subscribe(r, later)
        if r.step("subscriptions", "cancel"):
            for c in people:
                if c.cancel_at is not None:
                    r.run("subscriptions", "cancel", *_sub_ref(r, c),
                          "--at", c.cancel_at.strftime("%Y-%m-%dT%H:%M:%SZ"))
    say(f"  {created} customers and their subscriptions ({time.monotonic() - t0:.1f}s)")

    events = 0
    if r.step("events", "ingest"):
        files = _write_events(ws, people, now, args.seed)
        for f, count in files:
            events += count
            r.run("events", "ingest", str(f))
        say(f"  {events:,} usage events ingested ({time.monotonic() - t0:.1f}s)")

    if r.step("credits", "purchase"):
        for c in people:
            if c.plan == "api_payg" and c.size > 1.2:
                r.run("credits", "purchase", "--customer", c.id, "--pack", "growth",
                      "--at", (c.start + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ"))

    invoices = 0
    if r.step("invoices", "run"):
        r.run("invoices", "run", "--at", now.strftime("%Y-%m-%dT%H:%M:%SZ"))
        listed = r.run("invoices", "list", json_out=True) if r.has("invoices", "list") else None
        rows = _rows(listed)
        invoices = len(rows)
        if r.step("invoices", "pay"):
            pay_before = now - timedelta(days=20)
            for inv in rows:
                ends = inv.get("period_end") or ""
                if (inv.get("status") == "finalized" and ends
                        and parse_time(ends) < pay_before and rng.random() < 0.9):
                    r.run("invoices", "pay", str(inv.get("number") or inv.get("id")))
        say(f"  {invoices} invoices ({time.monotonic() - t0:.1f}s)")

    admin = None
    if r.step("keys", "create"):
        out = r.run("keys", "create", "--role", "admin", "--name", "demo", json_out=True)
        admin = (out or {}).get("token")
    portal_customer = _portal_customer(people)
    token = None
    if portal_customer and r.step("portal-token", "create"):
        out = r.run("portal-token", "create", "--customer", portal_customer,
                    "--name", "demo", json_out=True)
        token = (out or {}).get("token")
    return Result(ws, admin, token, portal_customer, created, events, invoices,
                  time.monotonic() - t0, r.failures)


def _allow_history(ws: Path, days: int) -> None:
    """Let ingest accept the demo's history: ``[events] late_event_days`` in ratecard.toml."""
    cfg = ws / "ratecard.toml"
    text = cfg.read_text(encoding="utf-8") if cfg.exists() else ""
    wanted = f"late_event_days = {days + 5}"
    if re.search(r"(?m)^late_event_days\s*=.*$", text):
        text = re.sub(r"(?m)^late_event_days\s*=.*$", wanted, text)
    else:
        text += f"\n[events]\n{wanted}\n"
    cfg.write_text(text, encoding="utf-8")


def _subscribe(r: Runner, people: list[Customer]) -> None:
    for c in people:
        args = ["subscriptions", "create", "--customer", c.id, "--plan", c.plan,
                "--start", c.start.strftime("%Y-%m-%dT%H:%M:%SZ")]
        if c.seats > 1 or c.plan.startswith("copilot"):
            args += ["--seats", str(c.seats)]
        if c.term and c.term != "month":
            args += ["--term", c.term]
        if c.version is not None and c.version == 1:
            args += ["--version", "1"]
        r.run(*args)


def _sub_ref(r: Runner, c: Customer) -> list[str]:
    listed = r.run("subscriptions", "list", "--customer", c.id, json_out=True)
    rows = _rows(listed)
    return [str(rows[0]["id"])] if rows else ["0"]


def _rows(listed: Any) -> list[dict[str, Any]]:
    if isinstance(listed, list):
        return listed
    if isinstance(listed, dict):
        for key in ("data", "invoices", "subscriptions", "items"):
            if isinstance(listed.get(key), list):
                return listed[key]
    return []


def _write_events(ws: Path, people: list[Customer], now: datetime,
                  seed: int) -> list[tuple[Path, int]]:
    folder = ws / "events"
    folder.mkdir(exist_ok=True)
    out: list[tuple[Path, int]] = []
    by_line: dict[str, list[Customer]] = {}
    for c in people:
        by_line.setdefault(c.plan.split("_", 1)[0], []).append(c)
    for line, group in by_line.items():
        path = folder / f"{line}.jsonl"
        count = 0
        with path.open("w", encoding="utf-8") as f:
            for c in group:
                rng = random.Random(f"{seed}:{c.id}")
                for e in customer_events(rng, c, now):
                    f.write(json.dumps(e, separators=(",", ":")))
                    f.write("\n")
                    count += 1
        out.append((path, count))
    return out


def _portal_customer(people: list[Customer]) -> str | None:
    """A customer whose portal shows the most: a coding plan (limits with resets)."""
    for plan in ("coding_pro", "coding_lite", "copilot_team", "api_payg"):
        found = [c for c in people if c.plan == plan and c.cancel_at is None]
        if found:
            return max(found, key=lambda c: c.size).id
    return people[0].id if people else None


def report(res: Result, host: str, port: int) -> None:
    from ratecard.web.routes import portal_link

    base = f"http://{host}:{port}"
    say("")
    say(f"demo ready in {res.seconds:.1f}s: {res.customers} customers, {res.events:,} events, "
        f"{res.invoices} invoices in {res.workspace}")
    if res.failures:
        say(f"  {len(res.failures)} command(s) failed; the first ones:")
        for f in res.failures[:5]:
            say(f"    {f}")
    say("")
    say(f"  dashboard    {base}/dashboard")
    say(f"  admin key    {res.admin_key or '(keys create is not available)'}")
    if res.portal_token:
        say(f"  portal link  {portal_link(base, res.portal_token)}   ({res.portal_customer})")
    say(f"  API docs     {base}/docs")
    say(f"  CLI          ratecard invoices list --workspace {res.workspace}")
    say("")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.reuse and (args.workspace / "ratecard.toml").exists():
        res = Result(args.workspace.resolve(), None, None, None, 0, 0, 0, 0.0, [])
        r = Runner(res.workspace)
        out = r.run("keys", "create", "--role", "admin", "--name", "demo", json_out=True)
        res.admin_key = (out or {}).get("token")
    else:
        res = build(args)
    report(res, args.host, args.port)
    if args.no_serve:
        return 0
    from ratecard.cli import main as cli

    say("serving until Ctrl-C ...")
    try:
        return cli(["serve", "--host", args.host, "--port", str(args.port),
                    "--workspace", str(res.workspace), "--log-level", "warning"])
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
