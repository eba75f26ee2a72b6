"""Fan-out by visibility, order per subscription, back-off, Retry-After, 410, final failure, claims.

A fake clock and a fake sender: nothing sleeps and nothing goes on the network.
"""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from referral_api.audit.models import AuditEvent
from referral_api.errors import Conflict, NotFound
from referral_api.events import EventType
from referral_api.webhooks import delivery, fanout, schedule, services, transport, visibility
from referral_api.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookSubscription
from referral_api.webhooks.worker import Worker
from tests.webhook_helpers import T0, TEST_RESOURCE, Actor, Clock, FakeSender, align_cursor, publish

URL = "https://hooks.partner.example/in"


@pytest.fixture
def ctx(app, session):
    with app.app_context():
        align_cursor(session)
        yield session
    visibility.unregister(TEST_RESOURCE)


@pytest.fixture
def orgs(factories):
    return factories.OrganisationFactory(mgec=True), factories.OrganisationFactory(embassy=True), \
        factories.OrganisationFactory()


def _subscribe(session, org, events=None):
    sub, _secret = services.create(session, actor=Actor(org.id), url=URL, events=events or [],
                                  allow_http_loopback=True)
    return sub


@pytest.fixture(autouse=True)
def _public_dns(monkeypatch):
    """hooks.partner.example resolves to a public address (creation checks the URL)."""
    import socket

    def getaddrinfo(host, port, *args, **kwargs):
        assert host == "hooks.partner.example"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _deliveries(session, sub) -> list[WebhookDelivery]:
    return list(session.scalars(sa.select(WebhookDelivery).where(WebhookDelivery.subscription_id == sub.id)
                                .order_by(WebhookDelivery.event_seq)
                                .execution_options(populate_existing=True)))


def test_fan_out_follows_the_visibility_rule(ctx, orgs):
    mgec, embassy, other = orgs
    subs = {o: _subscribe(ctx, o) for o in orgs}
    record_id = uuid.uuid4()
    visibility.register(TEST_RESOURCE,
                        lambda session, rid: {mgec.id, embassy.id} if rid == record_id else set())
    seen = publish(ctx, resource_id=record_id)
    unseen = publish(ctx)  # a record nobody is registered to see
    unregistered = publish(ctx, resource_type="no_rule_for_this", resource_id=record_id)
    assert fanout.fan_out(ctx, now=T0) == 3
    assert [d.event_seq for d in _deliveries(ctx, subs[mgec])] == [seen.seq]
    assert [d.event_seq for d in _deliveries(ctx, subs[embassy])] == [seen.seq]
    assert _deliveries(ctx, subs[other]) == []
    assert unseen.seq and unregistered.seq
    assert fanout.fan_out(ctx, now=T0) == 0  # the cursor moved on: nothing twice


def test_a_new_subscription_gets_only_events_published_after_it(ctx, orgs):
    """Publish, then subscribe, then fan out: the older event is not sent to it; a later one is."""
    mgec, _embassy, _other = orgs
    record_id = uuid.uuid4()
    visibility.register(TEST_RESOURCE, lambda session, rid: {mgec.id})
    old = publish(ctx, resource_id=record_id)
    sub = _subscribe(ctx, mgec)
    assert fanout.fan_out(ctx, now=T0) == 1  # the old event is passed, to nobody
    assert _deliveries(ctx, sub) == []
    later = publish(ctx, resource_id=record_id)
    assert fanout.fan_out(ctx, now=T0) == 1
    assert [d.event_seq for d in _deliveries(ctx, sub)] == [later.seq]
    assert old.seq < later.seq


def test_unregistered_resource_types_reach_nobody(ctx, orgs):
    subs = [_subscribe(ctx, o) for o in orgs]
    publish(ctx, resource_type="no_rule_registered")  # no rule for this type
    assert fanout.fan_out(ctx, now=T0) == 1
    assert all(_deliveries(ctx, s) == [] for s in subs)


