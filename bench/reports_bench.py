"""The summary report over 100,000 cases on PostgreSQL, as a ratio to a hand-written GROUP BY.

    .venv/bin/python bench/reports_bench.py [--cases 100000] [--rounds 5] [--max-seconds 300]
                                            [--database-url postgresql://postgres@127.0.0.1:5432/...]

Without --database-url, a scratch database is created on postgresql://postgres@127.0.0.1:5432 and
dropped afterwards. The population is seeded in a few INSERT ... SELECT generate_series statements
(plain columns only: reports never read personal data): --cases accepted referrals, each with its
case, spread over 6 years, 12 countries, 8 exploitation types, sexes and age bands; some arrived,
some reintegrated. Then, in alternating rounds, it times (a) the report as the API answers it,
`reports.summary.summary()` grouped by year and identified_country (counts, durations, the total
and the complementary suppression), and (b) a hand-written GROUP BY giving the same four counts per
cell and in total (checked equal to the report's before timing; same work_mem). It prints each
target's best round, the ratio (goal: at most 1.5), and EXPLAIN (ANALYZE, BUFFERS) of the report's
statement. Bounded: a statement timeout, a fixed number of rounds, and --max-seconds for the whole run.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scratch import scratch_database  # noqa: E402
from referral_api import dbmigrate  # noqa: E402
from referral_api.db import Database  # noqa: E402
from referral_api.reports import summary  # noqa: E402

COUNTRIES = ["CN", "KR", "MO", "JP", "TR", "KZ", "RU", "DE", "AE", "MY", "TH", "US"]

SEED_CASES = """
INSERT INTO cases (id, reference, opened_at, opened_by_organisation_id, share_with, stage, stage_since,
                   internal, on_hold, version, arrived_on, closed_at, closure_reason, created_at, updated_at,
                   clock_since)
SELECT md5('case' || i)::uuid, 'CASE-B-' || i,
       ts + (i % 20) * interval '1 day', :org, '[]',
       CASE WHEN i % 5 = 0 THEN 'closed' WHEN i % 3 = 0 THEN 'reintegration' ELSE 'verification' END,
       ts, false, false, 1,
       CASE WHEN i % 3 = 0 OR i % 5 = 0 THEN (ts + (30 + i % 40) * interval '1 day')::date END,
       CASE WHEN i % 5 = 0 THEN ts + (100 + i % 90) * interval '1 day' END,
       CASE WHEN i % 5 = 0 THEN 'reintegrated' END,
       ts, ts, ts
FROM (SELECT i, timestamptz '2020-01-01 08:00+00' + (i % 2190) * interval '1 day' AS ts
      FROM generate_series(1, :n) AS i) s
"""

SEED_REFERRALS = """
INSERT INTO referrals (id, reference, status, version, concern, source, submitted_by_organisation_id,
    submitted_by_client_id, submitted_at, status_changed_at, sex, nationality, is_minor,
    age_band, identified_country, identified_on, exploitation_types, urgency, consent_given,
    share_with, minimised, decided_at, case_id, possible_duplicates, created_at, updated_at)
SELECT md5('referral' || i)::uuid, 'REF-B-' || i, 'accepted', 1, 'trafficking',
       (ARRAY['police','embassy','iom','ngo','hotline'])[1 + i % 5], :org, 'bench', ts, ts,
       (ARRAY['female','female','female','male'])[1 + i % 4], 'MN', i % 9 = 0,
       (ARRAY['12-17','18-25','26-35','36-49','50+','18-25','26-35','18-25','26-35'])[1 + i % 9],
       (ARRAY[:countries])[1 + (i * 7) % 12], (ts - interval '3 days')::date,
       (ARRAY['["sexual"]','["forced_labour"]','["sexual","forced_labour"]','["forced_marriage"]',
              '["domestic_servitude"]','["begging"]','["other"]','["criminal_activity"]'])[1 + i % 8]::json,
       'routine', true, '[]', '[]', ts + (i % 20) * interval '1 day', md5('case' || i)::uuid, 0, ts, ts
FROM (SELECT i, timestamptz '2020-01-01 08:00+00' + (i % 2190) * interval '1 day' AS ts
      FROM generate_series(1, :n) AS i) s
"""

SEED_EVENTS = """
INSERT INTO case_events (id, case_id, kind, from_stage, to_stage, occurred_at, recorded_at, organisation_id,
                         client_id, details)
SELECT md5('event' || i)::uuid, md5('case' || i)::uuid, 'moved', 'in_transit', 'arrived',
       timestamptz '2020-01-01 08:00+00' + (i % 2190 + 30) * interval '1 day', now(), :org, 'bench',
       json_build_object('entry_point',
                         CASE WHEN i % 2 = 0 THEN 'chinggis_khaan_airport' ELSE 'zamiin_uud' END)
