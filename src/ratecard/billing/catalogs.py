"""Versioned catalog storage: apply a catalog, read the current one, read plan versions.

Applying a catalog stores the whole document as a new *revision* and creates a new
*version* of each plan whose definition changed. A plan version is self-contained:
it keeps the plan, its effective currency and the definitions of the meters it
prices, so a subscription grandfathered on version 1 is rated exactly as it was
sold, whatever later catalogs say. A plan removed from the catalog is *retired*:
existing subscriptions keep billing, new ones are refused.

Public functions (each takes a session and never commits):

* :func:`apply_catalog` (``dry_run=True`` computes the diff and writes nothing)
* :func:`current_catalog` (``None`` before the first apply)
* :func:`plan_version`, :func:`plan_versions`, :func:`rating_catalog`
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from ratecard.catalog.schema import Catalog, Plan
from ratecard.clock import utc_now
from ratecard.errors import NotFound
from ratecard.store.models import CatalogRevision, PlanRow, PlanVersionRow

ChangeKind = Literal["added", "changed", "removed", "unchanged", "restored"]


@dataclass(frozen=True)
class PlanChange:
    """What applying a catalog does to one plan."""

    code: str
    kind: ChangeKind
    old_version: int | None
    new_version: int | None
    diff: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApplyResult:
    """The outcome of :func:`apply_catalog` (or of a dry run)."""

    dry_run: bool
    revision: int | None
    plans: tuple[PlanChange, ...]
    other: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.other) or any(p.kind != "unchanged" for p in self.plans)

    def lines(self) -> list[str]:
        """The diff as text: one line per change, plans first."""
        out: list[str] = []
        for p in self.plans:
            if p.kind == "added":
                out.append(f"+ plan {p.code}: new, version {p.new_version}")
            elif p.kind == "removed":
                out.append(f"- plan {p.code}: retired (version {p.old_version} keeps billing "
                           "its subscriptions)")
            elif p.kind == "restored":
                out.append(f"+ plan {p.code}: back in the catalog, version {p.new_version}")
            elif p.kind == "changed":
                out.append(f"~ plan {p.code}: version {p.old_version} -> {p.new_version}")
            for d in p.diff:
                out.append(f"    {d}")
        out.extend(self.other)
        if not out:
            out.append("no changes")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "revision": self.revision,
            "changed": self.changed,
            "plans": [
                {"code": p.code, "change": p.kind, "old_version": p.old_version,
                 "new_version": p.new_version, "diff": list(p.diff)}
                for p in self.plans
            ],
            "other": list(self.other),
        }


@dataclass(frozen=True)
class PlanVersion:
    """One stored version of a plan."""

    code: str
    version: int
    plan: Plan
    currency: str
    meters: Mapping[str, Any]
    digest: str
    created_at: datetime
    latest: bool
    retired: bool
    definition: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.code} v{self.version}"


# --------------------------------------------------------------------------- pure helpers


def catalog_document(catalog: Catalog) -> dict[str, Any]:
    """The catalog as canonical JSON data (Decimals as strings, defaults left out)."""
    doc = catalog.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    for plan in doc.get("plans", {}).values():
        for ent in plan.get("entitlements", {}).values():
            # a metered entitlement written with limit/window is normalised to limits
            if isinstance(ent, dict) and "limits" in ent:
                ent.pop("limit", None)
                ent.pop("window", None)
    return doc


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def plan_meters(plan: Plan) -> set[str]:
    names = {c.meter for c in plan.charges if c.meter}
    for ent in plan.entitlements.values():
        meter = getattr(ent, "meter", None)
        if meter:
            names.add(meter)
    if plan.credits:
        names.update(plan.credits.burn)
    return names


def plan_definition(catalog: Catalog, code: str) -> dict[str, Any]:
    """What a plan version is: the plan, its effective currency and its meters."""
    doc = catalog_document(catalog)
    plan = catalog.plans[code]
    all_meters = doc.get("meters", {})
    meters = {m: all_meters[m] for m in sorted(plan_meters(plan)) if m in all_meters}
    return {"plan": doc["plans"][code], "currency": catalog.plan_currency(code),
            "meters": meters}


def _fmt(v: Any) -> str:
    if isinstance(v, dict | list):
        text = json.dumps(v, sort_keys=True, ensure_ascii=False)
        return text if len(text) <= 80 else text[:77] + "..."
    if isinstance(v, str):
        return v if v and v.strip() == v else json.dumps(v, ensure_ascii=False)
    return json.dumps(v)


def diff_values(old: Any, new: Any, path: str = "") -> list[str]:
    """Path-level differences between two JSON values (``~ a.b: 1 -> 2``)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in old:
                out.append(f"+ {sub}: {_fmt(new[key])}")
            elif key not in new:
                out.append(f"- {sub} (was {_fmt(old[key])})")
            else:
                out.extend(diff_values(old[key], new[key], sub))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            out.extend(diff_values(a, b, f"{path}[{i}]"))
        return out
    if old != new:
        return [f"~ {path}: {_fmt(old)} -> {_fmt(new)}"]
    return []


