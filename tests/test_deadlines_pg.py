"""On PostgreSQL, two webhook workers running the deadlines step at the same moment raise each overdue
item once: one event and one audit event per item, whichever worker got there first."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from bench.deadlines_bench import bare_count, seed
from referral_api import audit, dbmigrate
from referral_api.audit.models import AuditEvent
from referral_api.config import Settings
from referral_api.db import Database
from referral_api.deadlines import cli as deadlines_cli  # noqa: F401  (registers the worker step)
from referral_api.deadlines.models import OverdueItem
from referral_api.events import EventType, OutboxEvent
from referral_api.webhooks.worker import Worker, periodic_tasks
from tests.conftest import throwaway_database

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]


def test_two_workers_evaluating_at_once_raise_each_item_once(backend, tmp_path):
    with throwaway_database(backend, tmp_path) as url:
        db = Database(url)
        try:
            dbmigrate.upgrade(db)
            now = datetime.now(UTC)
            seed(db, 3000, now=now)
            settings = Settings.from_env({})
            with db.sessionmaker() as session:
                overdue = bare_count(session, now=now, settings=settings)
            assert overdue > 100
            workers = [
                Worker(
                    db.sessionmaker,
                    worker_id=f"w{i}",
                    claim_seconds=60,
                    allow_http_loopback=False,
                    clock=lambda: now,
                    # only the deadline step: another part's step (prune) is registered too once its
                    # module was imported by an earlier test of the session
                    periodic=[t for t in periodic_tasks(settings) if t.name == "deadlines"],
                )
                for i in (1, 2)
            ]
            assert [t.name for t in workers[0].periodic] == ["deadlines"]
            start = threading.Barrier(2)
            failures: list[BaseException] = []

            def work(worker: Worker) -> None:
                start.wait()
                try:
                    # the step logs and swallows a failing task; run it bare too, to see any failure
                    with worker.sessions() as session:
                        worker.periodic[0].run(session, now)
                    worker.step()
                except BaseException as exc:  # noqa: BLE001  (reported below)
                    failures.append(exc)

            threads = [threading.Thread(target=work, args=(w,)) for w in workers]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            assert failures == []
            with db.sessionmaker() as session:
                keys = session.execute(
                    sa.select(OverdueItem.subject_id, OverdueItem.deadline, OverdueItem.level)
                ).all()
                assert len(keys) == len(set(keys)) == overdue
                types = session.scalars(sa.select(OutboxEvent.type)).all()
                assert len(types) == overdue and set(types) <= {
                    EventType.CASE_OVERDUE,
                    EventType.CASE_FOLLOW_UP_DUE,
                }
                raised = session.scalar(
                    sa.select(sa.func.count()).where(AuditEvent.action == "deadlines:item:raise")
                )
                assert raised == overdue
                assert audit.verify(session).ok  # the chain is whole: the two steps queued on its head
        finally:
            db.engine.dispose()
