"""End to end with real processes: gunicorn, two `referral-api webhooks work` workers on PostgreSQL,
and a receiver on loopback that verifies every request with the `standardwebhooks` library.

Most tests publish events straight into the outbox for the resource type `e2e_record`, whose
visibility rule the workers load from tests/webhook_visibility_hook.py through
WEBHOOKS_TEST_VISIBILITY_MODULE; the last one drives a real referral and its case through gunicorn.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
import sqlalchemy as sa
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from referral_api import create_app, events
from referral_api.db import database
from referral_api.events import THIN_KEYS, EventType
from referral_api.organisations import services as org_services
from referral_api.organisations.models import OrganisationKind
from referral_api.webhooks.models import WebhookDelivery
from tests import oauth_helpers as h
from tests.conftest import throwaway_database
from tests.netutil import free_port, wait_http

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.postgres_only]


@dataclass
class Received:
    subscription: str
    webhook_id: str
    payload: dict
    answered: int


@dataclass
class Receiver:
    """Verifies each request with the subscription's secret; can fail for a while or hold one request."""

    secrets: dict[str, str] = field(default_factory=dict)
    log: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    fail_seconds: float = 0.0  # answer 500 for this long from the first request on
    first_request_at: float | None = None
    hold_first: bool = False
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> int:
        name = path.rsplit("/", 1)[-1]
        try:
            payload = Webhook(self.secrets[name]).verify(body, headers)
        except (KeyError, WebhookVerificationError) as exc:
            with self.lock:
                self.refused.append(f"{name}: {exc!r}")
            return 400
        with self.lock:
            if self.first_request_at is None:
                self.first_request_at = time.monotonic()
            answer = 500 if time.monotonic() < self.first_request_at + self.fail_seconds else 200
            hold = self.hold_first and not self.held.is_set()
            if hold:
                self.held.set()
            self.log.append(Received(name, headers["webhook-id"], payload, answer))
        if hold:
            self.release.wait(60)
        return answer

    def accepted(self, name: str) -> list[str]:
        with self.lock:
            return [r.webhook_id for r in self.log if r.subscription == name and r.answered == 200]

    def requests(self, name: str) -> list[Received]:
        with self.lock:
            return [r for r in self.log if r.subscription == name]


def _serve(receiver: Receiver) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status = receiver.handle(self.path, dict(self.headers.items()), body)
            try:
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:
                pass  # the worker that sent it is gone

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@dataclass
class Stack:
    url: str
    app: object
    receiver: Receiver
    receiver_base: str
    api_base: str
    workers: dict[str, subprocess.Popen]
    env: dict[str, str]
    tmp: Path
    subscriptions: dict[str, str] = field(default_factory=dict)

    def publish(self, n: int, *, type_=EventType.CASE_STAGE_CHANGED, resource_type="e2e_record") -> list[str]:
        """Publish `n` events, each in its own committed transaction; returns their ids in order."""
        ids = []
        with self.app.app_context():
            session = database(self.app).sessionmaker()
            try:
                for i in range(n):
                    event = events.publish(session, type_, resource_type=resource_type,
                                           resource_id=uuid.uuid4(),
                                           data={"stage": "in_transit", "reference": f"CASE-2026-{i:06d}"})
                    session.commit()
                    ids.append(str(event.id))
            finally:
                session.close()
        return ids

    def token(self, org_id) -> dict[str, str]:
        """A bearer header for a new client of the organisation holding webhooks:manage, from gunicorn."""
        with self.app.app_context():
            session = database(self.app).sessionmaker()
            try:
                client, secret = h.secret_client(session, SimpleNamespace(id=org_id),
                                                 scopes="webhooks:manage")
            finally:
                session.close()
        answer = requests.post(self.api_base + "/oauth/token", data={"grant_type": "client_credentials"},
                               headers=h.basic(client.client_id, secret), timeout=10)
        assert answer.status_code == 200, answer.text
        return h.bearer(answer.json()["access_token"])

    def subscribe(self, org_id, name: str, events_=None) -> dict[str, str]:
        """Subscribe through the API served by gunicorn; the receiver learns the secret shown once."""
        headers = self.token(org_id)
        answer = requests.post(self.api_base + "/api/v1/webhooks", headers=headers, timeout=10,
                               json={"url": f"{self.receiver_base}/hooks/{name}", "events": events_ or []})
        assert answer.status_code == 201, answer.text
        self.receiver.secrets[name] = answer.json()["secret"]
        self.subscriptions[name] = answer.json()["id"]
        return headers

    def org(self, name: str, kind: OrganisationKind) -> uuid.UUID:
        with self.app.app_context():
            session = database(self.app).sessionmaker()
            try:
                return org_services.create(session, name=name, kind=kind, country="MN").id
            finally:
                session.close()

    def start_worker(self, worker_id: str) -> None:
        log = open(self.tmp / f"{worker_id}.log", "wb")  # noqa: SIM115  (kept open for the process)
        self.workers[worker_id] = subprocess.Popen(
            [str(BIN / "referral-api"), "webhooks", "work", "--worker-id", worker_id,
             "--poll-interval", "0.2"],
            env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )


def _env(tmp: Path, url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_URL", "REFERRAL_API_", "WEBHOOK"))}
    env.update(REFERRAL_API_INSTANCE_PATH=str(tmp), DATABASE_URL=url, WEBHOOKS_ALLOW_HTTP_LOOPBACK="true",
               WEBHOOKS_TEST_VISIBILITY_MODULE="tests.webhook_visibility_hook",
               PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""), **extra)
    return env


@contextmanager
def stack(backend, tmp_path, *, claim_seconds: int = 120, receiver: Receiver | None = None):
    receiver = receiver or Receiver()
    with throwaway_database(backend, tmp_path) as url:
        env = _env(tmp_path, url, WEBHOOKS_CLAIM_SECONDS=str(claim_seconds))
        subprocess.run([str(BIN / "referral-api"), "db", "upgrade"], env=env, check=True, capture_output=True,
                       timeout=120)
        app = create_app({"database_url": url, "instance_path": str(tmp_path),
                          "webhooks_allow_http_loopback": True})
        server = _serve(receiver)
        port = free_port()
        gunicorn = subprocess.Popen(
            [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "1", "--no-control-socket",
             "referral_api.wsgi:app"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        s = Stack(url=url, app=app, receiver=receiver, receiver_base=f"http://127.0.0.1:{server.server_port}",
                  api_base=f"http://127.0.0.1:{port}", workers={}, env=env, tmp=tmp_path)
        try:
            wait_http(s.api_base + "/healthz")
            yield s
        finally:
            receiver.release.set()
            for proc in s.workers.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            codes = {wid: proc.wait(timeout=30) for wid, proc in s.workers.items()}
            gunicorn.send_signal(signal.SIGTERM)
            gunicorn.wait(timeout=30)
            server.shutdown()
            server.server_close()
            database(app).engine.dispose()
        s.exit_codes = codes


def _wait(condition, *, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _in_order(requests: list[Received], published: list[str]) -> bool:
    """No request for an event came before every earlier event of the subscription was accepted."""
    position = {eid: i for i, eid in enumerate(published)}
    accepted_up_to = -1
    for r in requests:
        index = position[r.webhook_id]
        if index > accepted_up_to + 1:
            return False
        if r.answered == 200 and index == accepted_up_to + 1:
            accepted_up_to = index
    return True


def _thin(received: list[Received]) -> bool:
    return all(set(r.payload) == {"type", "id", "timestamp", "data"} and set(r.payload["data"]) <= THIN_KEYS
               for r in received)


def test_each_event_arrives_once_per_subscription_in_order(backend, tmp_path):
    with stack(backend, tmp_path) as s:
        mgec = s.org("Audience MGEC", OrganisationKind.MGEC)
        embassy = s.org("Audience Embassy of Mongolia in Seoul", OrganisationKind.EMBASSY)
        outsider = s.org("Outsider NGO", OrganisationKind.NGO)
        s.subscribe(mgec, "mgec")
        s.subscribe(embassy, "embassy")
        closed_only = s.subscribe(embassy, "embassy-closed", ["case.closed"])
        s.subscribe(outsider, "outsider")
        s.start_worker("w1")
        s.start_worker("w2")
        published = s.publish(12)
        s.publish(2, resource_type="unregistered_type")  # no rule: nobody
        published += s.publish(1, type_=EventType.CASE_CLOSED)
        published += s.publish(12)
        ping = requests.post(f"{s.api_base}/api/v1/webhooks/{s.subscriptions['embassy-closed']}/ping",
                             headers=closed_only, timeout=10)
        assert ping.status_code == 202
        _wait(lambda: all(len(s.receiver.accepted(n)) >= len(published) for n in ("mgec", "embassy"))
              and len(s.receiver.accepted("embassy-closed")) == 2, what="every event")
        time.sleep(1.5)  # time for a duplicate to show up, if there were one
        for name in ("mgec", "embassy"):
            assert s.receiver.accepted(name) == published
            assert [r.webhook_id for r in s.receiver.requests(name)] == published  # once each, in order
        assert s.receiver.accepted("embassy-closed") == [published[12], ping.json()["webhook_id"]]
        sub_path = f"{s.api_base}/api/v1/webhooks/{s.subscriptions['embassy-closed']}"
        deliveries = requests.get(f"{sub_path}/deliveries", headers=closed_only, timeout=10).json()["items"]
        assert [(d["event_type"], d["status"], d["attempts"][0]["status_code"]) for d in deliveries] == [
            ("webhook.ping", "succeeded", 200), ("case.closed", "succeeded", 200)]
        assert s.receiver.requests("outsider") == []
        assert s.receiver.refused == []
        assert _thin(s.receiver.log)
    assert s.exit_codes == {"w1": 0, "w2": 0}  # SIGTERM: a graceful stop


def test_a_receiver_failing_for_a_while_gets_everything_in_order_after_recovery(backend, tmp_path):
    receiver = Receiver(fail_seconds=3.0)
    with stack(backend, tmp_path, receiver=receiver) as s:
        org = s.org("Audience MGEC", OrganisationKind.MGEC)
        s.subscribe(org, "flaky")
        s.start_worker("w1")
        s.start_worker("w2")
        published = s.publish(8)
        _wait(lambda: len(receiver.accepted("flaky")) >= len(published), timeout=90, what="recovery")
        requests = receiver.requests("flaky")
        assert any(r.answered == 500 for r in requests)
        assert receiver.accepted("flaky") == published
        assert _in_order(requests, published)
        assert receiver.refused == [] and _thin(requests)


def test_a_worker_killed_mid_delivery_loses_nothing(backend, tmp_path):
    receiver = Receiver(hold_first=True)
    with stack(backend, tmp_path, claim_seconds=3, receiver=receiver) as s:
        org = s.org("Audience MGEC", OrganisationKind.MGEC)
        s.subscribe(org, "held")
        s.start_worker("w1")
        s.start_worker("w2")
        published = s.publish(6)
        _wait(receiver.held.is_set, what="the receiver to hold a request")
        with database(s.app).engine.connect() as conn:
            holder = conn.scalar(sa.select(WebhookDelivery.claimed_by)
                                 .where(WebhookDelivery.claimed_by.is_not(None)))
        assert holder in ("w1", "w2")
        s.workers[holder].send_signal(signal.SIGKILL)
        s.workers[holder].wait(timeout=10)
        receiver.release.set()
        _wait(lambda: len(set(receiver.accepted("held"))) >= len(published), what="the survivor to deliver")
        requests = receiver.requests("held")
        first_seen = list(dict.fromkeys(r.webhook_id for r in requests))
        assert first_seen == published
        assert [r.webhook_id for r in requests].count(published[0]) == 2  # held (lost with w1), then again
        assert _in_order(requests, published)
        assert receiver.refused == [] and _thin(requests)


def test_a_referral_and_its_case_reach_exactly_the_organisations_that_may_see_them(backend, tmp_path):
    """A referral submitted and accepted and its case moved, all through gunicorn with real tokens; the
    workers start afterwards, so each organisation's audience is its final one."""
    from tests import world as world_module
    from tests.referral_data import referral_body

    with stack(backend, tmp_path) as s:
        with s.app.app_context():
            session = database(s.app).sessionmaker()
            world = world_module.build(s.app.test_client(), session)
            police, coordinator, embassy = (world.headers(w) for w in ("police", "coordinator", "embassy"))
            session.close()
        for name in ("mgec", "police", "embassy", "ngo"):
            s.subscribe(world.orgs[name].id, name)
        api = s.api_base + "/api/v1"
        rid = requests.post(f"{api}/referrals", json=referral_body(), headers=police, timeout=30).json()["id"]
        accepted = requests.post(f"{api}/referrals/{rid}/accept", json={}, headers=coordinator, timeout=30)
        case_id = accepted.json()["case_id"]
        added = requests.post(f"{api}/cases/{case_id}/participants", headers=coordinator, timeout=30,
                              json={"organisation_id": str(world.orgs["embassy"].id), "role": "embassy"})
        assert added.status_code in (200, 201), added.text
        moved = requests.post(f"{api}/cases/{case_id}/transitions", headers=embassy, timeout=30, json={
            "to": "travel_documents", "details": {"verified_on": "2026-01-05", "method": "interview"}})
        assert moved.status_code == 200, moved.text
        s.start_worker("w1")
        s.start_worker("w2")
        referral_events = ["referral.submitted", "referral.accepted"]
        case_events = ["case.participant_added", "case.stage_changed"]
        # the referrer does not hear that the embassy joined: participant events are MGEC's and the
        # organisation's concerned only
        expected = {"mgec": referral_events + case_events, "police": [*referral_events, "case.stage_changed"],
                    "embassy": case_events, "ngo": []}
        _wait(lambda: all(len(s.receiver.accepted(n)) >= len(v) for n, v in expected.items()),
              what="every event")
        time.sleep(1.5)  # time for a duplicate to show up, if there were one
        for name, types in expected.items():
            got = s.receiver.requests(name)
            assert [r.payload["type"] for r in got] == types, name  # once each, in order
            assert {r.payload["data"]["id"] for r in got} <= {rid, case_id}
        assert s.receiver.refused == [] and _thin(s.receiver.log)
        text = " ".join(str(r.payload) for r in s.receiver.log)
        assert "Batbayar" not in text and "E1234567" not in text