FROM generate_series(1, :n) AS i WHERE i % 3 = 0 OR i % 5 = 0
UNION ALL
SELECT md5('reintegration' || i)::uuid, md5('case' || i)::uuid, 'moved', 'rehabilitation', 'reintegration',
       timestamptz '2020-01-01 08:00+00' + (i % 2190 + 100 + i % 60) * interval '1 day', now(), :org, 'bench',
       '{}'::json
FROM generate_series(1, :n) AS i WHERE i % 3 = 0 AND i % 5 <> 0
"""


def seed_sql(conn, org: uuid.UUID, n: int) -> None:
    """n accepted referrals with their cases and timelines, for an organisation `org` that exists."""
    conn.execute(sa.text(SEED_CASES), {"org": org, "n": n})
    conn.execute(
        sa.text(SEED_REFERRALS.replace(":countries", ", ".join(f"'{c}'" for c in COUNTRIES))),
        {"org": org, "n": n},
    )
    conn.execute(sa.text(SEED_EVENTS), {"org": org, "n": n})


def seed(db: Database, n: int) -> None:
    with db.engine.begin() as conn:
        org = uuid.uuid4()
        conn.execute(
            sa.text(
                "INSERT INTO organisations (id, name, kind, country, status, created_at, updated_at) "
                "VALUES (:id, 'Bench MGEC', 'mgec', 'MN', 'active', now(), now())"
            ),
            {"id": org},
        )
        seed_sql(conn, org, n)
        conn.execute(sa.text("ANALYZE"))


# The baseline: what one would write by hand for the same counts (no durations, no suppression).
HAND_GROUP_BY = """
SELECT extract(year FROM r.submitted_at)::int AS year, r.identified_country AS country,
       grouping(extract(year FROM r.submitted_at)::int, r.identified_country) AS is_total,
       count(*) AS referrals,
       count(DISTINCT r.case_id) FILTER (WHERE r.status = 'accepted') AS accepted_cases,
       count(DISTINCT c.id) FILTER (WHERE r.status = 'accepted' AND c.arrived_on IS NOT NULL) AS repatriated,
       count(DISTINCT c.id) FILTER (WHERE r.status = 'accepted'
                                      AND (ri.case_id IS NOT NULL OR c.closure_reason = 'reintegrated'))
           AS reintegrated
FROM referrals r
LEFT JOIN cases c ON c.id = r.case_id
LEFT JOIN (SELECT DISTINCT case_id FROM case_events WHERE to_stage = 'reintegration') ri ON ri.case_id = c.id
GROUP BY GROUPING SETS ((1, 2), ())
"""


def hand_counts(session) -> dict:
    session.execute(sa.text(f"SET LOCAL work_mem = '{summary._WORK_MEM}'"))
    out = {}
    for row in session.execute(sa.text(HAND_GROUP_BY)).mappings():
        key = None if row["is_total"] else (row["year"], row["country"])
        out[key] = tuple(row[m] for m in summary.COUNTS)
    return out


def report_counts(report: dict) -> dict:
    out = {None: tuple(report["total"][m] for m in summary.COUNTS)}
    for row in report["rows"]:
        key = (row["group"]["year"], row["group"]["identified_country"])
        out[key] = tuple(row[m] for m in summary.COUNTS)
    return out


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-seconds", type=float, default=300.0)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    deadline = time.monotonic() + args.max_seconds
    with scratch_database("reports_bench", args.database_url) as url:
        db = Database(url)
        try:
            dbmigrate.upgrade(db)
            started = time.perf_counter()
            seed(db, args.cases)
            print(f"seeded {args.cases} cases and referrals in {time.perf_counter() - started:.1f} s")
            query = summary.SummaryQuery(("year", "identified_country"))
            best = {"report": float("inf"), "hand": float("inf")}
            with db.sessionmaker() as session:
                session.execute(sa.text("SET statement_timeout = '60s'"))
                # k=1: nothing suppressed, so every count can be compared with the hand-written one
                assert report_counts(summary.summary(session, query, k=1)) == hand_counts(session)
                session.commit()
                groups = len(summary.summary(session, query, k=11)["rows"])
                session.commit()
                rounds = 0
                for _ in range(args.rounds):
                    if time.monotonic() > deadline:
                        print("stopped early: --max-seconds reached")
                        break
                    best["report"] = min(best["report"], timed(lambda: summary.summary(session, query, k=11)))
                    session.commit()
                    best["hand"] = min(best["hand"], timed(lambda: hand_counts(session)))
                    session.commit()
                    rounds += 1
                text = summary.plan(session, query)
                session.commit()
            print(f"groups: {groups} (year x identified_country); {rounds} alternating rounds, best of each")
            print(f"report (GET /reports/summary's service call): best {best['report'] * 1000:.1f} ms")
            print(f"hand-written GROUP BY, same counts:          best {best['hand'] * 1000:.1f} ms")
            print(f"ratio report / hand: {best['report'] / best['hand']:.2f} (goal <= 1.5)")
            print("EXPLAIN (ANALYZE, BUFFERS) of the report's statement:")
            print(text)
        finally:
            db.engine.dispose()


if __name__ == "__main__":
    main()