def test_event_filter_inactive_subscriptions_and_ping(ctx, orgs):
    mgec, embassy, _ = orgs
    visibility.register(TEST_RESOURCE, lambda session, rid: {mgec.id, embassy.id})
    closed_only = _subscribe(ctx, mgec, events=["case.closed"])
    everything = _subscribe(ctx, mgec)
    paused = _subscribe(ctx, embassy)
    services.update(ctx, actor=Actor(embassy.id), subscription_id=paused.id, changes={"active": False},
                    allow_http_loopback=True)
    stage = publish(ctx)
    closed = publish(ctx, EventType.CASE_CLOSED)
    services.ping(ctx, actor=Actor(mgec.id), subscription_id=closed_only.id)
    fanout.fan_out(ctx, now=T0)
    assert [d.event.type for d in _deliveries(ctx, closed_only)] == [EventType.CASE_CLOSED,
                                                                     EventType.WEBHOOK_PING]
    assert [d.event_seq for d in _deliveries(ctx, everything)] == [stage.seq, closed.seq]
    assert _deliveries(ctx, paused) == []
    with pytest.raises(Conflict):
        services.ping(ctx, actor=Actor(embassy.id), subscription_id=paused.id)


def test_another_organisations_subscription_and_delivery_are_not_found(ctx, orgs):
    mgec, embassy, _ = orgs
    sub = _subscribe(ctx, mgec)
    services.ping(ctx, actor=Actor(mgec.id), subscription_id=sub.id)
    fanout.fan_out(ctx, now=T0)
    (d,) = _deliveries(ctx, sub)
    for call in (lambda: services.get(ctx, actor=Actor(embassy.id), subscription_id=sub.id),
                 lambda: services.ping(ctx, actor=Actor(embassy.id), subscription_id=sub.id),
                 lambda: services.redeliver(ctx, actor=Actor(embassy.id), delivery_id=d.id),
                 lambda: services.delete(ctx, actor=Actor(embassy.id), subscription_id=sub.id)):
        with pytest.raises(NotFound):
            call()


def _worker(session, clock, sender, *, worker_id="w1", claim_seconds=60):
    from referral_api.db import database

    return Worker(database().sessionmaker, worker_id=worker_id, claim_seconds=claim_seconds,
                  allow_http_loopback=False, clock=clock, send=sender, rng=random.Random(7))


def test_order_per_subscription_a_later_event_waits_for_an_earlier_retry(ctx, orgs):
    mgec, _, _ = orgs
    visibility.register(TEST_RESOURCE, lambda session, rid: {mgec.id})
    sub = _subscribe(ctx, mgec)
    first, second = publish(ctx, stage="first"), publish(ctx, stage="second")
    clock = Clock()
    sender = FakeSender([transport.Outcome(500, 3, error="HTTP 500"), transport.Outcome(200, 3)])
    worker = _worker(ctx, clock, sender)
    assert worker.step() == 1  # the first fails; the second may not overtake it
    d1, d2 = _deliveries(ctx, sub)
    assert (d1.status, d1.attempt_count, d2.attempt_count) == (DeliveryStatus.PENDING, 1, 0)
    clock.advance(seconds=4)
    assert worker.step() == 0  # the first is not due yet, and the second waits for it
    clock.advance(seconds=10)
    assert worker.step() == 2
    ids = [s["headers"]["webhook-id"] for s in sender.sent]
    assert ids == [str(first.id), str(first.id), str(second.id)]
    assert [d.status for d in _deliveries(ctx, sub)] == [DeliveryStatus.SUCCEEDED] * 2


