"""The case status view under load, as a ratio to a bare Flask route reading the same row.

    .venv/bin/python bench/cases_status_bench.py [--requests 3000] [--concurrency 8] [--rounds 3]
                                                 [--database-url ...]

Both targets run the same way: gunicorn, 2 sync workers each, on 127.0.0.1, against the same
database; both servers are up, and only one is loaded at a time. The status view is the real one
(`GET /api/v1/cases/{id}/status` with an embassy's bearer token: token check, case and participant
in one query, dump, access log line). The bare route reads the same
case row by primary key and returns the same JSON without auth. The load generator sends a fixed
number of requests from --concurrency threads (one requests.Session each) and prints, for each target,
throughput, p50 and p99 latency of each of --rounds alternating rounds and of the best round, then
the ratio of the best throughputs (goal: at least 0.5).
The default database is a temporary SQLite file; --database-url takes a scratch PostgreSQL database.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess  # nosec B404 - starts gunicorn, a fixed argument list
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
# Under gunicorn this module is imported from ROOT (`bench.cases_status_bench:...`).
sys.path.insert(0, str(ROOT))


def bare_app():
    """The baseline: Flask, one engine, the case row by primary key, the status JSON. No auth."""
    import sqlalchemy as sa
    from flask import Flask, Response

    from referral_api.cases.models import Case
    from referral_api.cases.views import status_document
    from referral_api.db import make_engine
    from referral_api.http import etag_of

    engine = make_engine(os.environ["BENCH_DATABASE_URL"])
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(target: str, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen(  # nosec B603 - fixed argument list, no shell
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "-w",
            "2",
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            f"bench.cases_status_bench:{target}()",
        ],
        cwd=ROOT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, base
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"gunicorn ({target}) did not start")


def _load(url: str, headers: dict[str, str], total: int, concurrency: int) -> tuple[float, list[float]]:
    """Send `total` GETs from `concurrency` threads; the wall time and every latency (seconds)."""
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(total))

    def worker():
        session, mine = requests.Session(), []
        while True:
            with lock:
                if next(counter, None) is None:
                    break
            started = time.perf_counter()
            response = session.get(url, headers=headers, timeout=30)
            mine.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise SystemExit(f"{url}: {response.status_code} {response.text[:200]}")
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, latencies


def _measure(url: str, headers: dict[str, str], total: int, concurrency: int) -> tuple[float, float, float]:
    """Throughput (requests per second), p50 and p99 latency (ms) of one round."""
    wall, latencies = _load(url, headers, total, concurrency)
    q = statistics.quantiles(latencies, n=100)
    return len(latencies) / wall, q[49] * 1000, q[98] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests", type=int, default=3000, help="requests per target and round (100-100000)"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="client threads (1-64)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; each target's best counts")
    parser.add_argument("--database-url", default="", help="default: a temporary SQLite file")
    args = parser.parse_args()
    total = max(100, min(args.requests, 100_000))
    concurrency = max(1, min(args.concurrency, 64))
    rounds = max(1, min(args.rounds, 10))
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        case_id, client_id, secret = _setup(url, tmp)
        env = {**os.environ, "BENCH_DATABASE_URL": url, "BENCH_INSTANCE_PATH": tmp}
        servers = {target: _serve(target, env) for target in ("bare_app", "full_app")}
        try:
            token = requests.post(
                servers["full_app"][1] + "/oauth/token",
                auth=(client_id, secret),
                timeout=60,
                data={"grant_type": "client_credentials", "scope": "cases:status"},
            ).json()["access_token"]
            targets = {
                "bare route": (servers["bare_app"][1] + f"/bare/{case_id}", {}),
                "status view": (
                    servers["full_app"][1] + f"/api/v1/cases/{case_id}/status",
                    {"Authorization": f"Bearer {token}"},
                ),
            }
            answers = [requests.get(u, headers=h, timeout=60).json() for u, h in targets.values()]
            assert answers[0] == answers[1], "the two routes must answer the same JSON"
            for u, h in targets.values():
                _load(u, h, min(total, 300), concurrency)  # warm up
            # Alternating rounds, the best of each target: background load on the machine drifts.
            best: dict[str, tuple[float, float, float]] = {}
            for n in range(1, rounds + 1):
                for label, (u, h) in targets.items():
                    rate, p50, p99 = _measure(u, h, total, concurrency)
                    print(f"round {n}  {label:<12} {rate:7.0f} req/s   p50 {p50:7.2f} ms   p99 {p99:7.2f} ms")
                    if label not in best or rate > best[label][0]:
                        best[label] = (rate, p50, p99)
        finally:
            for proc, _base in servers.values():
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        for label, (rate, p50, p99) in best.items():
            print(f"best    {label:<12} {rate:7.0f} req/s   p50 {p50:7.2f} ms   p99 {p99:7.2f} ms")
        ratio = best["status view"][0] / best["bare route"][0]
        print(
            f"{total} requests a round, {rounds} rounds, {concurrency} client threads, gunicorn -w 2, "
            f"{url.split(':', 1)[0]}; throughput ratio status/bare {ratio:.2f} (goal >= 0.5)"
        )


if __name__ == "__main__":
    main()
