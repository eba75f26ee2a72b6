"""`GET /api/v1/reports/summary`: counts and durations grouped in the database, then suppressed.

What is counted (per group of the requested dimensions):
- `referrals`: referrals submitted in the period (by `submitted_at`);
- `accepted_cases`: distinct cases opened or linked by those referrals when accepted;
- `repatriated`: distinct such cases that reached `arrived` (their `arrived_on` is set);
- `reintegrated`: distinct such cases that reached `reintegration` (a timeline move to that stage),
  or were closed with the reason `reintegrated` (a case may skip the stage and close as reintegrated).

Dimensions: `year` (of submission), `identified_country`, `exploitation_type`, `sex`, `age_band`,
`source` (of the referral) and `entry_point` (of the case's arrival move; none before arrival).
A referral with several exploitation types counts once in each of its types' groups (once too when a
type is repeated in its list: the schema refuses repeats, and the facts keep one row per referral and
type), so the cells grouped by type can sum to more than the total; one with none is in no type group.
The difference (the overlap: referrals counted twice or more) is a derived count: grouped by type, the
same grouping without the type is read too (its counts are what another answer releases), and
suppression (`suppression.suppress`, `multi`) keeps every derivable overlap at 0 or at least
REPORT_MIN_CELL.

Durations, in whole days from the referral's submission date: to acceptance (the decision date of
accepted referrals), to arrival (`arrived_on`) and to reintegration (the first move to
`reintegration`, else the closure date of a case closed as reintegrated); median and 90th percentile
with linear interpolation (PostgreSQL's `percentile_cont`). A duration over fewer than
`REPORT_MIN_CELL` referrals is suppressed.

How it is computed, in one pass: the facts are one narrow row per referral (per referral and type when
grouped by type): its group values, the case ids the distinct counts count, and its day numbers. The
timeline enters by a grouped subquery per stage (first move to reintegration per case; the arrival's
entry point only when grouped by it), hash-joined, never a subquery per row. On PostgreSQL one
statement groups them with `GROUPING SETS ((the dimensions), ())`, so the total comes from the same
pass (`GROUPING()` tells it apart); grouped by type a referral is a row per type, so there the total
(each referral once) is a second, ungrouped statement. The transaction's `work_mem` is raised for it so
that its sorts stay in memory. SQLite has no GROUPING SETS and no percentile aggregate: there the same
facts (numbers and group values only, nothing personal) are read once and summed in Python, with the
same interpolation. The statements are built once per shape (grouping, period bounds).
"""

from __future__ import annotations

import functools
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
# For the one report statement: its sorts (grouping, distinct counts, percentiles) stay in memory.
_WORK_MEM = "64MB"


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


def _moves(stage: Stage, value: Any, name: str) -> Any:
    """Per case, in one grouped pass over its timeline's moves to `stage`: an aggregate of `value`."""
    ev = CaseEvent.__table__.c
    return (
        sa.select(ev.case_id.label("case_id"), value.label(name))
        .where(ev.to_stage == stage.value)
        .group_by(ev.case_id)
        .subquery(f"moves_{name}")
    )


def _params(query: SummaryQuery) -> dict[str, datetime]:
    """The period's bounds as the statements' parameters (`date_from`, `date_to`)."""
    params = {}
    if query.date_from is not None:
        params["date_from"] = datetime.combine(query.date_from, time(), UTC)
    if query.date_to is not None:
        params["date_to"] = datetime.combine(query.date_to + timedelta(days=1), time(), UTC)
    return params


