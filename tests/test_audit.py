"""The audit trail: record() chains events; verify finds changed, deleted, inserted and swapped events;
PostgreSQL refuses UPDATE, DELETE and TRUNCATE; concurrent writers yield one linear chain."""

from __future__ import annotations

import json
import threading
import uuid
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import sessionmaker

from referral_api import audit, dbmigrate
from referral_api.audit import AuditAction, Outcome
from referral_api.audit.models import GENESIS_HASH, AuditEvent
from referral_api.audit.schemas import AuditEventSchema
from referral_api.db import Database, make_engine
from tests.conftest import throwaway_database

events = AuditEvent.__table__


def _write(session, n: int = 5) -> list[AuditEvent]:
    org = uuid.uuid4()
    out = []
    for i in range(n):
        actor = SimpleNamespace(organisation_id=org, client_id=f"client-{i % 2}", user_id=None)
        out.append(audit.record(session, actor=actor, action=AuditAction.REFERRAL_READ,
                                resource_type="referral", resource_id=uuid.uuid4(), details={"i": i}))
    session.commit()
    return out


def _bypass_triggers(session) -> None:
    """Tampering as an attacker with superuser rights would: past the append-only triggers."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SET LOCAL session_replication_role = replica"))


def test_record_chains_events_in_the_callers_transaction(session):
    written = _write(session, 3)
    assert [e.seq for e in written] == [1, 2, 3]
    assert written[0].prev_hash == GENESIS_HASH
    assert [e.prev_hash for e in written[1:]] == [e.hash for e in written[:2]]
    result = audit.verify(session)
    assert (result.ok, result.checked, result.head_seq, result.head_hash) == (True, 3, 3, written[-1].hash)
    dumped = AuditEventSchema().dump(written[0])
    assert dumped["action"] == "referrals:referral:read" and dumped["outcome"] == "success"


def test_record_does_not_commit(session):
    audit.record(session, actor=None, action="privacy:key:rotate", resource_type="master_key")
    session.rollback()
    assert session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 0


def test_actor_request_id_and_unknown_action(app, session):
    with app.test_request_context("/"):
        from flask import g

        g.request_id = "req-42"
        e = audit.record(session, actor=SimpleNamespace(user_id=7), action=AuditAction.AUTH_LOGIN_FAIL,
                         resource_type="user", outcome=Outcome.DENIED)
    assert (e.request_id, e.user_id, e.organisation_id, e.client_id) == ("req-42", "7", None, None)
    system = audit.record(session, actor=None, action="privacy:record:erase", resource_type="referral")
    assert (system.organisation_id, system.client_id, system.user_id, system.request_id) == (None,) * 4
    with pytest.raises(ValueError):
        audit.record(session, actor=None, action="referrals:referral:frobnicate", resource_type="referral")


def _changed(session):
    session.execute(sa.update(events).where(events.c.seq == 3).values(outcome="denied"))
    return 3


def _changed_details(session):
    session.execute(sa.update(events).where(events.c.seq == 2).values(details={"i": 99}))
    return 2


def _deleted(session):
    session.execute(sa.delete(events).where(events.c.seq == 3))
    return 4


def _deleted_last(session):
    # Removing the head cannot be seen from the chain alone: see the checkpoint test. Removing any
    # event but the last can.
    session.execute(sa.delete(events).where(events.c.seq == 4))
    return 5


def _inserted(session):
    # Make room at seq 3 (one row at a time: seq is unique), then insert a well-formed event there.
    for seq in (5, 4, 3):
        session.execute(sa.update(events).where(events.c.seq == seq).values(seq=seq + 1))
    prev = session.execute(sa.select(events.c.hash).where(events.c.seq == 2)).scalar_one()
    fake = AuditEvent(id=uuid.uuid4(), seq=3, occurred_at=session.execute(
        sa.select(events.c.occurred_at).where(events.c.seq == 2)).scalar_one(), action="auth:token:issue",
        resource_type="token", outcome=Outcome.SUCCESS, prev_hash=prev)
    fake.hash = fake.compute_hash()
    session.execute(sa.insert(events).values(
        {c.name: getattr(fake, c.name) for c in events.columns}))
    return 4


def _appended(session):
    session.execute(sa.insert(events).values(
        id=uuid.uuid4(), seq=6, occurred_at=sa.func.current_timestamp(), action="auth:token:issue",
        resource_type="token", outcome="success", prev_hash="f" * 64, hash="e" * 64))
    return 6


def _swapped(session):
    session.execute(sa.update(events).where(events.c.seq == 2).values(seq=1000))
    session.execute(sa.update(events).where(events.c.seq == 3).values(seq=2))
    session.execute(sa.update(events).where(events.c.seq == 1000).values(seq=3))
    return 2


@pytest.mark.parametrize("tamper", [_changed, _changed_details, _deleted, _deleted_last, _inserted,
                                    _appended, _swapped])
def test_verify_names_the_first_bad_event(session, run_cli, tamper):
    _write(session, 5)
    assert audit.verify(session).ok
    _bypass_triggers(session)
    expected = tamper(session)
    session.commit()
    result = audit.verify(session)
    assert not result.ok and result.first_bad_seq == expected, result
    cli = run_cli("audit", "verify", "--json")
    assert cli.exit_code == 1
    assert json.loads(cli.output)["first_bad_seq"] == expected
    assert f"BROKEN at event {expected}" in run_cli("audit", "verify").output


def test_verify_of_an_intact_log_exits_zero(session, run_cli):
    _write(session, 4)
    result = run_cli("audit", "verify", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["ok"] is True


@pytest.mark.postgres_only
@pytest.mark.parametrize("statement", ["UPDATE audit_events SET outcome = 'denied'",
                                       "DELETE FROM audit_events", "TRUNCATE audit_events"])
def test_postgresql_refuses_to_change_audit_rows(backend, session, statement):
    _write(session, 2)
    with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
        session.execute(sa.text(statement))
    assert audit.verify(session).checked == 2


def test_checkpoint_proves_the_log_still_extends_it(session, run_cli, tmp_path):
    _write(session, 3)
    result = run_cli("audit", "checkpoint", "--output", tmp_path / "cp.json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["statement"]["seq"] == 3
    signed = session.execute(sa.select(events.c.hash).where(events.c.seq == 3)).scalar_one()
    assert doc["statement"]["head_hash"] == signed
    # The checkpoint is itself noted in the chain, right after the head it signs.
    noted = session.execute(sa.select(events).where(events.c.seq == 4)).mappings().one()
    assert noted["action"] == "audit:checkpoint:create"
    assert noted["details"] == {"seq": 3, "head_hash": signed, "created_at": doc["statement"]["created_at"],
                                "public_key": doc["statement"]["public_key"], "signature": doc["signature"]}
    _write(session, 2)
    ok = run_cli("audit", "verify", "--checkpoint", tmp_path / "cp.json", "--json")
    assert ok.exit_code == 0 and json.loads(ok.output)["checkpoint_seq"] == 3

    forged = json.loads((tmp_path / "cp.json").read_text())
    forged["statement"]["seq"] = 2
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    refused = run_cli("audit", "verify", "--checkpoint", tmp_path / "forged.json")
    assert refused.exit_code == 1 and "signature" in refused.output

    forged["statement"]["seq"] = float("inf")  # JSON's 1e999: no integer, no traceback
    (tmp_path / "forged.json").write_text(json.dumps(forged).replace("Infinity", "1e999"))
    refused = run_cli("audit", "verify", "--checkpoint", tmp_path / "forged.json")
    assert refused.exception is None or isinstance(refused.exception, SystemExit), refused.exception
    assert "not an audit checkpoint" in refused.output


def _rewrite_chain_from(session, seq: int) -> None:
    """An attacker who knows the algorithm: change an event and recompute every hash after it."""
    query = sa.select(events).where(events.c.seq >= seq).order_by(events.c.seq)
    rows = list(session.execute(query).mappings())
    prev = session.execute(sa.select(events.c.hash).where(events.c.seq == seq - 1)).scalar_one()
    for i, row in enumerate(rows):
        event = AuditEvent(**{**row, "prev_hash": prev, "outcome": "denied" if i == 0 else row["outcome"]})
        event.hash = event.compute_hash()
        session.execute(sa.update(events).where(events.c.seq == row["seq"]).values(
            outcome=event.outcome, prev_hash=event.prev_hash, hash=event.hash))
        prev = event.hash


def test_a_rewritten_chain_passes_alone_but_not_against_a_checkpoint(session, run_cli, tmp_path):
    _write(session, 5)
    (tmp_path / "cp.json").write_text(run_cli("audit", "checkpoint").output)
    _bypass_triggers(session)
    _rewrite_chain_from(session, 2)
    session.commit()
    assert audit.verify(session).ok  # the chain alone is consistent again...
    result = run_cli("audit", "verify", "--checkpoint", tmp_path / "cp.json", "--json")
    # ...but it no longer holds the checkpoint's head.
    assert result.exit_code == 1 and json.loads(result.output)["first_bad_seq"] == 5


def test_a_truncated_log_fails_against_its_checkpoint(session, run_cli, tmp_path):
    _write(session, 4)
    (tmp_path / "cp.json").write_text(run_cli("audit", "checkpoint").output)
    _bypass_triggers(session)
    session.execute(sa.delete(events).where(events.c.seq >= 3))
    session.commit()
    assert audit.verify(session).ok
    result = run_cli("audit", "verify", "--checkpoint", tmp_path / "cp.json")
    assert result.exit_code == 1 and "before the checkpoint" in result.output


def test_list_events_filters_and_pages(session):
    written = _write(session, 5)
    org = written[0].organisation_id
    audit.record(session, actor=None, action=AuditAction.ORGANISATION_SUSPEND, resource_type="organisation",
                 resource_id=org)
    session.commit()
    items, cursor = audit.list_events(session, organisation_id=org, limit=2)
    assert [e.seq for e in items] == [5, 4] and cursor
    items, cursor = audit.list_events(session, organisation_id=org, limit=2, cursor=cursor)
    assert [e.seq for e in items] == [3, 2]
    items, cursor = audit.list_events(session, organisation_id=org, limit=2, cursor=cursor)
    assert [e.seq for e in items] == [1] and cursor is None
    by_resource, _ = audit.list_events(session, resource_type="organisation", resource_id=str(org), limit=10)
    assert [e.seq for e in by_resource] == [6]
    assert [e.seq for e in audit.list_events(session, actor_id="client-1", limit=10)[0]] == [4, 2]
    assert audit.list_events(session, action="organisations:organisation:suspend", limit=10)[0][0].seq == 6
    assert audit.list_events(session, since=written[2].occurred_at, until=written[4].occurred_at,
                             limit=10)[0] == [written[3], written[2]]


def test_organisation_commands_are_audited(session, run_cli):
    created = json.loads(run_cli("orgs", "create", "--name", "IOM Mongolia", "--kind", "iom",
                                 "--country", "MN", "--json").output)
    assert run_cli("orgs", "suspend", created["id"]).exit_code == 0
    assert run_cli("orgs", "activate", created["id"]).exit_code == 0
    failed = run_cli("orgs", "create", "--name", "IOM Mongolia", "--kind", "iom", "--country", "MN")
    assert failed.exit_code == 1
    rows = session.execute(sa.select(events.c.action, events.c.resource_id, events.c.organisation_id,
                                     events.c.user_id).order_by(events.c.seq)).all()
    assert [r.action for r in rows] == [
        "organisations:organisation:create",
        "organisations:organisation:suspend",
        "organisations:organisation:activate",
    ]
    assert {r.resource_id for r in rows} == {created["id"]}
    assert {(r.organisation_id, r.user_id) for r in rows} == {(None, None)}
    assert audit.verify(session).ok


def _hammer(url: str, threads: int, per_thread: int) -> None:
    engine = make_engine(url, pool_size=threads, max_overflow=0) if url.startswith("postgresql") \
        else make_engine(url)
    sessions = sessionmaker(bind=engine)
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def work(n: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                with sessions() as s:
                    audit.record(s, actor=SimpleNamespace(client_id=f"t{n}"),
                                 action=AuditAction.AUTH_TOKEN_ISSUE, resource_type="token",
                                 details={"thread": n, "i": i})
                    s.commit()
        except BaseException as exc:  # noqa: BLE001  (reported by the main thread)
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    engine.dispose()
    assert not errors, errors


@pytest.mark.postgres_only
def test_concurrent_writers_yield_one_linear_chain(backend, tmp_path):
    with throwaway_database(backend, tmp_path) as url:
        db = Database(url)
        try:
            dbmigrate.upgrade(db)
            _hammer(url, threads=8, per_thread=25)
            with db.sessionmaker() as s:
                result = audit.verify(s)
                seqs = s.scalars(sa.select(AuditEvent.seq).order_by(AuditEvent.seq)).all()
                per_thread = s.execute(sa.select(AuditEvent.client_id, sa.func.count())
                                       .group_by(AuditEvent.client_id)).all()
            assert result.ok and result.checked == 200, result
            assert seqs == list(range(1, 201))
            assert sorted(n for _, n in per_thread) == [25] * 8
        finally:
            db.engine.dispose()


def test_concurrent_writers_on_sqlite_serialise_on_the_write_lock(backend, tmp_path):
    if backend != "sqlite":
        pytest.skip("the PostgreSQL variant is test_concurrent_writers_yield_one_linear_chain")
    with throwaway_database(backend, tmp_path) as url:
        db = Database(url)
        try:
            dbmigrate.upgrade(db)
            _hammer(url, threads=4, per_thread=10)
            with db.sessionmaker() as s:
                result = audit.verify(s)
            assert result.ok and result.checked == 40, result
        finally:
            db.engine.dispose()


def test_details_are_hashed_as_stored(session):
    when = uuid.uuid4()
    audit.record(session, actor=None, action=AuditAction.PRIVACY_RECORD_ERASE, resource_type="referral",
                 details={"data_key_id": when, "fields": ("family_name", "given_name")})
    session.commit()
    session.expunge_all()
    stored = session.scalar(sa.select(AuditEvent))
    assert stored.details == {"data_key_id": str(when), "fields": ["family_name", "given_name"]}
    assert audit.verify(session).ok


def test_checkpoint_signs_the_head_it_verified_not_one_sealed_after(session, run_cli, monkeypatch):
    """An event a concurrent commit seals between the walk and the signature is not signed unchecked."""
    from referral_api.audit import cli as audit_cli
    from referral_api.db import utcnow

    for n in range(3):
        audit.record(session, actor=None, action=AuditAction.REFERRAL_READ, resource_type="referral",
                     details={"n": n})
    session.commit()
    real = audit_cli.make_checkpoint

    def a_commit_then_sign(s, key, **kwargs):
        seq, prev = audit.services.head(s)  # sealed after the walk, and not intact
        s.execute(AuditEvent.__table__.insert().values(
            id=uuid.uuid4(), occurred_at=utcnow(), action="referral:referral:read", resource_type="referral",
            outcome="success", seq=seq + 1, prev_hash=prev, hash="f" * 64))
        return real(s, key, **kwargs)

    monkeypatch.setattr(audit_cli, "make_checkpoint", a_commit_then_sign)
    signed = run_cli("audit", "checkpoint")
    assert signed.exit_code == 0, signed.output
    assert json.loads(signed.output)["statement"]["seq"] == 3  # what verify walked, not the broken 4