# --------------------------------------------------------------------------- storage


def _latest_revision(session: Session) -> CatalogRevision | None:
    return session.scalars(
        select(CatalogRevision).order_by(CatalogRevision.id.desc()).limit(1)
    ).first()


def current_catalog(session: Session) -> Catalog | None:
    """The catalog as last applied, or ``None`` when none was applied yet."""
    rev = _latest_revision(session)
    if rev is None:
        return None
    return Catalog.model_validate(rev.document)


def current_revision(session: Session) -> int | None:
    rev = _latest_revision(session)
    return rev.id if rev is not None else None


def apply_catalog(
    session: Session, catalog: Catalog, source_text: str = "", *, dry_run: bool = False
) -> ApplyResult:
    """Store ``catalog`` as the current one; a changed plan gets a new version.

    Unchanged plans keep their version; a plan missing from ``catalog`` is retired
    (its subscriptions keep billing on their version). With ``dry_run`` nothing is
    written and the result tells what would happen.
    """
    doc = catalog_document(catalog)
    digest = _digest(doc)
    latest = _latest_revision(session)
    old_doc: dict[str, Any] = latest.document if latest is not None else {}

    rows = {
        r.code: r
        for r in session.scalars(
            select(PlanRow).order_by(PlanRow.code).with_for_update()
        )
    }
    latest_defs: dict[str, PlanVersionRow] = {}
    for r in rows.values():
        v = session.scalars(
            select(PlanVersionRow).where(
                PlanVersionRow.plan_code == r.code, PlanVersionRow.version == r.latest_version
            )
        ).one()
        latest_defs[r.code] = v

    changes: list[PlanChange] = []
    new_defs: dict[str, dict[str, Any]] = {}
    for code in sorted(catalog.plans):
        definition = plan_definition(catalog, code)
        new_defs[code] = definition
        row = rows.get(code)
        if row is None:
            changes.append(PlanChange(code, "added", None, 1))
            continue
        old_def = latest_defs[code].definition
        if _digest(old_def) == _digest(definition):
            if row.retired_at is not None:
                changes.append(PlanChange(code, "restored", row.latest_version,
                                          row.latest_version))
            else:
                changes.append(PlanChange(code, "unchanged", row.latest_version,
                                          row.latest_version))
            continue
        changes.append(PlanChange(
            code, "changed", row.latest_version, row.latest_version + 1,
            tuple(_plan_diff(old_def, definition, code)),
        ))
    for code in sorted(set(rows) - set(catalog.plans)):
        row = rows[code]
        if row.retired_at is None:
            changes.append(PlanChange(code, "removed", row.latest_version, None))

    other: list[str] = []
    for section in ("currency", "name", "meters", "costs", "credits"):
        if section in old_doc or section in doc:
            other.extend(diff_values({section: old_doc.get(section)} if section in old_doc else {},
                                     {section: doc.get(section)} if section in doc else {}))
    if latest is None:
        other = [f"+ first catalog: {len(catalog.meters)} meters, {len(catalog.plans)} plans"]

    touched = latest is None or digest != latest.digest or any(
        c.kind != "unchanged" for c in changes
    )
    if dry_run or not touched:
        return ApplyResult(dry_run=dry_run, revision=latest.id if latest else None,
                           plans=tuple(changes), other=tuple(other) if touched else ())

    now = utc_now()
    rev = CatalogRevision(applied_at=now, digest=digest, document=doc, source_text=source_text)
    session.add(rev)
    session.flush()
    for ch in changes:
        if ch.kind in ("added", "changed"):
            definition = new_defs[ch.code]
            version = ch.new_version or 1
            row = rows.get(ch.code)
            if row is None:
                row = PlanRow(code=ch.code, latest_version=version)
                session.add(row)
                session.flush()
            row.latest_version = version
            row.name = catalog.plans[ch.code].name or ch.code
            row.retired_at = None
            session.add(PlanVersionRow(
                plan_code=ch.code, version=version, currency=definition["currency"],
                digest=_digest(definition), definition=definition, revision_id=rev.id,
                created_at=now,
            ))
        elif ch.kind == "removed":
            rows[ch.code].retired_at = now
        elif ch.kind == "restored":
            rows[ch.code].retired_at = None
            rows[ch.code].name = catalog.plans[ch.code].name or ch.code
    session.flush()
    return ApplyResult(dry_run=False, revision=rev.id, plans=tuple(changes), other=tuple(other))


