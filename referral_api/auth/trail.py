"""Audit events of the auth part: clients, people, tokens; ids and reasons only, never a secret."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sqlalchemy.orm import Session

from .. import audit
from ..audit.actions import AuditAction, Outcome
from .models import Client, User


def actor_of(client: Client | None, user: User | None = None) -> SimpleNamespace | None:
    """Who acts: the person (their organisation) or else the client (its organisation)."""
    if client is None and user is None:
        return None
    org = user.organisation_id if user is not None else client.organisation_id  # type: ignore[union-attr]
    return SimpleNamespace(organisation_id=org, client_id=client.client_id if client else None,
                           user_id=user.id if user else None)


def record(session: Session, action: AuditAction, *, resource_type: str, resource_id: Any,
           client: Client | None = None, user: User | None = None, outcome: Outcome = Outcome.SUCCESS,
           details: dict[str, Any] | None = None, actor: Any = None, with_commit: bool = False) -> None:
    """Append an auth event in the caller's transaction (the caller commits). `actor`, when given, is
    who acted (an admin in the console); else the client or person acting, or None (the command line).
    `with_commit`: nothing reads it before the commit (`audit.record_with_commit`)."""
    who = actor if actor is not None else actor_of(client, user)
    write = audit.record_with_commit if with_commit else audit.record
    write(session, actor=who, action=action, resource_type=resource_type, resource_id=resource_id,
          outcome=outcome, details=details)
