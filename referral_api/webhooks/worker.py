"""The delivery worker: fan out the outbox, then deliver what is due, until told to stop.

Parts above webhooks/ may have the worker run a step of theirs every so often (the deadlines
evaluation, say), so that one process serves both: `register_periodic(name, make)` at import time,
where `make(settings)` gives a `PeriodicTask`; `referral-api webhooks work` passes them all in.

SIGTERM or SIGINT stops it gracefully: the delivery in progress is finished and recorded, this
worker's claims are released, and it exits. A worker killed outright loses nothing: its claim
expires (WEBHOOKS_CLAIM_SECONDS) and another worker, or the next start, delivers again.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from ..audit import services as audit_services
from ..config import Settings
from ..db import utcnow
from ..progress import Progress
from . import delivery, fanout, transport
from .models import DeliveryStatus, WebhookDelivery

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicTask:
    """A step run every `every` seconds by each worker: `run(session, now)` commits its own work."""

    name: str
    every: float
    run: Callable[[Session, datetime], object]


_periodic: dict[str, Callable[[Settings], PeriodicTask]] = {}


def register_periodic(name: str, make: Callable[[Settings], PeriodicTask]) -> None:
    """Have `referral-api webhooks work` run the task `make(settings)` gives (parts above register)."""
    _periodic[name] = make


def periodic_tasks(settings: Settings) -> list[PeriodicTask]:
    return [make(settings) for make in _periodic.values()]


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"[:100]


def due_count(session: Session, *, now: datetime) -> int:
    """How many deliveries wait for an attempt now (the total a `--once` run starts from)."""
    return session.scalar(
        sa.select(sa.func.count()).select_from(WebhookDelivery)
        .where(WebhookDelivery.status == DeliveryStatus.PENDING, WebhookDelivery.next_attempt_at <= now)
    ) or 0


class Worker:
    """Fans out and delivers with sessions from `sessions`; `clock` and `send` are replaceable in tests."""

    def __init__(self, sessions: sessionmaker[Session], *, worker_id: str, claim_seconds: int,
                 allow_http_loopback: bool, poll_interval: float = 1.0,
                 clock: Callable[[], datetime] = utcnow, send: delivery.Sender = transport.post,
                 rng: random.Random | None = None, periodic: Sequence[PeriodicTask] = ()) -> None:
        self.sessions = sessions
        self.worker_id = worker_id
        self.claim_seconds = claim_seconds
        self.allow_http_loopback = allow_http_loopback
        self.poll_interval = poll_interval
        self.clock = clock
        self.send = send
        self.rng = rng or random.Random()  # noqa: S311  (back-off jitter, not a secret)
        self.stopping = threading.Event()
        self.periodic = tuple(periodic)
        self._next_run = dict.fromkeys((task.name for task in self.periodic), 0.0)
        self.progress = Progress()  # the command line swaps in a terminal line for `--once`

    def stop(self, *_: Any) -> None:
        """Finish the delivery in progress, then stop (also the SIGTERM handler)."""
        self.stopping.set()

    def step(self) -> int:
        """Fan out what is new, then deliver everything due; returns how many attempts were made."""
        attempts = 0
        with self.sessions() as session:
            self._run_periodic(session)
            while fanout.fan_out(session, now=self.clock()):
                if self.stopping.is_set():
                    return attempts
            if self.progress.shown and self.progress.total is None:
                self.progress.start(due_count(session, now=self.clock()))
            while not self.stopping.is_set():
                delivery_id = delivery.claim(session, worker_id=self.worker_id, now=self.clock(),
                                             claim_seconds=self.claim_seconds)
                if delivery_id is None:
                    break
                delivery.deliver(session, delivery_id, worker_id=self.worker_id, clock=self.clock,
                                 rng=self.rng, allow_http_loopback=self.allow_http_loopback, send=self.send)
                attempts += 1
                self.progress.advance()
        return attempts

    def _run_periodic(self, session: Session) -> None:
        """Run the periodic tasks that are due; one failing is logged and does not stop delivery."""
        for task in self.periodic:
            if self.stopping.is_set() or time.monotonic() < self._next_run[task.name]:
                continue
            self._next_run[task.name] = time.monotonic() + task.every
            try:
                task.run(session, self.clock())
            except Exception:
                session.rollback()
                log.exception("periodic task failed", extra={"worker_id": self.worker_id, "task": task.name})

    def run(self, *, once: bool = False) -> None:
        """Work until stopped (or, with `once`, until nothing is due)."""
        log.info("webhook worker started", extra={"worker_id": self.worker_id})
        try:
            while not self.stopping.is_set():
                try:
                    did = self.step()
                except Exception:  # the database went away, say: log, wait, try again
                    if once:
                        raise
                    log.exception("webhook worker step failed", extra={"worker_id": self.worker_id})
                    did = 0
                if once and not did:
                    break
                if not did:
                    self.stopping.wait(self.poll_interval)
        finally:
            with self.sessions() as session:
                released = delivery.release_claims(session, worker_id=self.worker_id)
            log.info("webhook worker stopped", extra={"worker_id": self.worker_id, "released": released})

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)


AUDIT_SEAL_SECONDS = 10.0


def _audit_seal(_settings: Settings) -> PeriodicTask:
    """Seal the audit events whose commit found the chain head busy (audit/services.py): on a quiet
    system no later commit would, and the trail lists sealed events only. Every AUDIT_SEAL_SECONDS."""

    def step(session: Session, _now: datetime) -> None:
        audit_services.seal_pending(session)

    return PeriodicTask("audit-seal", AUDIT_SEAL_SECONDS, step)


register_periodic("audit-seal", _audit_seal)
