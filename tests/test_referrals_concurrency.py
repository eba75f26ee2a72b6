"""On PostgreSQL, concurrent requests against a real server: one case per referral, one referral per key."""

from __future__ import annotations

import threading

import pytest
import requests
import sqlalchemy as sa

from referral_api.cases.models import Case
from referral_api.db import database
from referral_api.referrals.models import Referral
from tests import world as world_module
from tests.referral_data import referral_body

pytestmark = pytest.mark.postgres_only
N = 20


def _race(fn, n: int = N) -> list[requests.Response]:
    barrier = threading.Barrier(n)
    results: list[requests.Response] = []
    lock = threading.Lock()

    def run():
        barrier.wait()
        response = fn()
        with lock:
            results.append(response)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _world(app):
    session = database(app).sessionmaker()
    return world_module.build(app.test_client(), session), session


def _count(app, model):
    with database(app).engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).select_from(model))


def test_concurrent_accepts_open_exactly_one_case(backend, live_server):
    base, app = live_server
    world, session = _world(app)
    police, coordinator = world.headers("police"), world.headers("coordinator")
    rid = requests.post(f"{base}/api/v1/referrals", json=referral_body(), headers=police, timeout=30).json()[
        "id"
    ]
    results = _race(
        lambda: requests.post(
            f"{base}/api/v1/referrals/{rid}/accept", json={}, headers=coordinator, timeout=60
        )
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(200) == 1 and set(statuses) == {200, 409}, statuses
    assert _count(app, Case) == 1
    session.close()


def test_concurrent_submissions_with_one_key_store_one_referral(backend, live_server):
    base, app = live_server
    world, session = _world(app)
    headers = world.headers("police", **{"Idempotency-Key": "macau-0412"})
    results = _race(
        lambda: requests.post(f"{base}/api/v1/referrals", json=referral_body(), headers=headers, timeout=60)
    )
    ok = [r for r in results if r.status_code == 201]
    assert ok and {r.status_code for r in results} <= {201, 409}
    assert len({r.json()["id"] for r in ok}) == 1
    assert _count(app, Referral) == 1
    session.close()


def test_concurrent_submissions_with_one_external_reference_give_one_201_and_409s(backend, live_server):
    base, app = live_server
    world, session = _world(app)
    police = world.headers("police")
    url = f"{base}/api/v1/referrals"
    results = _race(lambda: requests.post(url, json=referral_body(), headers=police, timeout=60), n=8)
    statuses = sorted(r.status_code for r in results)
    assert statuses == [201] + [409] * 7, statuses
    assert all("external_reference" in r.json()["errors"] for r in results if r.status_code == 409)
    assert _count(app, Referral) == 1
    session.close()
