"""The referral's entries in the audit trail: one call names the action, the referral and the details."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from .. import audit
from ..access import Actor
from ..audit.actions import AuditAction
from .models import Referral


def audit_referral(session: Session, actor: Actor, action: AuditAction, referral: Referral | None, *,
                   details: dict[str, Any] | None = None) -> None:
    """Record `action` on `referral` (None: on a list, named in `details`) in the caller's transaction."""
    audit.record(session, actor=actor, action=action, resource_type="referral",
                 resource_id=referral.id if referral is not None else None, details=details)
