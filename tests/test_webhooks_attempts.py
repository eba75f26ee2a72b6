"""Every attempt counts: whatever a receiver answers, and should sending or recording raise, the attempt
is recorded (failed) and the delivery moves on to its next attempt or to `failed`, never resent without
end at every claim expiry.
"""

from __future__ import annotations

import logging
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa

from referral_api.db import database
from referral_api.webhooks import schedule, services, transport, visibility
from referral_api.webhooks.models import WebhookDelivery
from referral_api.webhooks.worker import Worker
from tests.webhook_helpers import TEST_RESOURCE, Actor, Clock, align_cursor, publish


@pytest.fixture
def ctx(app, session, factories):
    org = factories.OrganisationFactory()
    with app.app_context():
        align_cursor(session)
        visibility.register(TEST_RESOURCE, lambda s, rid: {org.id})
        yield session, org
    visibility.unregister(TEST_RESOURCE)


def _subscribe(session, org, url):
    sub, _ = services.create(session, actor=Actor(org.id), url=url, events=[], allow_http_loopback=True)
    return sub.id


def _run_to_the_end(session, clock, send=None) -> None:
    """Every attempt the schedule allows (and more steps than that), each past its back-off."""
    options = {"send": send} if send is not None else {}
    worker = Worker(database().sessionmaker, worker_id="w", claim_seconds=60, allow_http_loopback=True,
                    clock=clock, rng=random.Random(3), **options)
    for _ in range(schedule.MAX_ATTEMPTS + 3):
        worker.step()
        clock.advance(days=2)  # past every back-off and every claim


def _delivery(session, subscription_id) -> tuple[str, int, list[str | None]]:
    row = session.scalar(sa.select(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id)
                         .execution_options(populate_existing=True))
    summary = (row.status.value, row.attempt_count, [a.error for a in row.attempts])
    session.rollback()
    return summary


class _Answer503(BaseHTTPRequestHandler):
    """503 with a `Retry-After` the worker must survive: SUPERSCRIPT TWO, or a number beyond any date."""

    posts = 0
    retry_after = b"\xb2"

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).posts += 1
        self.wfile.write(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: " + self.retry_after
                         + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("retry_after", [b"\xb2", b"99999999999999", b"1" * 5000])
def test_a_receiver_with_a_bad_retry_after_gets_its_attempts_then_fails(ctx, monkeypatch, retry_after):
    session, org = ctx
    monkeypatch.setattr(_Answer503, "retry_after", retry_after)
    monkeypatch.setattr(_Answer503, "posts", 0)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer503)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sub_id = _subscribe(session, org, f"http://127.0.0.1:{server.server_port}/hook")
        publish(session)
        _run_to_the_end(session, Clock())
    finally:
        server.shutdown()
        server.server_close()
    status, count, errors = _delivery(session, sub_id)
    assert (status, count, _Answer503.posts) == ("failed", schedule.MAX_ATTEMPTS, schedule.MAX_ATTEMPTS)
    assert errors == ["HTTP 503"] * schedule.MAX_ATTEMPTS


def test_a_sender_that_raises_is_a_failed_attempt_logged_without_the_url(ctx, caplog):
    session, org = ctx
    url = "http://127.0.0.1:9/hook?token=s3cr3t"
    sub_id = _subscribe(session, org, url)
    publish(session)

    def send(url, **_):
        raise RuntimeError(f"cannot reach {url}")

    with caplog.at_level(logging.INFO, logger="referral_api.webhooks"):
        _run_to_the_end(session, Clock(), send)
    status, count, errors = _delivery(session, sub_id)
    assert (status, count) == ("failed", schedule.MAX_ATTEMPTS)
    assert errors == ["internal error sending: RuntimeError"] * schedule.MAX_ATTEMPTS
    logged = [r for r in caplog.records if r.getMessage().startswith("webhook attempt failed unexpectedly")]
    assert len(logged) == schedule.MAX_ATTEMPTS
    assert not any("s3cr3t" in r.getMessage() or "s3cr3t" in str(r.__dict__) for r in caplog.records)


def test_an_answer_that_cannot_be_recorded_as_it_came_is_recorded_as_failed(ctx, monkeypatch):
    """A receiver's header that trips a (future) bug in the schedule: the attempt is kept all the same."""
    session, org = ctx
    sub_id = _subscribe(session, org, "http://127.0.0.1:9/hook")
    publish(session)
    real = schedule.retry_after

    def broken(value, *, now):
        if value is not None:
            raise ArithmeticError("a bug")
        return real(value, now=now)

    monkeypatch.setattr(schedule, "retry_after", broken)
    answer = transport.Outcome(503, 4, error="HTTP 503", retry_after="120")
    _run_to_the_end(session, Clock(), lambda url, **_: answer)
    status, count, errors = _delivery(session, sub_id)
    assert (status, count) == ("failed", schedule.MAX_ATTEMPTS)
    # the last attempt asks the schedule nothing: no attempt is left
    failed = "internal error recording: ArithmeticError (HTTP 503)"
    assert errors == [failed] * (schedule.MAX_ATTEMPTS - 1) + ["HTTP 503"]


def test_a_delivery_deleted_meanwhile_is_not_recorded(ctx):
    session, org = ctx
    sub_id = _subscribe(session, org, "http://127.0.0.1:9/hook")
    publish(session)

    def send(url, **_):  # the owner deletes the subscription while its receiver is called
        with database().sessionmaker() as other:
            services.delete(other, actor=Actor(org.id), subscription_id=sub_id)
        raise RuntimeError("late")

    _run_to_the_end(session, Clock(), send)
    assert session.scalar(sa.select(sa.func.count()).select_from(WebhookDelivery)
                          .where(WebhookDelivery.subscription_id == sub_id)) == 0