def test_back_off_spans_more_than_a_day_then_fails_and_flags(ctx, orgs):
    mgec, _, _ = orgs
    visibility.register(TEST_RESOURCE, lambda session, rid: {mgec.id})
    sub = _subscribe(ctx, mgec)
    publish(ctx)
    clock = Clock()
    sender = FakeSender([transport.Outcome(None, 3000, error="ConnectTimeoutError: timed out")])
    worker = _worker(ctx, clock, sender)
    waits = []
    while True:
        assert worker.step() == 1
        (d,) = _deliveries(ctx, sub)
        ctx.refresh(d)
        if d.status is not DeliveryStatus.PENDING:
            break
        waits.append(d.next_attempt_at - clock.now)
        clock.now = d.next_attempt_at
    assert len(sender.sent) == schedule.MAX_ATTEMPTS == 11
    for wait, nominal in zip(waits, schedule.DELAYS, strict=True):
        assert nominal <= wait <= nominal * 1.2
    assert waits == sorted(waits) and sum(waits, timedelta(0)) >= timedelta(hours=24)
    assert d.status is DeliveryStatus.FAILED and d.attempt_count == 11
    ctx.refresh(sub)
    assert sub.flagged_reason == "delivery_failed" and sub.active
    attempts = ctx.scalars(sa.select(WebhookAttempt).where(WebhookAttempt.delivery_id == d.id)).all()
    assert len(attempts) == 11 and {a.error for a in attempts} == {"ConnectTimeoutError: timed out"}
    assert ctx.scalar(sa.select(sa.func.count()).select_from(AuditEvent)
                      .where(AuditEvent.action == "webhooks:subscription:flag")) == 1


@pytest.mark.parametrize(("header", "expected"), [
    ("3600", timedelta(hours=1)),
    ("Sun, 01 Mar 2026 11:00:00 GMT", timedelta(hours=2)),  # T0 is 09:00 UTC
    ("2", None),  # shorter than the back-off: the back-off wins
    ("999999999", timedelta(hours=24)),  # capped
    ("soon", None),
    ("0003600", timedelta(hours=1)),
    ("\xb2", None),  # SUPERSCRIPT TWO (latin-1 header byte): str.isdigit() says yes, int() says no
    ("99999999999999", timedelta(hours=24)),  # beyond timedelta: capped, not an OverflowError
    ("1" * 5000, timedelta(hours=24)),  # beyond int()'s digit limit: capped, not a ValueError
    ("Sun, 01 Mar 9999999999999999999 11:00:00 GMT", None),  # an OverflowError in the date parser
    ("Sat, 01 Jan 0001 00:00:00 +2359", None),  # before year 1 in UTC: in the past, so no wait
])
def test_retry_after_is_honoured(ctx, orgs, header, expected):
    mgec, _, _ = orgs
    visibility.register(TEST_RESOURCE, lambda session, rid: {mgec.id})
    sub = _subscribe(ctx, mgec)
    publish(ctx)
    clock = Clock()
    answer = transport.Outcome(503, 3, error="HTTP 503", retry_after=header)
    worker = _worker(ctx, clock, FakeSender([answer]))
    worker.step()
    (d,) = _deliveries(ctx, sub)
    wait = d.next_attempt_at - T0
    if expected is None:
        assert schedule.DELAYS[0] <= wait <= schedule.DELAYS[0] * 1.2
    else:
        assert wait == expected


def test_410_disables_the_subscription(ctx, orgs):
    mgec, _, _ = orgs
    visibility.register(TEST_RESOURCE, lambda session, rid: {mgec.id})
    sub = _subscribe(ctx, mgec)
    publish(ctx), publish(ctx)
    clock = Clock()
    sender = FakeSender([transport.Outcome(410, 3, error="HTTP 410")])
    worker = _worker(ctx, clock, sender)
    assert worker.step() == 1  # the second is not attempted: the subscription is gone
    ctx.refresh(sub)
    assert (sub.active, sub.disabled_reason) == (False, "gone")
    assert [d.status for d in _deliveries(ctx, sub)] == [DeliveryStatus.FAILED, DeliveryStatus.PENDING]
    clock.advance(days=2)
    assert worker.step() == 0 and len(sender.sent) == 1
    publish(ctx)
    worker.step()
    assert len(_deliveries(ctx, sub)) == 2  # no new deliveries for a disabled subscription


