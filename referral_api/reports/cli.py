"""`referral-api retention run [--dry-run] [--now ISO] [--json]`."""

from __future__ import annotations

import click
from flask import current_app

from ..commands import domain_command, emit, json_option, parse_now
from ..db import get_session
from ..progress import for_command
from . import retention


@click.group("retention")
def retention_group() -> None:
    """Personal data past its retention period."""


@retention_group.command("run")
@click.option("--dry-run", is_flag=True, help="List what would be erased (references only); erase nothing.")
@click.option("--now", "now_text", help="Take this ISO time as now (tests, catching up).")
@json_option
@domain_command
def run(dry_run: bool, now_text: str | None, as_json: bool) -> None:
    """Crypto-shred the personal data of rejected or withdrawn referrals and closed cases past their time."""
    now = parse_now(now_text)
    settings = current_app.config["SETTINGS"]
    limits = retention.Limits(settings.retention_rejected_days, settings.retention_closed_years)
    with for_command("retention run", as_json=as_json, unit="records") as progress:
        report = retention.run(get_session(), now=now, limits=limits, dry_run=dry_run, progress=progress)
    verb = "would erase" if dry_run else "erased"
    emit(
        report,
        as_json=as_json,
        text=f"{verb}: {len(report['referrals'])} referrals, {len(report['cases'])} cases",
    )