def _facts(dialect: str, group_by: tuple[str, ...], bounds: tuple[str, ...], *, explode: bool) -> sa.Select:
    """One narrow row per referral (per referral and type when `explode`): the group values `g_*`, the
    case ids the distinct counts count, and the day numbers of the durations. `bounds` names the
    period's parameters the statement takes."""
    r, c = Referral.__table__.c, Case.__table__.c
    ev = CaseEvent.__table__.c
    # The first move to reintegration; the entry point of the arrival (the largest, should a case have
    # arrived twice), read only when grouped by it (it parses each arrival's details).
    reached = _moves(Stage.REINTEGRATION, sa.func.min(ev.occurred_at), "reached")
    entry = _moves(Stage.ARRIVED, sa.func.max(ev.details["entry_point"].as_string()), "entry_point")
    closed_reintegrated = c.closure_reason == ClosureReason.REINTEGRATED.value
    reintegrated_at = sa.func.coalesce(reached.c.reached, sa.case((closed_reintegrated, c.closed_at)))
    accepted = sa.and_(r.status == ReferralStatus.ACCEPTED.value, r.case_id.is_not(None))
    if dialect == "postgresql":
        types = sa.func.json_array_elements_text(r.exploitation_types).table_valued("value").alias("et")
    else:
        types = sa.func.json_each(r.exploitation_types).table_valued("value").alias("et")
    dims = {
        "year": sa.cast(sa.extract("year", r.submitted_at), sa.Integer),
        "identified_country": r.identified_country,
        "exploitation_type": types.c.value,
        "sex": r.sex,
        "age_band": r.age_band,
        "source": r.source,
        "entry_point": entry.c.entry_point,
    }
    stmt = sa.select(
        *(dims[d].label(f"g_{d}") for d in group_by),
        r.id.label("referral_id"),
        sa.case((accepted, r.case_id)).label("case_id"),
        sa.case((sa.and_(accepted, c.arrived_on.is_not(None)), c.id)).label("arrived"),
        sa.case((sa.and_(accepted, reintegrated_at.is_not(None)), c.id)).label("reintegrated"),
        sa.case((accepted, _days(dialect, r.decided_at, r.submitted_at))).label("to_acceptance"),
        sa.case((accepted, _days(dialect, c.arrived_on, r.submitted_at, later_is_date=True))).label(
            "to_arrival"
        ),
        sa.case((accepted, _days(dialect, reintegrated_at, r.submitted_at))).label("to_reintegration"),
    )
    joined = Referral.__table__.outerjoin(Case.__table__, c.id == r.case_id).outerjoin(
        reached, reached.c.case_id == c.id
    )
    if "entry_point" in group_by:
        joined = joined.outerjoin(entry, entry.c.case_id == c.id)
    if explode:
        # Each type its own row; a referral without a type keeps one row (type NULL) for the total. A
        # type repeated in a referral's list (stored before the schema refused repeats) is one row: the
        # rows of one referral and type are the same row, which DISTINCT keeps once.
        joined = joined.outerjoin(types, sa.true())
        stmt = stmt.distinct()
    stmt = stmt.select_from(joined)
    if "date_from" in bounds:
        stmt = stmt.where(r.submitted_at >= sa.bindparam("date_from", type_=r.submitted_at.type))
    if "date_to" in bounds:
        stmt = stmt.where(r.submitted_at < sa.bindparam("date_to", type_=r.submitted_at.type))
    return stmt


