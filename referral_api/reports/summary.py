"""`GET /api/v1/reports/summary`: counts and durations grouped in the database, then suppressed.

What is counted (per group of the requested dimensions):
- `referrals`: referrals submitted in the period (by `submitted_at`);
- `accepted_cases`: distinct cases opened or linked by those referrals when accepted;
- `repatriated`: distinct such cases that reached `arrived` (their `arrived_on` is set);
- `reintegrated`: distinct such cases that reached `reintegration` (a timeline move to that stage),
  or were closed with the reason `reintegrated` (a case may skip the stage and close as reintegrated).

Dimensions: `year` (of submission), `identified_country`, `exploitation_type`, `sex`, `age_band`,
`source` (of the referral) and `entry_point` (of the case's arrival move; none before arrival).
A referral with several exploitation types counts once in each of its types' groups, so the cells
grouped by type can sum to more than the total; one with none is in no type group.

Durations, in whole days from the referral's submission date: to acceptance (the decision date of
accepted referrals), to arrival (`arrived_on`) and to reintegration (the first move to
`reintegration`, else the closure date of a case closed as reintegrated); median and 90th percentile
with linear interpolation (PostgreSQL's `percentile_cont`). SQLite has no percentile aggregate: there
the day differences (numbers and group values only, nothing personal) are fetched and the same
interpolation is done in Python. A duration over fewer than `REPORT_MIN_CELL` referrals is suppressed.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..cases.models import Case, CaseEvent
from ..cases.stages import ClosureReason, Stage
from ..referrals.models import Referral
from ..referrals.states import ReferralStatus
from .suppression import suppress

DIMENSIONS = ("year", "identified_country", "exploitation_type", "sex", "age_band", "source", "entry_point")
COUNTS = ("referrals", "accepted_cases", "repatriated", "reintegrated")
DURATIONS = ("to_acceptance", "to_arrival", "to_reintegration")
PERCENTILES = (("median", 0.5), ("p90", 0.9))


@dataclass(frozen=True)
class SummaryQuery:
    group_by: tuple[str, ...] = ()
    date_from: date | None = None
    date_to: date | None = None


def _day(dialect: str, expr: Any, *, is_date: bool = False) -> Any:
    if dialect == "postgresql":
        return expr if is_date else sa.cast(sa.func.timezone("UTC", expr), sa.Date)
    return sa.func.julianday(sa.func.date(expr))


def _days(dialect: str, later: Any, earlier: Any, *, later_is_date: bool = False) -> Any:
    diff = _day(dialect, later, is_date=later_is_date) - _day(dialect, earlier)
    return sa.type_coerce(diff, sa.Float)


def _columns(dialect: str) -> tuple[dict[str, Any], dict[str, Any], Any, list[Any]]:
    """The dimension expressions, the per-row facts, and the FROM clause."""
    r, c = Referral.__table__.c, Case.__table__.c
    ev = CaseEvent.__table__.c
    reached_reintegration = (
        sa.select(sa.func.min(ev.occurred_at))
        .where(ev.case_id == c.id, ev.to_stage == Stage.REINTEGRATION.value)
        .correlate(Case.__table__)
        .scalar_subquery()
    )
    entry_point = (
        sa.select(sa.func.max(ev.details["entry_point"].as_string()))
        .where(ev.case_id == c.id, ev.to_stage == Stage.ARRIVED.value)
        .correlate(Case.__table__)
        .scalar_subquery()
    )
    closed_reintegrated = c.closure_reason == ClosureReason.REINTEGRATED.value
    reintegrated_at = sa.func.coalesce(reached_reintegration, sa.case((closed_reintegrated, c.closed_at)))
    accepted = sa.and_(r.status == ReferralStatus.ACCEPTED.value, r.case_id.is_not(None))
    joins = [(Case.__table__, c.id == r.case_id)]
    types = None
    if dialect == "postgresql":
        types = sa.func.json_array_elements_text(r.exploitation_types).table_valued("value").alias("et")
    else:
        types = sa.func.json_each(r.exploitation_types).table_valued("value").alias("et")
    dims = {
        "year": sa.extract("year", r.submitted_at),
        "identified_country": r.identified_country,
        "exploitation_type": types.c.value,
        "sex": r.sex,
        "age_band": r.age_band,
        "source": r.source,
        "entry_point": entry_point,
    }
    facts = {
        "case_id": sa.case((accepted, r.case_id)),
        "arrived": sa.case((sa.and_(accepted, c.arrived_on.is_not(None)), c.id)),
        "reintegrated": sa.case((sa.and_(accepted, reintegrated_at.is_not(None)), c.id)),
        "to_acceptance": sa.case((accepted, _days(dialect, r.decided_at, r.submitted_at))),
        "to_arrival": sa.case((accepted, _days(dialect, c.arrived_on, r.submitted_at, later_is_date=True))),
        "to_reintegration": sa.case((accepted, _days(dialect, reintegrated_at, r.submitted_at))),
    }
    return dims, facts, types, joins


def _base(query: SummaryQuery, parts: tuple, selected: list[Any]) -> sa.Select:
    _dims, _facts, types, joins = parts
    r = Referral.__table__.c
    stmt = sa.select(*selected).select_from(Referral.__table__)
    for table, on in joins:
        stmt = stmt.outerjoin(table, on)
    if "exploitation_type" in query.group_by:
        stmt = stmt.join(types, sa.true())
    if query.date_from is not None:
        stmt = stmt.where(r.submitted_at >= datetime.combine(query.date_from, time(), UTC))
    if query.date_to is not None:
        stmt = stmt.where(r.submitted_at < datetime.combine(query.date_to + timedelta(days=1), time(), UTC))
    return stmt


def _percentile(values: list[float], fraction: float) -> float:
    """Linear interpolation between the closest ranks, as PostgreSQL's percentile_cont."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _grouped(session: Session, query: SummaryQuery) -> dict[tuple, dict[str, Any]]:
    """One entry per group: the raw counts and, per duration, (n, median, p90)."""
    dialect = session.get_bind().dialect.name
    parts = _columns(dialect)
    dims, facts = parts[0], parts[1]
    keys = [dims[d].label(f"g_{d}") for d in query.group_by]
    counts = [
        sa.func.count().label("referrals"),
        sa.func.count(sa.distinct(facts["case_id"])).label("accepted_cases"),
        sa.func.count(sa.distinct(facts["arrived"])).label("repatriated"),
        sa.func.count(sa.distinct(facts["reintegrated"])).label("reintegrated"),
    ]
    group_cols = [dims[d] for d in query.group_by]
    out: dict[tuple, dict[str, Any]] = {}
    if dialect == "postgresql":
        durations = []
        for name in DURATIONS:
            durations.append(sa.func.count(facts[name]).label(f"{name}_n"))
            for label, fraction in PERCENTILES:
                durations.append(
                    sa.func.percentile_cont(fraction).within_group(facts[name]).label(f"{name}_{label}")
                )
        stmt = _base(query, parts, [*keys, *counts, *durations]).group_by(*group_cols)
        for row in session.execute(stmt).mappings():
            key = tuple(_value(d, row[f"g_{d}"]) for d in query.group_by)
            out[key] = {
                **{c: row[c] for c in COUNTS},
                **{n: (row[f"{n}_n"], row[f"{n}_median"], row[f"{n}_p90"]) for n in DURATIONS},
            }
        return out
    stmt = _base(query, parts, [*keys, *counts]).group_by(*group_cols)
    for row in session.execute(stmt).mappings():
        key = tuple(_value(d, row[f"g_{d}"]) for d in query.group_by)
        out[key] = {c: row[c] for c in COUNTS}
    days: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    numbers = [facts[n].label(n) for n in DURATIONS]
    for row in session.execute(_base(query, parts, [*keys, *numbers])).mappings():
        key = tuple(_value(d, row[f"g_{d}"]) for d in query.group_by)
        for name in DURATIONS:
            if row[name] is not None:
                days[key][name].append(float(row[name]))
    for key, entry in out.items():
        for name in DURATIONS:
            values = days[key][name]
            entry[name] = (
                (len(values), *(_percentile(values, f) for _, f in PERCENTILES))
                if values
                else (0, None, None)
            )
    return out