def test_an_expired_claim_is_taken_over_and_the_late_answer_does_not_decide(ctx, orgs):
    mgec, _, _ = orgs
    visibility.register(TEST_RESOURCE, lambda session, rid: {mgec.id})
    sub = _subscribe(ctx, mgec)
    publish(ctx)
    fanout.fan_out(ctx, now=T0)
    d_id = delivery.claim(ctx, worker_id="dead", now=T0, claim_seconds=30)
    assert d_id is not None
    assert delivery.claim(ctx, worker_id="w2", now=T0 + timedelta(seconds=29), claim_seconds=30) is None
    assert delivery.claim(ctx, worker_id="w2", now=T0 + timedelta(seconds=31), claim_seconds=30) == d_id
    late = transport.Outcome(500, 9000, error="HTTP 500")
    status = delivery.record_attempt(ctx, d_id, late, worker_id="dead",
                                     attempted_at=T0, now=T0 + timedelta(seconds=40), rng=random.Random(1))
    assert status is DeliveryStatus.PENDING
    (d,) = _deliveries(ctx, sub)
    assert (d.claimed_by, d.attempt_count) == ("w2", 0)  # still w2's; the stale answer is only kept
    status = delivery.record_attempt(ctx, d_id, transport.Outcome(204, 5), worker_id="w2", attempted_at=T0,
                                     now=T0 + timedelta(seconds=41), rng=random.Random(1))
    assert status is DeliveryStatus.SUCCEEDED
    assert len(_deliveries(ctx, sub)[0].attempts) == 2


def test_graceful_stop_finishes_the_current_delivery_and_releases_claims(ctx, orgs):
    mgec, _, _ = orgs
    visibility.register(TEST_RESOURCE, lambda session, rid: {mgec.id})
    sub_a, sub_b = _subscribe(ctx, mgec), _subscribe(ctx, mgec)
    publish(ctx)
    clock = Clock()
    worker = _worker(ctx, clock, None)

    def send_then_stop(url, **kwargs):
        worker.stop()  # SIGTERM arrives while the receiver answers
        return transport.Outcome(200, 3)

    worker.send = send_then_stop
    worker.run()
    statuses = sorted(d.status for s in (sub_a, sub_b) for d in _deliveries(ctx, s))
    assert statuses == [DeliveryStatus.PENDING, DeliveryStatus.SUCCEEDED]
    assert ctx.scalar(sa.select(sa.func.count()).select_from(WebhookDelivery)
                      .where(WebhookDelivery.claimed_by.is_not(None))) == 0


def test_redeliver_sends_again_with_the_same_webhook_id(ctx, orgs):
    mgec, _, _ = orgs
    visibility.register(TEST_RESOURCE, lambda session, rid: {mgec.id})
    sub = _subscribe(ctx, mgec)
    event = publish(ctx)
    clock = Clock()
    sender = FakeSender()
    worker = _worker(ctx, clock, sender)
    fanout.fan_out(ctx, now=clock.now)
    (d,) = _deliveries(ctx, sub)
    with pytest.raises(Conflict):  # still pending: it will be attempted anyway
        services.redeliver(ctx, actor=Actor(mgec.id), delivery_id=d.id)
    worker.step()
    services.redeliver(ctx, actor=Actor(mgec.id), delivery_id=d.id, now=clock.now)
    worker.step()
    assert [s["headers"]["webhook-id"] for s in sender.sent] == [str(event.id)] * 2
    ctx.refresh(d)
    assert d.status is DeliveryStatus.SUCCEEDED and len(d.attempts) == 2


def test_fan_out_waits_at_a_gap_then_passes_it(ctx, orgs, backend, monkeypatch):
    mgec, _, _ = orgs
    visibility.register(TEST_RESOURCE, lambda session, rid: {mgec.id})
    sub = _subscribe(ctx, mgec)
    a, b, c = publish(ctx), publish(ctx), publish(ctx)
    ctx.execute(sa.text("DELETE FROM outbox_events WHERE seq = :seq"), {"seq": b.seq})  # b: still in flight
    ctx.commit()
    # As if another transaction were still writing to the outbox (the PostgreSQL fast path says no).
    monkeypatch.setattr(fanout, "_gap_settled", lambda session, **kw: False)
    assert fanout.fan_out(ctx, now=T0) == 1  # a; stops before the gap
    assert fanout.fan_out(ctx, now=T0 + timedelta(seconds=1)) == 0  # the wait starts
    assert fanout.fan_out(ctx, now=T0 + timedelta(seconds=59)) == 0
    assert fanout.fan_out(ctx, now=T0 + timedelta(seconds=62)) == 1  # c, after the grace
    assert [d.event_seq for d in _deliveries(ctx, sub)] == [a.seq, c.seq]


