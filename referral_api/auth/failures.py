"""Failed authentications: the login lock per (account, address) and the audit summary of failed
token requests, both counted in the rate-limit storage (RATELIMIT_STORAGE_URI)."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from flask import current_app
from limits import RateLimitItemPerMinute, parse
from sqlalchemy.orm import Session

from .. import audit
from ..audit.actions import AuditAction, Outcome
from ..validators import control_character
from .limits import address_key
from .models import Client
from .services import LOCK_DURATION, MAX_FAILED_LOGINS

LOCK_WINDOW = RateLimitItemPerMinute(MAX_FAILED_LOGINS, int(LOCK_DURATION.total_seconds() // 60))
SLOWDOWN_SECONDS = 2.0
# At most one audit event per (named client, address) and minute for failed token requests.
TOKEN_FAILURE_SUMMARY = parse("1/minute")


def _strategy() -> Any:
    return current_app.extensions["referral_api.limiter"].limiter


def _pair(*parts: Any) -> str:
    """A storage key for a pair: a digest, so that the storage holds no address or account in clear."""
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:32]


@dataclass
class LoginGuard:
    """Failed logins of one address: MAX_FAILED_LOGINS in 15 minutes lock that (account, address) pair.

    Another address, the person's own one included, is not locked by them; see services.login for
    what failures from anywhere do (they slow the account down, never lock it).
    """

    strategy: Any
    address: str

    @classmethod
    def for_request(cls) -> LoginGuard:
        return cls(_strategy(), address_key())

    def _key(self, user_id: Any) -> str:
        return _pair(user_id, self.address)

    def attempt(self, user_id: Any) -> bool:
        """Count an attempt before its password is checked; False (and not counted) when the pair is
        locked. Counted first, so that attempts running at the same moment cannot all pass a check
        made before any of them was counted: never more than MAX_FAILED_LOGINS are checked."""
        return bool(self.strategy.hit(LOCK_WINDOW, "login-lock", self._key(user_id)))

    def locked(self, user_id: Any) -> bool:
        """Whether the pair's attempts fill the window (after a failed one: whether it locked the pair)."""
        return not self.strategy.test(LOCK_WINDOW, "login-lock", self._key(user_id))

    def succeeded(self, user_id: Any) -> None:
        """The right password: the pair's attempts are forgotten."""
        self.strategy.clear(LOCK_WINDOW, "login-lock", self._key(user_id))

    def slow_down(self) -> None:
        """Wait before answering for an account that failed often lately (from any address)."""
        time.sleep(current_app.config.get("AUTH_LOGIN_SLOWDOWN_SECONDS", SLOWDOWN_SECONDS))


def audit_token_failure(session: Session, *, named_client_id: str, endpoint: str) -> None:
    """Audit a failed client authentication (at /oauth/token, /oauth/introspect or /oauth/revoke: the
    `endpoint` Authlib names), at most once a minute per (client, address) whatever the endpoint.

    The event names the client (when the id is one of ours) and never the secret, assertion or address.
    """
    if not _strategy().hit(TOKEN_FAILURE_SUMMARY, "audit-token-deny", _pair(named_client_id, address_key())):
        return
    client = None
    if len(named_client_id) <= 64 and not control_character(named_client_id):  # else no client of ours
        client = session.scalar(sa.select(Client).where(Client.client_id == named_client_id))
    actor = None
    if client is not None:
        actor = SimpleNamespace(organisation_id=client.organisation_id, client_id=client.client_id)
    audit.record(session, actor=actor, action=AuditAction.AUTH_TOKEN_DENY, resource_type="client",
                 resource_id=client.id if client else None, outcome=Outcome.DENIED,
                 details={"reason": "invalid_client", "known_client": client is not None,
                          "endpoint": endpoint, "per": "client and address, at most one a minute"})
    session.commit()