def _value(dimension: str, value: Any) -> Any:
    if value is None:
        return None
    if dimension == "year":
        return int(value)
    return value.value if hasattr(value, "value") else str(value)


def _durations(entry: dict[str, Any], k: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in DURATIONS:
        n, median, p90 = entry[name]
        if n < k:
            out[name] = {"median_days": None, "p90_days": None, "suppressed": n > 0}
        else:
            out[name] = {
                "median_days": round(float(median), 1),
                "p90_days": round(float(p90), 1),
                "suppressed": False,
            }
    return out


def summary(session: Session, query: SummaryQuery, *, k: int) -> dict[str, Any]:
    """The report: suppressed cells read `null` and are named in the cell's `suppressed` list."""
    rows = _grouped(session, query) if query.group_by else {}
    total_entry = _grouped(session, SummaryQuery((), query.date_from, query.date_to)).get(())
    if total_entry is None:
        total_entry = {**dict.fromkeys(COUNTS, 0), **dict.fromkeys(DURATIONS, (0, None, None))}
    hidden: dict[str, set[tuple]] = {}
    total_hidden: dict[str, bool] = {}
    for metric in COUNTS:
        cells = {key: int(entry[metric]) for key, entry in rows.items()}
        hidden[metric], total_hidden[metric] = suppress(cells, k=k, total=int(total_entry[metric]))

    def cell(key: tuple | None, entry: dict[str, Any]) -> dict[str, Any]:
        gone = [m for m in COUNTS if (total_hidden[m] if key is None else key in hidden[m])]
        doc: dict[str, Any] = {m: (None if m in gone else int(entry[m])) for m in COUNTS}
        doc["suppressed"] = gone
        doc["durations"] = _durations(entry, k)
        return doc

    items = []
    for key in sorted(rows, key=lambda k_: tuple((v is None, str(v)) for v in k_)):
        items.append({"group": dict(zip(query.group_by, key, strict=True)), **cell(key, rows[key])})
    return {
        "group_by": list(query.group_by),
        "from": query.date_from.isoformat() if query.date_from else None,
        "to": query.date_to.isoformat() if query.date_to else None,
        "min_cell": k,
        "rows": items,
        "total": cell(None, total_entry),
    }
