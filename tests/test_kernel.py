"""Kernel pieces later parts build on: the outbox, human references, Idempotency-Key."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import pytest
import requests
import sqlalchemy as sa
from werkzeug.serving import make_server

from referral_api import create_app, dbmigrate
from referral_api.access import Actor, OrganisationRef
from referral_api.db import commit, database, get_session
from referral_api.events import EventType, OutboxEvent, publish
from referral_api.http import with_etag
from referral_api.idempotency import IdempotencyKey, idempotent
from referral_api.references import next_reference
from tests.conftest import throwaway_database


def test_publish_is_thin_and_in_the_callers_transaction(session):
    rid = uuid.uuid4()
    event = publish(session, EventType.REFERRAL_SUBMITTED, resource_type="referral", resource_id=rid,
                    data={"reference": "REF-2026-000001", "status": "submitted",
                          "occurred_at": datetime(2026, 3, 1, tzinfo=UTC)})
    session.flush()
    assert event.body()["data"] == {"id": str(rid), "reference": "REF-2026-000001", "status": "submitted",
                                    "occurred_at": "2026-03-01T00:00:00Z"}
    session.rollback()
    assert session.scalar(sa.select(sa.func.count()).select_from(OutboxEvent)) == 0


@pytest.mark.parametrize("data", [{"family_name": "Bat"}, {"narrative": "..."}, {"status": {"nested": 1}}])
def test_publish_refuses_anything_but_thin_fields(session, data):
    with pytest.raises(ValueError):
        publish(session, EventType.REFERRAL_SUBMITTED, resource_type="referral", resource_id=uuid.uuid4(),
                data=data)


def test_outbox_order_is_insertion_order(session):
    ids = [uuid.uuid4() for _ in range(5)]
    for rid in ids:
        publish(session, EventType.CASE_STAGE_CHANGED, resource_type="case", resource_id=rid, data={})
    session.flush()
    stored = session.scalars(sa.select(OutboxEvent.resource_id).order_by(OutboxEvent.seq)).all()
    assert stored == ids


def _number(reference: str) -> int:
    return int(reference.rsplit("-", 1)[1])


def test_references_count_per_prefix_and_year(backend, session):
    now = datetime(2026, 5, 1, tzinfo=UTC)
    first, second = next_reference(session, "REF", now=now), next_reference(session, "REF", now=now)
    case = next_reference(session, "CASE", now=now)
    next_year = next_reference(session, "REF", now=datetime(2027, 1, 1, tzinfo=UTC))
    assert first.startswith("REF-2026-") and case.startswith("CASE-2026-")
    assert next_year.startswith("REF-2027-")
    assert _number(second) == _number(first) + 1
    if backend == "sqlite":  # one counter per prefix and year
        assert (first, second, case, next_year) == ("REF-2026-000001", "REF-2026-000002", "CASE-2026-000001",
                                                    "REF-2027-000001")
    else:  # one sequence per prefix: the year does not restart it, no number comes twice
        assert _number(next_year) == _number(second) + 1


@pytest.mark.postgres_only
def test_the_sequences_start_after_the_counters_and_hand_back_on_downgrade(backend, tmp_path):
    with throwaway_database(backend, tmp_path) as url:
        app = create_app({"database_url": url, "instance_path": str(tmp_path)})
        db = database(app)
        dbmigrate.upgrade(db, "0970")
        counters = [("REF", 2025, 97), ("REF", 2026, 41), ("CASE", 2026, 5)]
        with db.engine.begin() as conn:
            for prefix, year, last in counters:
                conn.execute(sa.text("INSERT INTO reference_counters VALUES (:p, :y, :n)"),
                             {"p": prefix, "y": year, "n": last})
        dbmigrate.upgrade(db)
        with db.sessionmaker() as s:
            now = datetime(2026, 5, 1, tzinfo=UTC)
            assert next_reference(s, "REF", now=now) == "REF-2026-000098"
            assert next_reference(s, "CASE", now=now) == "CASE-2026-000006"
            s.commit()
        dbmigrate.downgrade(db, "0970")
        with db.engine.connect() as conn:  # the counters carry on after what the sequences gave
            query = sa.text("SELECT prefix, last FROM reference_counters WHERE year = :y")
            counted = dict(conn.execute(query, {"y": datetime.now(UTC).year}).all())
        assert counted == {"REF": 98, "CASE": 6}
        db.engine.dispose()


@pytest.mark.postgres_only
def test_concurrent_references_are_unique(backend, tmp_path):
    with throwaway_database(backend, tmp_path) as url:
        app = create_app({"database_url": url, "instance_path": str(tmp_path)})
        db = database(app)
        dbmigrate.upgrade(db)
        got: list[str] = []
        barrier = threading.Barrier(20)

        def take():
            with db.sessionmaker() as s:
                barrier.wait()
                ref = next_reference(s, "REF")
                s.commit()
                got.append(ref)

        threads = [threading.Thread(target=take) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        db.engine.dispose()
        assert len(got) == 20 and len(set(got)) == 20


THING_MAKER = Actor(organisation=OrganisationRef(id=uuid.UUID(int=7), kind="police"), client_id="client-a",
                    user_id=None, role=None, scopes=frozenset())


def _things_app(url, tmp_path):
    """An app with one idempotent creating route, standing in for the parts that come later."""
    app = create_app({"database_url": url, "instance_path": str(tmp_path)})

    @app.route("/api/v1/_things", methods=["POST"])
    def create_thing():
        session = get_session()

        def handler():
            rid = uuid.uuid4()
            publish(session, EventType.WEBHOOK_PING, resource_type="thing", resource_id=rid, data={})
            commit(session)
            location = {"Location": f"/api/v1/_things/{rid}"}
            return rid, with_etag({"id": str(rid)}, status=201, headers=location)

        def replay(rid):
            event = session.scalar(sa.select(OutboxEvent).where(OutboxEvent.resource_id == uuid.UUID(rid)))
            return with_etag({"id": str(event.resource_id)})

        return idempotent(session, actor=THING_MAKER, handler=handler, replay=replay)

    return app


def _count(db, model):
    with db.engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).select_from(model))


def test_idempotency_key_replays_the_first_answer(backend, tmp_path):
    with throwaway_database(backend, tmp_path) as url:
        app = _things_app(url, tmp_path)
        db = database(app)
        dbmigrate.upgrade(db)
        client = app.test_client()
        headers = {"Idempotency-Key": "k-1"}
        first = client.post("/api/v1/_things", json={"a": 1}, headers=headers)
        again = client.post("/api/v1/_things", json={"a": 1}, headers=headers)
        assert first.status_code == again.status_code == 201
        assert first.get_json() == again.get_json()
        assert again.headers["Location"] == first.headers["Location"]
        assert again.headers["Idempotent-Replayed"] == "true"
        assert _count(db, OutboxEvent) == 1

        other = client.post("/api/v1/_things", json={"a": 2}, headers=headers)
        assert other.status_code == 422 and "Idempotency-Key" in other.get_json()["errors"]
        assert _count(db, OutboxEvent) == 1

        bad = client.post("/api/v1/_things", json={"a": 1}, headers={"Idempotency-Key": "bad key é"})
        assert bad.status_code == 422
        client.post("/api/v1/_things", json={"a": 1})
        client.post("/api/v1/_things", json={"a": 1})
        assert _count(db, OutboxEvent) == 3  # without a key every POST creates
        db.engine.dispose()


@pytest.mark.postgres_only
def test_concurrent_requests_with_one_key_create_once(backend, tmp_path):
    with throwaway_database(backend, tmp_path) as url:
        app = _things_app(url, tmp_path)
        db = database(app)
        dbmigrate.upgrade(db)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_port}"
        statuses: list[int] = []
        barrier = threading.Barrier(20)

        def post():
            barrier.wait()
            r = requests.post(base + "/api/v1/_things", json={"a": 1}, headers={"Idempotency-Key": "same"},
                              timeout=30)
            statuses.append(r.status_code)

        threads = [threading.Thread(target=post) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        server.shutdown()
        assert _count(db, OutboxEvent) == 1
        assert _count(db, IdempotencyKey) == 1
        assert set(statuses) <= {201, 409} and 201 in statuses
        db.engine.dispose()
