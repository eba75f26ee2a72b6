"""`referral-api webhooks ...`: the delivery worker."""

from __future__ import annotations

import click
from flask import current_app

from ..commands import domain_command
from ..db import database
from ..progress import for_command
from .worker import Worker, default_worker_id, periodic_tasks


@click.group("webhooks")
def webhooks_group() -> None:
    """Webhook delivery."""


@webhooks_group.command("work")
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit.")
@click.option("--worker-id", default=None, help="A name for this worker's claims (default: host:pid:random).")
@click.option("--poll-interval", default=1.0, show_default=True, type=click.FloatRange(min=0.05),
              help="Seconds to wait when nothing is due.")
@domain_command
def work(once: bool, worker_id: str | None, poll_interval: float) -> None:
    """Fan out the outbox and deliver webhooks (several may run on PostgreSQL; one on SQLite).

    Also runs the periodic steps other parts register: the deadlines evaluation every
    DEADLINES_EVERY_SECONDS and `referral-api prune` every PRUNE_INTERVAL_SECONDS (both at start too).

    SIGTERM finishes the delivery in progress, releases this worker's claims and exits.
    """
    settings = current_app.config["SETTINGS"]
    worker = Worker(
        database().sessionmaker,
        worker_id=worker_id or default_worker_id(),
        claim_seconds=settings.webhooks_claim_seconds,
        allow_http_loopback=settings.webhooks_allow_http_loopback,
        poll_interval=poll_interval,
        periodic=periodic_tasks(settings),
    )
    worker.install_signal_handlers()
    click.echo(f"webhook worker {worker.worker_id} started", err=True)
    if once:
        with for_command("webhooks work --once", unit="deliveries") as worker.progress:
            worker.run(once=True)
    else:
        worker.run()
    click.echo(f"webhook worker {worker.worker_id} stopped", err=True)