def _percentile(values: list[float], fraction: float) -> float:
    """Linear interpolation between the closest ranks, as PostgreSQL's percentile_cont."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _aggregates(f: Any) -> list[Any]:
    out = [
        sa.func.count().label("referrals"),
        sa.func.count(sa.distinct(f.c.case_id)).label("accepted_cases"),
        sa.func.count(sa.distinct(f.c.arrived)).label("repatriated"),
        sa.func.count(sa.distinct(f.c.reintegrated)).label("reintegrated"),
    ]
    for name in DURATIONS:
        out.append(sa.func.count(f.c[name]).label(f"{name}_n"))
        for label, fraction in PERCENTILES:
            out.append(sa.func.percentile_cont(fraction).within_group(f.c[name]).label(f"{name}_{label}"))
    return out


def _entry(row: Any) -> dict[str, Any]:
    return {
        **{c: row[c] for c in COUNTS},
        **{n: (row[f"{n}_n"], row[f"{n}_median"], row[f"{n}_p90"]) for n in DURATIONS},
    }


@functools.lru_cache(maxsize=256)
def _statement(dialect: str, group_by: tuple[str, ...], bounds: tuple[str, ...], kind: str) -> sa.Select:
    """The report's statements, built once per shape (building one costs more than PostgreSQL's plan):
    `grouped` (the groups and the total, `is_total`, by GROUPING SETS), `by_type` (the groups only: a
    referral is a row per type there), `total`, and `facts` (the rows SQLite's path sums)."""
    if kind == "facts":
        return _facts(dialect, group_by, bounds, explode="exploitation_type" in group_by)
    f = _facts(dialect, group_by, bounds, explode=kind == "by_type").subquery("f")
    keys = [f.c[f"g_{d}"] for d in group_by]
    if kind == "total":
        return sa.select(*_aggregates(f))
    if kind == "by_type":
        stmt = sa.select(*keys, *_aggregates(f), sa.literal(0).label("is_total"))
        return stmt.where(f.c.g_exploitation_type.is_not(None)).group_by(*keys)
    stmt = sa.select(*keys, *_aggregates(f), sa.func.grouping(*keys).label("is_total"))
    return stmt.group_by(sa.func.grouping_sets(sa.tuple_(*keys), sa.tuple_()))


def grouped_statement(query: SummaryQuery) -> tuple[sa.Select, dict[str, datetime]]:
    """PostgreSQL's one statement for a report grouped by anything but the type, and its parameters."""
    params = _params(query)
    return _statement("postgresql", query.group_by, tuple(sorted(params)), "grouped"), params


def plan(session: Session, query: SummaryQuery) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of `grouped_statement(query)` as the report runs it (for the bench and
    the plan test; PostgreSQL only)."""
    session.execute(sa.text(f"SET LOCAL work_mem = '{_WORK_MEM}'"))
    stmt, params = grouped_statement(query)
    compiled = stmt.compile(dialect=session.get_bind().dialect, compile_kwargs={"render_postcompile": True})
    rows = session.connection().exec_driver_sql(
        "EXPLAIN (ANALYZE, BUFFERS) " + str(compiled), {**compiled.params, **params}
    )
    return "\n".join(row[0] for row in rows)


def _aggregate_postgresql(session: Session, query: SummaryQuery) -> tuple[dict[tuple, dict], dict | None]:
    """One statement (`grouped_statement`); grouped by type, the total is a second statement."""
    session.execute(sa.text(f"SET LOCAL work_mem = '{_WORK_MEM}'"))
    params = _params(query)
    bounds = tuple(sorted(params))
    rows: dict[tuple, dict[str, Any]] = {}
    total = None
    if not query.group_by or "exploitation_type" in query.group_by:
        whole = _statement("postgresql", (), bounds, "total")
        total = _entry(session.execute(whole, params).mappings().one())
        if not query.group_by:
            return rows, total
    kind = "by_type" if "exploitation_type" in query.group_by else "grouped"
    for row in session.execute(_statement("postgresql", query.group_by, bounds, kind), params).mappings():
        if row["is_total"]:
            total = _entry(row)
        else:
            rows[tuple(_value(d, row[f"g_{d}"]) for d in query.group_by)] = _entry(row)
    return rows, total


class _Tally:
    """One group's counts and day numbers, summed in Python (SQLite has no percentile aggregate)."""

    def __init__(self) -> None:
        self.referrals = 0
        self.cases: dict[str, set] = {"accepted_cases": set(), "repatriated": set(), "reintegrated": set()}
        self.days: dict[str, list[float]] = {name: [] for name in DURATIONS}

    def add(self, row: Any) -> None:
        self.referrals += 1
        for metric, column in (("accepted_cases", "case_id"), ("repatriated", "arrived"),
                               ("reintegrated", "reintegrated")):
            if row[column] is not None:
                self.cases[metric].add(row[column])
        for name in DURATIONS:
            if row[name] is not None:
                self.days[name].append(float(row[name]))

    def entry(self) -> dict[str, Any]:
        out: dict[str, Any] = {"referrals": self.referrals, **{m: len(v) for m, v in self.cases.items()}}
        for name, values in self.days.items():
            quantiles = tuple(_percentile(values, f) for _, f in PERCENTILES) if values else (None, None)
            out[name] = (len(values), *quantiles)
        return out


def _aggregate_python(session: Session, query: SummaryQuery) -> tuple[dict[tuple, dict], dict | None]:
    """The same in one pass over the narrow facts (numbers and group values only, nothing personal)."""
    dialect = session.get_bind().dialect.name
    explode = "exploitation_type" in query.group_by
    groups: dict[tuple, _Tally] = defaultdict(_Tally)
    total, seen = _Tally(), set()
    params = _params(query)
    facts = _statement(dialect, query.group_by, tuple(sorted(params)), "facts")
    for row in session.execute(facts, params).mappings():
        if row["referral_id"] not in seen:  # the total counts each referral once, whatever its types
            seen.add(row["referral_id"])
            total.add(row)
        if query.group_by and not (explode and row["g_exploitation_type"] is None):
            groups[tuple(_value(d, row[f"g_{d}"]) for d in query.group_by)].add(row)
    return {key: tally.entry() for key, tally in groups.items()}, (total.entry() if seen else None)


def _aggregate(session: Session, query: SummaryQuery) -> tuple[dict[tuple, dict], dict | None]:
    """Per group, and for the total: the raw counts and, per duration, (n, median, p90)."""
    if session.get_bind().dialect.name == "postgresql":
        return _aggregate_postgresql(session, query)
    return _aggregate_python(session, query)


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


def _lines(session: Session, query: SummaryQuery, total: dict[str, Any]) -> dict[tuple, dict] | None:
    """Grouped by type (a referral counts in each of its types): what the same grouping without the
    type releases, per value of the other dimensions (the total alone when the type is the only one).
    The type cells of a line sum to it plus the overlap, which suppression keeps from being small."""
    if "exploitation_type" not in query.group_by:
        return None
    others = tuple(d for d in query.group_by if d != "exploitation_type")
    if not others:
        return {(): total}
    return _aggregate(session, SummaryQuery(others, query.date_from, query.date_to))[0]


def summary(session: Session, query: SummaryQuery, *, k: int) -> dict[str, Any]:
    """The report: suppressed cells read `null` and are named in the cell's `suppressed` list."""
    rows, total_entry = _aggregate(session, query)
    if total_entry is None:
        total_entry = {**dict.fromkeys(COUNTS, 0), **dict.fromkeys(DURATIONS, (0, None, None))}
    lines = _lines(session, query, total_entry)
    multi = query.group_by.index("exploitation_type") if lines is not None else None
    hidden: dict[str, set[tuple]] = {}
    total_hidden: dict[str, bool] = {}
    for metric in COUNTS:
        cells = {key: int(entry[metric]) for key, entry in rows.items()}
        marginals = {key: int(e[metric]) for key, e in lines.items()} if lines is not None else None
        hidden[metric], total_hidden[metric] = suppress(
            cells, k=k, total=int(total_entry[metric]), multi=multi, lines=marginals
        )

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
