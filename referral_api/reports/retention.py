"""Erasure by crypto-shredding: on request (an MGEC admin) and by the retention run.

A case shares its data key with the referral that opened it; erasing a case shreds that key and the
key of every other referral linked to the case, and marks the case and those referrals erased. The
plain facts (status, stage, dates, country, types, sex, age band) stay: reports still count them. A
referral still open when erased is withdrawn (the move of the state table, audited and announced as a
withdrawal, with the erasure's reason code): nobody may move an erased referral (410), so it would
otherwise wait in the coordinators' queue for ever.
Audit events name the record, the reason code and the keys' count; never anything personal.

Retention (docs/security.md, Data at rest): rejected and withdrawn referrals whose final status is older
than RETENTION_REJECTED_DAYS, and closed cases closed more than RETENTION_CLOSED_YEARS ago.
This module sits above referrals/ and cases/ (docs/architecture.md), so it may read both.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .. import audit, privacy
from ..access import Actor
from ..audit.actions import AuditAction
from ..cases import services as case_services
from ..cases.models import Case, CaseParticipant
from ..cases.stages import Stage
from ..db import utcnow
from ..documents import erasure as document_erasure
from ..errors import Conflict
from ..events import OutboxEvent
from ..progress import Progress
from ..referrals import matching
from ..referrals import services as referral_services
from ..referrals.models import Referral
from ..referrals.states import OPEN, ReferralStatus


class ErasureReason(StrEnum):
    """Why a record was erased: a code, never free text (it goes into the audit trail)."""

    PERSON_REQUEST = "person_request"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    UNLAWFUL_PROCESSING = "unlawful_processing"
    LEGAL_OBLIGATION = "legal_obligation"
    RETENTION = "retention"


REQUEST_REASONS = [r.value for r in ErasureReason if r is not ErasureReason.RETENTION]


def _shred(session: Session, keys: set[uuid.UUID | None]) -> int:
    shredded = sum(1 for key in keys if key is not None and privacy.shred(session, key))
    document_erasure.discard_sealed_with(session, keys)  # their chunks are deleted once this commits
    return shredded


def _forget_partner_numbers(session: Session, case_id: uuid.UUID | None, referrals: list[Referral]) -> None:
    """The partners' own case numbers go with the person: free text (a partner may write a name or a
    birth date in it) that links the record to the person in the partner's files. From the referrals,
    the case's participants and the thin payloads of the records' events (not yet delivered, or
    delivered again later)."""
    for referral in referrals:
        referral.external_reference = None
    if case_id is not None:
        session.execute(sa.update(CaseParticipant).where(CaseParticipant.case_id == case_id)
                        .values(external_reference=None))
    ids = [r.id for r in referrals] + ([case_id] if case_id is not None else [])
    for event in session.scalars(sa.select(OutboxEvent).where(OutboxEvent.resource_id.in_(ids))):
        if "external_reference" in event.payload:
            event.payload = {k: v for k, v in event.payload.items() if k != "external_reference"}


def _erase_case(
    session: Session, case: Case, reason: ErasureReason, actor: Actor | None, now: datetime
) -> dict:
    referrals = list(session.scalars(sa.select(Referral).where(Referral.case_id == case.id)))
    keys = {case.data_key_id, *(r.data_key_id for r in referrals)}
    shredded = _shred(session, keys)
    sharing = list(
        session.scalars(
            sa.select(Referral).where(Referral.data_key_id.in_([k for k in keys if k is not None]))
        )
    )
    case.erased_at, case.erasure_reason = now, reason.value
    erased = {r.id: r for r in [*referrals, *sharing]}
    erased_referrals = []
    for referral in erased.values():
        if referral.erased_at is None:
            referral.erased_at, referral.erasure_reason = now, reason.value
        erased_referrals.append(referral.reference)
    matching.forget(session, list(erased))
    _forget_partner_numbers(session, case.id, list(erased.values()))
    for referral in erased.values():  # accepted as a rule: one still open is withdrawn
        referral_services.withdraw_erased(session, actor, referral, reason=reason.value, now=now)
    audit.record(
        session,
        actor=actor,
        action=AuditAction.PRIVACY_RECORD_ERASE,
        resource_type="case",
        resource_id=case.id,
        details={"reason": reason.value, "keys_shredded": shredded, "referrals": sorted(erased_referrals)},
    )
    return {"case": case.reference, "referrals": sorted(erased_referrals), "keys_shredded": shredded}


def _erase_referral(
    session: Session, referral: Referral, reason: ErasureReason, actor: Actor | None, now: datetime
) -> dict:
    if referral.case_id is not None:
        # The case holds the same person (and usually the same key): erasing one erases both.
        case = session.get(Case, referral.case_id)
        if case is not None:
            return _erase_case(session, case, reason, actor, now)
    shredded = _shred(session, {referral.data_key_id})
    referral.erased_at, referral.erasure_reason = now, reason.value
    matching.forget(session, [referral.id])
    _forget_partner_numbers(session, None, [referral])
    referral_services.withdraw_erased(session, actor, referral, reason=reason.value, now=now)
    audit.record(
        session,
        actor=actor,
        action=AuditAction.PRIVACY_RECORD_ERASE,
        resource_type="referral",
        resource_id=referral.id,
        details={"reason": reason.value, "keys_shredded": shredded},
    )
    return {"case": None, "referrals": [referral.reference], "keys_shredded": shredded}


def erase_case(session: Session, actor: Actor, ref: str, reason: str) -> dict[str, Any]:
    """`POST /cases/{id}/erase`: shred the case's person for good (MGEC admin; scope checked at the edge)."""
    matching.hold_matching(session)  # before any row lock: the sharers of its keys are recounted
    case, _seen, _role = case_services.load(session, actor, ref, for_update=True)
    if case.erased_at is not None:
        raise Conflict("The case is erased already.", extra={"erased_at": case.erased_at.isoformat()})
    now = utcnow()
    done = _erase_case(session, case, ErasureReason(reason), actor, now)
    session.commit()
    return {"erased_at": now, "reason": reason, **done}


