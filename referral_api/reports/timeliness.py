"""`GET /api/v1/reports/deadlines`: how often referrals are decided in time, and how long cases stay in
each stage. Plain columns only (nothing is decrypted); small cells suppressed as in summary.py.

- Decisions by month (of the decision): referrals accepted or rejected, and how many of them within
  their deadline: the review deadline of their urgency plus the decision deadline (deadlines/table.py,
  as configured), counted from submission; time waiting for a partner's answer counts too.
  Each month's two cells (in time, late) go through `suppression.suppress` with the month's total, so
  no count from 1 to REPORT_MIN_CELL - 1 is shown nor recoverable from it; a share is given only where
  both of its counts are.
- Median days in each stage: over completed stays (the case moved on) that began in the period, from
  the timeline's moves; a stage with fewer than REPORT_MIN_CELL stays has no median (suppressed).
"""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..cases.models import CaseEvent, CaseEventKind
from ..cases.stages import OPEN
from ..config import Settings
from ..deadlines.table import TABLE, Deadline
from ..referrals.models import Referral
from ..referrals.states import ReferralStatus
from .suppression import suppress

IN_TIME, LATE = "in_time", "late"


def _bounds(column: Any, date_from: date | None, date_to: date | None) -> list[Any]:
    where = []
    if date_from is not None:
        where.append(column >= datetime.combine(date_from, time(), UTC))
    if date_to is not None:
        where.append(column < datetime.combine(date_to + timedelta(days=1), time(), UTC))
    return where


def _in_time(settings: Settings, urgency: Any, submitted_at: datetime, decided_at: datetime) -> bool:
    review = next(r for r in TABLE if r.deadline is Deadline.REVIEW and r.urgency == urgency).levels[0]
    decision = next(r for r in TABLE if r.deadline is Deadline.DECISION).levels[0]
    return decided_at <= decision.due(review.due(submitted_at, settings), settings)


def decisions(
    session: Session, *, settings: Settings, k: int, date_from: date | None, date_to: date | None
) -> list[dict[str, Any]]:
    """Per month of decision: decided, in time, late and the share in time (suppressed where small)."""
    rows = session.execute(
        sa.select(Referral.urgency, Referral.submitted_at, Referral.decided_at).where(
            Referral.status.in_([ReferralStatus.ACCEPTED, ReferralStatus.REJECTED]),
            Referral.decided_at.is_not(None),
            *_bounds(Referral.decided_at, date_from, date_to),
        )
    ).all()
    months: dict[str, dict[str, int]] = defaultdict(lambda: {IN_TIME: 0, LATE: 0})
    for urgency, submitted_at, decided_at in rows:
        in_time = _in_time(settings, urgency, submitted_at, decided_at)
        months[decided_at.strftime("%Y-%m")][IN_TIME if in_time else LATE] += 1
    out = []
    for month, cells in sorted(months.items()):
        # Each month alone: every answer of this report shows whole months, never a total across them.
        decided = cells[IN_TIME] + cells[LATE]
        hidden, total_hidden = suppress({(n,): v for n, v in cells.items()}, k=k, total=decided)
        shown = {n: None if (n,) in hidden else v for n, v in cells.items()}
        out.append(
            {
                "month": month,
                "decided": None if total_hidden else decided,
                "in_time": shown[IN_TIME],
                "late": shown[LATE],
                "share_in_time": round(cells[IN_TIME] / decided, 3) if not hidden and decided else None,
                "suppressed": sorted(n for n, v in shown.items() if v is None),
            }
        )
    return out


def stage_days(
    session: Session, *, k: int, date_from: date | None, date_to: date | None
) -> list[dict[str, Any]]:
    """Median days of a completed stay in each open stage, from the timeline's moves."""
    rows = session.execute(
        sa.select(CaseEvent.case_id, CaseEvent.to_stage, CaseEvent.occurred_at)
        .where(CaseEvent.kind.in_([CaseEventKind.OPENED, CaseEventKind.MOVED]))
        .order_by(CaseEvent.case_id, CaseEvent.occurred_at, CaseEvent.recorded_at)
    ).all()
    start, end = (datetime.combine(d, time(), UTC) if d else None for d in (date_from, date_to))
    stays: dict[Any, list[float]] = defaultdict(list)
    for (case_id, stage, began), (next_case, _, ended) in itertools.pairwise(rows):
        if next_case != case_id or stage is None:
            continue
        if (start and began < start) or (end and began >= end + timedelta(days=1)):
            continue
        stays[stage].append((ended - began).total_seconds() / 86400)
    out = []
    for stage in OPEN:
        days = stays.get(stage, [])
        enough = len(days) >= k
        out.append(
            {
                "stage": stage.value,
                "median_days": round(statistics.median(days), 1) if enough else None,
                "suppressed": bool(days) and not enough,
            }
        )
    return out


def report(
    session: Session, *, settings: Settings, k: int, date_from: date | None, date_to: date | None
) -> dict[str, Any]:
    """The deadlines report: decisions in time by month, median days in each stage."""
    return {
        "from": date_from.isoformat() if date_from else None,
        "to": date_to.isoformat() if date_to else None,
        "min_cell": k,
        "decisions": decisions(session, settings=settings, k=k, date_from=date_from, date_to=date_to),
        "stage_days": stage_days(session, k=k, date_from=date_from, date_to=date_to),
    }
