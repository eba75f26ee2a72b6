"""The deadlines evaluation over 100,000 open cases on PostgreSQL, as a ratio to a bare SQL count of
the same overdue rows.

    .venv/bin/python bench/deadlines_bench.py [--cases 100000] [--rounds 5] [--max-seconds 300]
                                              [--database-url postgresql://postgres@127.0.0.1:5432/...]

Without --database-url, a scratch database is created on postgresql://postgres@127.0.0.1:5432 and
dropped afterwards. The population is seeded with INSERT ... SELECT generate_series (plain columns
only): --cases open cases spread over the stages that have a deadline, their clocks spread over the
last 3 days and one in 19 started 120 days earlier (overdue), one in 17 on hold, some in
rehabilitation with a service planned. The first evaluation raises every overdue item (its time is
printed: inserts, events and audit events). Then, in
alternating rounds, it times (a) the evaluation as the worker runs it, `deadlines.evaluate.run()`,
nothing new to raise (the steady state: every wait looked at, the records whose move or erasure
answered their items and the open service_plan items checked for an answer, one commit), and (b) one
bare `SELECT count(*)` of the same overdue rows with the same conditions.
It prints each target's best round and the ratio (goal: under 2).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scratch import scratch_database  # noqa: E402
from referral_api import dbmigrate  # noqa: E402
from referral_api.config import Settings  # noqa: E402
from referral_api.db import Database  # noqa: E402
from referral_api.deadlines import evaluate  # noqa: E402
from referral_api.deadlines.table import TABLE, Subject  # noqa: E402

STAGES = ["verification", "travel_documents", "travel_planning", "in_transit", "rehabilitation", "follow_up"]

SEED_CASES = """
INSERT INTO cases (id, reference, opened_at, opened_by_organisation_id, share_with, stage,
                   stage_since, clock_since, held_seconds, internal, on_hold, on_hold_since, version,
                   created_at, updated_at)
SELECT md5('dcase' || i)::uuid, 'CASE-D-' || i, ts, :org, '[]',
       (ARRAY['verification','travel_documents','travel_planning','in_transit','rehabilitation',
              'follow_up'])[1 + i % 6],
       ts, ts, 0, false, i % 17 = 0, CASE WHEN i % 17 = 0 THEN ts END, 1, ts, ts
FROM (SELECT i, :now - (i % 400) * interval '10 minutes'
                   - CASE WHEN i % 19 = 0 THEN interval '120 days' ELSE interval '0' END AS ts
      FROM generate_series(1, :n) AS i) s
"""

SEED_SERVICES = """
INSERT INTO case_services (id, case_id, kind, status, version, created_at, updated_at)
SELECT md5('dservice' || i)::uuid, md5('dcase' || i)::uuid, 'psychosocial', 'planned', 1, now(), now()
FROM generate_series(1, :n) AS i WHERE i % 6 = 4 AND i % 4 = 0
"""


def seed(db: Database, n: int, *, now: datetime) -> uuid.UUID:
    """An MGEC organisation and `n` open cases (clocks relative to `now`); returns the organisation's id."""
    org = uuid.uuid4()
    with db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO organisations (id, name, kind, country, status, created_at, updated_at) "
                "VALUES (:id, 'Bench MGEC', 'mgec', 'MN', 'active', now(), now())"
            ),
            {"id": org},
        )
        conn.execute(sa.text(SEED_CASES), {"org": org, "n": n, "now": now})
        conn.execute(sa.text(SEED_SERVICES), {"n": n})
    vacuum(db)
    return org


def vacuum(db: Database) -> None:
    """What autovacuum does in a running service: statistics and the visibility map (index-only scans)."""
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))


def bare_count(session, *, now: datetime, settings: Settings) -> int:
    """One SELECT count(*) of the cases past a deadline: the same conditions, nothing else."""
    from referral_api.cases.models import Case

    conditions = []
    for rule in TABLE:
        if rule.subject is not Subject.CASE:
            continue
        first = rule.levels_in(settings)[0]
        condition = sa.and_(Case.stage == rule.state, Case.clock_since <= first.latest_clock(now, settings))
        if rule.needs_service:
            condition = sa.and_(condition, ~evaluate._planned_service())
        conditions.append(condition)
    query = (
        sa.select(sa.func.count())
        .select_from(Case)
        .where(Case.on_hold.is_(False), Case.erased_at.is_(None), sa.or_(*conditions))
    )
    return session.scalar(query)


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-seconds", type=float, default=300.0)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    stop_at = time.monotonic() + args.max_seconds
    with scratch_database("deadlines_bench", args.database_url) as url:
        db = Database(url)
        settings = Settings.from_env({})
        now = datetime.now(UTC)
        try:
            dbmigrate.upgrade(db)
            started = time.perf_counter()
            seed(db, args.cases, now=now)
            print(f"seeded {args.cases} open cases in {time.perf_counter() - started:.1f} s")
            with db.sessionmaker() as session:
                session.execute(sa.text("SET statement_timeout = '120s'"))
                overdue = bare_count(session, now=now, settings=settings)
                first, report = timed(lambda: evaluate.run(session, now=now, settings=settings))
                print(f"overdue cases (bare count): {overdue}")
                raised = len(report["raised"])
                print(f"first evaluation: raised {raised} items (events, audit) in {first:.2f} s")
                session.commit()
                vacuum(db)
                best = {"evaluation": float("inf"), "count": float("inf")}
                for _ in range(args.rounds):
                    if time.monotonic() > stop_at:
                        print("stopped early: --max-seconds reached")
                        break
                    spent, report = timed(lambda: evaluate.run(session, now=now, settings=settings))
                    assert not report["raised"], "the steady state raises nothing"
                    best["evaluation"] = min(best["evaluation"], spent)
                    spent, _ = timed(
                        lambda: (bare_count(session, now=now, settings=settings), session.rollback())
                    )
                    best["count"] = min(best["count"], spent)
            print(f"evaluation (steady state): best {best['evaluation'] * 1000:.1f} ms")
            print(f"bare count of the same rows: best {best['count'] * 1000:.1f} ms")
            print(f"ratio: {best['evaluation'] / best['count']:.3f}")
        finally:
            db.engine.dispose()


if __name__ == "__main__":
    main()
