"""The case status view under load, as a ratio to a bare Flask route reading the same row.

    .venv/bin/python bench/cases_status_bench.py [--rounds 3] [--seconds 10]
                                                 [--database-url postgresql://.../scratch]

Both targets run the same way (bench/wrk.py): gunicorn, 2 sync workers each, on 127.0.0.1, against
the same database; both servers are up, and only one is loaded at a time, by `wrk -t2 -c32` for
--seconds, in --rounds alternating rounds. The status view is the real one (`GET
/api/v1/cases/{id}/status` with an embassy's bearer token: token check, case and participant in one
query, dump, access log line). The bare route reads the same case row by primary key and returns the
same JSON without auth. Prints every round, the best and median of each, and the ratios (goal:
throughput at least 0.6x, p99 at most 2x). Without --database-url a temporary SQLite file is used;
the goal is measured on a scratch PostgreSQL database.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
# Under gunicorn this module is imported from ROOT (`bench.cases_status_bench:...`).
sys.path.insert(0, str(ROOT))

from bench import wrk  # noqa: E402  (after the path above)


def bare_app():
    """The baseline: Flask, one SQLAlchemy engine as create_engine() makes it, the case row by primary
    key, the status JSON. No auth."""
    import sqlalchemy as sa
    from flask import Flask, Response

    from referral_api.cases.models import Case
    from referral_api.cases.views import status_document
    from referral_api.config import _db_url
    from referral_api.http import etag_of

    engine = sa.create_engine(_db_url("BENCH_DATABASE_URL", os.environ["BENCH_DATABASE_URL"]))
    app = Flask("bare")

    @app.get("/bare/<uuid:case_id>")
    def status(case_id):
        with engine.connect() as conn:
            row = conn.execute(sa.select(Case.__table__).where(Case.__table__.c.id == case_id)).one()
        doc = status_document(Case(**row._mapping))
        body = json.dumps(doc, default=str)
        return Response(body, mimetype="application/json", headers={"ETag": etag_of(doc)})

    return app


def full_app():
    from referral_api import create_app

    return create_app(
        {"database_url": os.environ["BENCH_DATABASE_URL"], "instance_path": os.environ["BENCH_INSTANCE_PATH"]}
    )


def _setup(url: str, instance: str) -> tuple[str, str, str]:
    """Migrate, and create MGEC, an embassy with a client, a case the embassy takes part in."""
    from referral_api import create_app, dbmigrate
    from referral_api.auth import services as auth_services
    from referral_api.cases.models import Case, CaseParticipant
    from referral_api.cases.stages import ParticipantRole
    from referral_api.db import database
    from referral_api.organisations.models import Organisation, OrganisationKind

    app = create_app({"database_url": url, "instance_path": instance})
    db = database(app)
    dbmigrate.upgrade(db)
    with app.app_context(), db.sessionmaker() as s:
        suffix = uuid.uuid4().hex[:6]
        mgec = s.query(Organisation).filter_by(kind=OrganisationKind.MGEC).one_or_none()
        if mgec is None:
            mgec = Organisation(name="MGEC", kind=OrganisationKind.MGEC, country="MN")
        embassy = Organisation(
            name=f"Embassy of Mongolia in Seoul {suffix}", kind=OrganisationKind.EMBASSY, country="KR"
        )
        s.add_all([mgec, embassy])
        s.flush()
        now = datetime.now(UTC)
        case = Case(
            id=uuid.uuid4(),
            reference=f"CASE-2099-{uuid.uuid4().int % 10**6:06d}",
            opened_at=now,
            opened_by_organisation_id=mgec.id,
            stage_since=now,
            last_occurred_at=now,
            referred_at=now,
            share_with=[],
        )
        s.add(case)
        s.flush()
        s.add(
            CaseParticipant(
                case_id=case.id, organisation_id=embassy.id, role=ParticipantRole.EMBASSY, added_at=now
            )
        )
        issued = auth_services.create_client(
            s, organisation=str(embassy.id), name=f"bench {suffix}", scopes=["cases:status"]
        )
        s.commit()
    db.engine.dispose()
    return str(case.id), issued.client.client_id, issued.client_secret


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    wrk.add_arguments(parser)
    args = parser.parse_args()
    rounds, seconds = wrk.bounded(args)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        case_id, client_id, secret = _setup(url, tmp)
        env = {**os.environ, "BENCH_DATABASE_URL": url, "BENCH_INSTANCE_PATH": tmp}
        with wrk.serve("bench.cases_status_bench:bare_app()", env) as bare, \
                wrk.serve("bench.cases_status_bench:full_app()", env) as full:
            token = requests.post(
                full + "/oauth/token", auth=(client_id, secret), timeout=60,
                data={"grant_type": "client_credentials", "scope": "cases:status"},
            ).json()["access_token"]
            targets = {
                "bare route": wrk.Target(bare + f"/bare/{case_id}"),
                "status view": wrk.Target(full + f"/api/v1/cases/{case_id}/status",
                                          headers={"Authorization": f"Bearer {token}"}),
            }
            answers = [requests.get(t.url, headers=t.headers, timeout=60).json() for t in targets.values()]
            assert answers[0] == answers[1], "the two routes must answer the same JSON"
            results = wrk.compare(targets, rounds=rounds, seconds=seconds)
        wrk.report(results, baseline="bare route", goal=0.6, p99_goal=2.0)
        print(f"database: {url.split(':', 1)[0]}")


if __name__ == "__main__":
    main()