def test_deleting_a_subscription_shreds_its_secrets(ctx, orgs):
    mgec, _, _ = orgs
    sub = _subscribe(ctx, mgec)
    key_id = sub.data_key_id
    services.delete(ctx, actor=Actor(mgec.id), subscription_id=sub.id)
    assert ctx.get(WebhookSubscription, sub.id) is None
    row = ctx.execute(sa.text("SELECT erased_at FROM data_keys WHERE id = :id"),
                      {"id": key_id.hex if ctx.get_bind().dialect.name == "sqlite" else key_id}).one()
    assert row.erased_at is not None


@pytest.mark.postgres_only
def test_fan_out_passes_a_gap_at_once_when_nobody_writes_to_the_outbox(ctx, orgs, backend, app):
    """PostgreSQL: while another transaction holds the outbox for writing, the gap waits; then it passes."""
    from referral_api.db import database

    mgec, _, _ = orgs
    visibility.register(TEST_RESOURCE, lambda session, rid: {mgec.id})
    sub = _subscribe(ctx, mgec)
    a, b, c = publish(ctx), publish(ctx), publish(ctx)
    ctx.execute(sa.text("DELETE FROM outbox_events WHERE seq = :seq"), {"seq": b.seq})
    ctx.commit()
    assert fanout.fan_out(ctx, now=T0) == 1
    with database(app).engine.connect() as other:
        with other.begin():  # a writer in flight: it might hold a number below c's
            other.execute(sa.text("LOCK TABLE outbox_events IN ROW EXCLUSIVE MODE"))
            assert fanout.fan_out(ctx, now=T0) == 0
            assert fanout.fan_out(ctx, now=T0 + timedelta(seconds=5)) == 0
        assert fanout.fan_out(ctx, now=T0 + timedelta(seconds=6)) == 1  # it ended: the gap is for good
    assert [d.event_seq for d in _deliveries(ctx, sub)] == [a.seq, c.seq]


def test_the_due_total_is_counted_only_for_a_line_someone_sees(ctx, orgs, monkeypatch, tmp_path):
    from referral_api.progress import TerminalProgress
    from referral_api.webhooks import worker as worker_module

    mgec, _, _ = orgs
    visibility.register(TEST_RESOURCE, lambda session, rid: {mgec.id})
    _subscribe(ctx, mgec)
    publish(ctx, stage="first")
    counted = []
    real = worker_module.due_count

    def counting(session, now):
        counted.append(now)
        return real(session, now=now)

    monkeypatch.setattr(worker_module, "due_count", counting)
    silent = _worker(ctx, Clock(), FakeSender([transport.Outcome(200, 3)]))
    assert silent.step() == 1 and counted == []  # a service's worker: nobody reads a total
    publish(ctx, stage="second")
    with (tmp_path / "line").open("w") as stream:
        shown = _worker(ctx, Clock(), FakeSender([transport.Outcome(200, 3)]))
        shown.progress = TerminalProgress("deliveries", stream=stream)
        assert shown.step() == 1
    assert len(counted) == 1 and shown.progress.total == 1


def test_the_worker_seals_audit_events_a_busy_head_left_unsealed(app, ctx):
    """An event committed without its seal (its commit lost the head's try-lock) is sealed by the
    worker's periodic step; the trail then lists it and the chain verifies."""
    from referral_api.audit import services as audit_services
    from referral_api.audit.models import AuditEvent
    from referral_api.webhooks.worker import periodic_tasks

    event_id = uuid.uuid4()
    ctx.execute(sa.insert(AuditEvent).values(  # as a commit that lost the try-lock leaves it
        id=event_id, occurred_at=T0, action="audit:checkpoint:create", resource_type="test",
        resource_id="seal-me", outcome="success", details={}))
    ctx.commit()
    assert ctx.get(AuditEvent, event_id).seq is None
    tasks = {task.name: task for task in periodic_tasks(app.config["SETTINGS"])}
    assert tasks["audit-seal"].every == 10.0
    tasks["audit-seal"].run(ctx, T0)
    ctx.expire_all()
    assert ctx.get(AuditEvent, event_id).seq is not None
    assert audit_services.verify(ctx).ok
