"""`referral-api prune`: delete what has expired and protects nobody any more.

Expired access and refresh tokens, authorization codes past their life, client-assertion and DPoP proof
`jti`s past their replay window, idempotency keys past IDEMPOTENCY_TTL_HOURS, and the attempts of delivered
webhooks past WEBHOOK_ATTEMPT_RETENTION_DAYS. What still guards something stays:

- a token row stays while its access token or its refresh token could still be presented; a rotated
  (revoked) refresh token stays until it would have expired, so its replay is still recognised and
  revokes the family;
- an authorization code stays while a token issued from it is live, so a replayed code still revokes
  what it issued;
- a `jti` stays until the assertion that carried it has expired;
- attempts of deliveries that are pending or failed stay (they are what an integrator debugs).

Safe while serving: rows go in small batches, each its own short transaction, and on PostgreSQL rows
another transaction holds are skipped (`SKIP LOCKED`), never waited for. Run from cron, or let the
webhook worker (`referral-api webhooks work`) run it every PRUNE_INTERVAL_SECONDS.

This module stands above auth/ and webhooks/ (it reads their tables); it registers its step with the
worker (`webhooks.worker.register_periodic`), so webhooks/ never imports it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import click
import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session, sessionmaker

from .auth.models import AuthorizationCode, Token, UsedAssertion, UsedDPoPProof
from .commands import domain_command, emit, json_option
from .config import Settings
from .db import database, utcnow
from .idempotency import IdempotencyKey
from .webhooks import worker
from .webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery

log = logging.getLogger(__name__)
BATCH = 500

Rule = tuple[type, Callable[[Session, datetime, Settings], sa.ColumnElement[bool]]]


def _tokens(session: Session, now: datetime, _settings: Settings) -> sa.ColumnElement[bool]:
    # The longest life any stored access token was given bounds them all (no per-row arithmetic,
    # which SQLite and PostgreSQL spell differently); a token outlives its life a little, never less.
    longest = session.scalar(sa.select(sa.func.max(Token.expires_in))) or 0
    return sa.and_(
        Token.issued_at < now - timedelta(seconds=longest),
        sa.or_(Token.refresh_expires_at.is_(None), Token.refresh_expires_at <= now),
    )


def _codes(session: Session, now: datetime, settings: Settings) -> sa.ColumnElement[bool]:
    live = sa.select(Token.id).where(
        Token.authorization_code_id == AuthorizationCode.id, ~_tokens(session, now, settings)
    )
    return sa.and_(AuthorizationCode.expires_at < now, ~live.exists())


def _jtis(_session: Session, now: datetime, _settings: Settings) -> sa.ColumnElement[bool]:
    return UsedAssertion.expires_at < now


def _dpop_jtis(_session: Session, now: datetime, _settings: Settings) -> sa.ColumnElement[bool]:
    return UsedDPoPProof.expires_at < now


def _idempotency_keys(_session: Session, now: datetime, _settings: Settings) -> sa.ColumnElement[bool]:
    return IdempotencyKey.expires_at <= now


def _webhook_attempts(_session: Session, now: datetime, settings: Settings) -> sa.ColumnElement[bool]:
    delivered = sa.select(WebhookDelivery.id).where(
        WebhookDelivery.id == WebhookAttempt.delivery_id, WebhookDelivery.status == DeliveryStatus.SUCCEEDED
    )
    return sa.and_(
        WebhookAttempt.attempted_at < now - timedelta(days=settings.webhook_attempt_retention_days),
        delivered.exists(),
    )


# Tokens before codes (a code goes once no live token points at it; the dead ones go first).
RULES: dict[str, Rule] = {
    "tokens": (Token, _tokens),
    "authorization_codes": (AuthorizationCode, _codes),
    "assertion_jtis": (UsedAssertion, _jtis),
    "dpop_proof_jtis": (UsedDPoPProof, _dpop_jtis),
    "idempotency_keys": (IdempotencyKey, _idempotency_keys),
    "webhook_attempts": (WebhookAttempt, _webhook_attempts),
}


def _prune(session: Session, model: type, condition: sa.ColumnElement[bool], *, batch: int) -> int:
    total = 0
    while True:
        ids = session.scalars(
            sa.select(model.id).where(condition).limit(batch).with_for_update(skip_locked=True)
        ).all()
        if ids:
            gone = sa.delete(model).where(model.id.in_(ids))
            session.execute(gone, execution_options={"synchronize_session": False})
        session.commit()  # each batch its own short transaction
        total += len(ids)
        if len(ids) < batch:
            return total


def run(
    sessions: sessionmaker[Session], *, settings: Settings, now: datetime | None = None,
    dry_run: bool = False, batch: int = BATCH,
) -> dict[str, int]:
    """Prune every kind; how many rows of each went (or, with `dry_run`, would go)."""
    now = now or utcnow()
    counts: dict[str, int] = {}
    for kind, (model, rule) in RULES.items():
        with sessions() as session:
            condition = rule(session, now, settings)
            if dry_run:
                counted = sa.select(sa.func.count()).select_from(model).where(condition)
                counts[kind] = session.scalar(counted) or 0
            else:
                counts[kind] = _prune(session, model, condition, batch=batch)
    log.info("pruned" if not dry_run else "prune dry run", extra={"counts": counts})
    return counts


@click.command("prune")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@json_option
@domain_command
def prune_command(dry_run: bool, as_json: bool) -> None:
    """Delete expired tokens, codes, jtis, idempotency keys and old attempts of delivered webhooks."""
    counts = run(database().sessionmaker, settings=current_app.config["SETTINGS"], dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    emit({"dry_run": dry_run, "pruned": counts}, as_json=as_json,
         text=f"{verb}: " + ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in counts.items()))


def _periodic(settings: Settings) -> worker.PeriodicTask:
    """The pruning as a step of the webhook worker, every PRUNE_INTERVAL_SECONDS."""

    def step(_session: Session, now: datetime) -> None:
        # each kind in its own sessions, batch by batch, as the command does
        run(database().sessionmaker, settings=settings, now=now)

    return worker.PeriodicTask("prune", float(settings.prune_interval_seconds), step)


worker.register_periodic("prune", _periodic)