def _plan_diff(old: Mapping[str, Any], new: Mapping[str, Any], code: str) -> list[str]:
    out = diff_values(old.get("plan", {}), new.get("plan", {}), f"plans.{code}")
    if old.get("currency") != new.get("currency"):
        out.append(f"~ currency: {old.get('currency')} -> {new.get('currency')}")
    out.extend(diff_values(old.get("meters", {}), new.get("meters", {}), "meters"))
    return out


def _to_version(row: PlanVersionRow, plan_row: PlanRow) -> PlanVersion:
    definition = row.definition
    return PlanVersion(
        code=row.plan_code,
        version=row.version,
        plan=Plan.model_validate(definition["plan"]),
        currency=row.currency,
        meters=definition.get("meters", {}),
        digest=row.digest,
        created_at=row.created_at,
        latest=row.version == plan_row.latest_version,
        retired=plan_row.retired_at is not None,
        definition=definition,
    )


def _plan_row(session: Session, code: str) -> PlanRow:
    row = session.get(PlanRow, code)
    if row is None:
        known = ", ".join(session.scalars(select(PlanRow.code).order_by(PlanRow.code))) or "none"
        hint = "" if known != "none" else "; apply a catalog first: ratecard catalog apply FILE"
        raise NotFound(f"no plan {code!r}; plans: {known}{hint}")
    return row


def plan_version(session: Session, code: str, version: int | None = None) -> PlanVersion:
    """A plan's version ``version`` (default: its newest)."""
    plan_row = _plan_row(session, code)
    v = version if version is not None else plan_row.latest_version
    row = session.scalars(
        select(PlanVersionRow).where(
            PlanVersionRow.plan_code == code, PlanVersionRow.version == v
        )
    ).first()
    if row is None:
        raise NotFound(
            f"plan {code!r} has no version {v}; versions 1 to {plan_row.latest_version}"
        )
    return _to_version(row, plan_row)


def plan_versions(session: Session, code: str) -> list[PlanVersion]:
    plan_row = _plan_row(session, code)
    rows = session.scalars(
        select(PlanVersionRow).where(PlanVersionRow.plan_code == code)
        .order_by(PlanVersionRow.version)
    )
    return [_to_version(r, plan_row) for r in rows]


def list_plans(session: Session) -> list[PlanVersion]:
    """The newest version of every plan (retired plans included, flagged)."""
    out = []
    for row in session.scalars(select(PlanRow).order_by(PlanRow.code)):
        out.append(plan_version(session, row.code, row.latest_version))
    return out


def rating_catalog(pv: PlanVersion, base: Catalog | None = None) -> Catalog:
    """A catalog in which ``pv`` is the plan ``pv.code``, for the pricing engine.

    Meters come from the version itself (as sold); costs and credit packs from
    ``base`` (the current catalog) when given, since costs are what serving costs
    you today.
    """
    data: dict[str, Any] = {
        "currency": pv.currency,
        "meters": dict(pv.meters),
        "plans": {pv.code: pv.definition["plan"]},
    }
    if base is not None:
        doc = catalog_document(base)
        meters = dict(doc.get("meters", {}))
        meters.update(pv.meters)
        data["meters"] = meters
        if "costs" in doc:
            data["costs"] = doc["costs"]
        if "credits" in doc:
            data["credits"] = doc["credits"]
    return Catalog.model_validate(data)