def erase_referral(session: Session, actor: Actor, ref: str, reason: str) -> dict[str, Any]:
    """`POST /referrals/{id}/erase`: shred the referral's person (and its case's: the same person)."""
    matching.hold_matching(session)  # before any row lock: the sharers of its keys are recounted
    referral, _seen = referral_services.load(session, actor, ref=ref, for_update=True)
    if referral.erased_at is not None:
        raise Conflict("The referral is erased already.", extra={"erased_at": referral.erased_at.isoformat()})
    now = utcnow()
    done = _erase_referral(session, referral, ErasureReason(reason), actor, now)
    session.commit()
    return {"erased_at": now, "reason": reason, **done}


# ---- retention ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    rejected_days: int
    closed_years: int


def _years_before(now: datetime, years: int) -> datetime:
    try:
        return now.replace(year=now.year - years)
    except ValueError:  # 29 February
        return now.replace(year=now.year - years, day=28)


def due(session: Session, now: datetime, limits: Limits) -> tuple[list[Referral], list[Case]]:
    """What the retention period has run out for, not yet erased."""
    referrals = list(
        session.scalars(
            sa.select(Referral)
            .where(
                Referral.status.in_([ReferralStatus.REJECTED, ReferralStatus.WITHDRAWN]),
                Referral.status_changed_at < now - timedelta(days=limits.rejected_days),
                Referral.erased_at.is_(None),
            )
            .order_by(Referral.status_changed_at, Referral.id)
        )
    )
    cases = list(
        session.scalars(
            sa.select(Case)
            .where(
                Case.stage == Stage.CLOSED,
                Case.closed_at < _years_before(now, limits.closed_years),
                Case.erased_at.is_(None),
            )
            .order_by(Case.closed_at, Case.id)
        )
    )
    return referrals, cases


def run(session: Session, *, now: datetime, limits: Limits, dry_run: bool = False,
        progress: Progress | None = None, actor: Actor | None = None) -> dict[str, Any]:
    """Erase what is past its retention period (or, with `dry_run`, list it); safe to run again.
    `actor`: the admin who ran it in the console (None: the command line or a scheduler)."""
    referrals, cases = due(session, now, limits)
    progress = progress or Progress()
    progress.start(0 if dry_run else len(cases) + len(referrals))
    report: dict[str, Any] = {
        "dry_run": dry_run,
        "now": now.isoformat(),
        "referrals": [r.reference for r in referrals],
        "cases": [c.reference for c in cases],
        "keys_shredded": 0,
    }
    if dry_run:
        return report
    matching.hold_matching(session)  # before any row lock: the sharers of erased keys are recounted
    for case in cases:
        report["keys_shredded"] += _erase_case(session, case, ErasureReason.RETENTION, actor, now)[
            "keys_shredded"
        ]
        progress.advance()
    for referral in referrals:
        if referral.erased_at is None:
            erased = _erase_referral(session, referral, ErasureReason.RETENTION, actor, now)
            report["keys_shredded"] += erased["keys_shredded"]
        progress.advance()
    _withdraw_erased_still_open(session, actor, now)
    audit.record(
        session,
        actor=actor,
        action=AuditAction.PRIVACY_RETENTION_RUN,
        resource_type="retention",
        details={
            "now": now.isoformat(),
            "referrals": len(referrals),
            "cases": len(cases),
            "keys_shredded": report["keys_shredded"],
        },
    )
    session.commit()
    return report


def _withdraw_erased_still_open(session: Session, actor: Actor | None, now: datetime) -> None:
    """Referrals erased while open by an earlier version, which left them open (no one can move them
    now: 410): withdrawn as an erasure withdraws one today, audited with their erasure's reason. Usually
    none; the first run after an upgrade clears them from the coordinators' queue."""
    for referral in session.scalars(sa.select(Referral).where(Referral.erased_at.is_not(None),
                                                              Referral.status.in_(OPEN))):
        referral_services.withdraw_erased(session, actor, referral, now=now,
                                          reason=referral.erasure_reason or ErasureReason.RETENTION.value)


def scheduled_run(session: Session, settings: Any, now: datetime | None = None) -> dict[str, Any]:
    """The entry point a scheduler calls (the CLI calls the same)."""
    limits = Limits(settings.retention_rejected_days, settings.retention_closed_years)
    return run(session, now=now or utcnow(), limits=limits)
