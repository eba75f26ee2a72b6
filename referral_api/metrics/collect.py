"""Gauges computed when Prometheus scrapes: a handful of GROUP BY and MAX queries, nothing kept.

Labels are fixed vocabularies only (statuses, stages, deadline names): never a reference, a name,
an organisation or anything else that could point at a person.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker

from ..audit.actions import AuditAction
from ..audit.models import AuditEvent
from ..cases.models import Case
from ..db import utcnow
from ..deadlines.models import OverdueItem
from ..events import OutboxEvent
from ..referrals.models import Referral
from ..webhooks.fanout import CURSOR
from ..webhooks.models import WebhookCursor, WebhookDelivery


def _value(member: object) -> str:
    return str(getattr(member, "value", member))


def _grouped(conn: Connection, column: sa.ColumnElement, *where: sa.ColumnElement) -> list[tuple[str, int]]:
    rows = conn.execute(sa.select(column, sa.func.count()).where(*where).group_by(column)).all()
    return sorted((_value(key), int(n)) for key, n in rows)


def _age(now: datetime, then: datetime | None) -> float:
    if then is None:
        return 0.0
    if then.tzinfo is None:
        then = then.replace(tzinfo=now.tzinfo)
    return max((now - then).total_seconds(), 0.0)


def _family(name: str, doc: str, label: str | None, rows: list[tuple[str, int]] | float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[label] if label else None)
    if label:
        for key, n in rows:  # type: ignore[union-attr]
            family.add_metric([key], n)
    else:
        family.add_metric([], rows)  # type: ignore[arg-type]
    return family


def _states(conn: Connection) -> Iterator[GaugeMetricFamily]:
    yield _family("referral_api_referrals", "Referrals by status.", "status", _grouped(conn, Referral.status))
    yield _family("referral_api_cases", "Cases by stage.", "stage", _grouped(conn, Case.stage))
    yield _family("referral_api_cases_on_hold", "Cases on hold.", None,
                  conn.scalar(sa.select(sa.func.count()).select_from(Case).where(Case.on_hold.is_(True)))
                  or 0)


def _outbox(conn: Connection, now: datetime) -> Iterator[GaugeMetricFamily]:
    last = conn.scalar(sa.select(WebhookCursor.last_seq).where(WebhookCursor.name == CURSOR)) or 0
    backlog, oldest = conn.execute(
        sa.select(sa.func.count(), sa.func.min(OutboxEvent.occurred_at)).where(OutboxEvent.seq > last)
    ).one()
    yield _family("referral_api_outbox_backlog", "Outbox events not yet fanned out to webhooks.", None,
                  backlog)
    yield _family("referral_api_outbox_oldest_age_seconds", "Age of the oldest event not yet fanned out "
                  "(0 when none waits).", None, _age(now, oldest))
    yield _family("referral_api_webhook_deliveries", "Webhook deliveries by outcome "
                  "(pending, delivered, failed).", "outcome", _grouped(conn, WebhookDelivery.status))


def _deadlines_and_audit(conn: Connection, now: datetime) -> Iterator[GaugeMetricFamily]:
    yield _family("referral_api_overdue_items", "Open overdue items by deadline.", "deadline",
                  _grouped(conn, OverdueItem.deadline, OverdueItem.cleared_at.is_(None)))
    length = conn.scalar(sa.select(sa.func.max(AuditEvent.seq))) or 0
    yield _family("referral_api_audit_chain_length", "Events in the audit chain.", None, length)
    unsealed = conn.scalar(sa.select(sa.func.count()).where(AuditEvent.seq.is_(None))) or 0
    yield _family("referral_api_audit_unsealed_events", "Events committed but not sealed into the chain "
                  "yet (sealed by the next writer or `audit seal`).", None, unsealed)
    last = conn.scalar(  # the newest, sealed or not
        sa.select(sa.func.max(AuditEvent.occurred_at))
        .where(AuditEvent.action == AuditAction.AUDIT_CHECKPOINT_CREATE.value)
    )
    yield _family("referral_api_audit_last_checkpoint_age_seconds",
                  "Seconds since the last `audit checkpoint` "
                  "(-1 when none was ever made).", None, _age(now, last) if last else -1.0)


class DatabaseCollector(Collector):
    """Reads the gauges from the database at each scrape (one short read-only transaction)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = utcnow()
        with self.sessions() as session:
            conn = session.connection()
            families = [*_states(conn), *_outbox(conn, now), *_deadlines_and_audit(conn, now)]
            session.rollback()
        yield from families
