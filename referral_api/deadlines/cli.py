"""`referral-api deadlines run [--now ISO] [--dry-run] [--json]`, and the same step in the webhook worker."""

from __future__ import annotations

from datetime import datetime

import click
from flask import current_app
from sqlalchemy.orm import Session

from ..commands import domain_command, emit, json_option, parse_now
from ..config import Settings
from ..db import get_session
from ..webhooks import worker
from . import evaluate


@click.group("deadlines")
def deadlines_group() -> None:
    """Deadlines of referrals and cases: overdue items and follow-up visits due."""


@deadlines_group.command("run")
@click.option("--now", "now_text", help="Take this ISO time as now (tests, catching up).")
@click.option("--dry-run", is_flag=True, help="List what would be raised; raise and clear nothing.")
@json_option
@domain_command
def run(now_text: str | None, dry_run: bool, as_json: bool) -> None:
    """Raise each wait past its deadline once (an event and an audit event), clear the answered ones."""
    now = parse_now(now_text)
    report = evaluate.run(get_session(), now=now, settings=current_app.config["SETTINGS"], dry_run=dry_run)
    verb = "would raise" if dry_run else "raised"
    lines = [f"{verb}: {len(report['raised'])}, cleared: {report['cleared']}"]
    lines += [
        f"  {r['reference']} {r['deadline']} level {r['level']}, late by {r['late_by_seconds']} s"
        for r in report["raised"]
    ]
    emit(report, as_json=as_json, text="\n".join(lines))


def _periodic(settings: Settings) -> worker.PeriodicTask:
    def step(session: Session, now: datetime) -> None:
        evaluate.run(session, now=now, settings=settings)

    return worker.PeriodicTask("deadlines", float(settings.deadlines_every_seconds), step)


worker.register_periodic("deadlines", _periodic)
