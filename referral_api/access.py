"""Who is calling: the Actor behind a token, the scopes of docs/api.md, and the scope check of every route.

The token itself is validated by the OAuth part (auth/), which registers a function under
`app.extensions["referral_api.authenticate"]`; this kernel module never imports auth/.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from authlib.oauth2.rfc6750 import InsufficientScopeError
from flask import current_app, g


class Scope(StrEnum):
    REFERRALS_SUBMIT = "referrals:submit"
    REFERRALS_READ = "referrals:read"
    REFERRALS_REVIEW = "referrals:review"
    CASES_READ = "cases:read"
    CASES_STATUS = "cases:status"
    CASES_UPDATE = "cases:update"
    WEBHOOKS_MANAGE = "webhooks:manage"
    REPORTS_READ = "reports:read"
    AUDIT_READ = "audit:read"
    ADMIN = "admin"


ALL_SCOPES: frozenset[str] = frozenset(s.value for s in Scope)
# Held only by tokens that carry a person (authorization code), never by client credentials.
PERSON_ONLY_SCOPES: frozenset[str] = frozenset({Scope.REFERRALS_REVIEW, Scope.AUDIT_READ, Scope.ADMIN})
CLIENT_CREDENTIALS_SCOPES: frozenset[str] = ALL_SCOPES - PERSON_ONLY_SCOPES


class Role(StrEnum):
    MGEC_ADMIN = "mgec_admin"
    MGEC_COORDINATOR = "mgec_coordinator"
    MGEC_CASEWORKER = "mgec_caseworker"
    PARTNER_OFFICER = "partner_officer"


def _scopes(*scopes: Scope) -> frozenset[str]:
    return frozenset(s.value for s in scopes)


# The one table of what each role may ever hold; a token's scopes never exceed its person's role.
ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.MGEC_ADMIN: ALL_SCOPES,
    Role.MGEC_COORDINATOR: _scopes(
        Scope.REFERRALS_SUBMIT, Scope.REFERRALS_READ, Scope.REFERRALS_REVIEW, Scope.CASES_READ,
        Scope.CASES_STATUS, Scope.CASES_UPDATE, Scope.REPORTS_READ,
    ),
    Role.MGEC_CASEWORKER: _scopes(
        Scope.REFERRALS_READ, Scope.CASES_READ, Scope.CASES_STATUS, Scope.CASES_UPDATE,
    ),
    Role.PARTNER_OFFICER: _scopes(
        Scope.REFERRALS_SUBMIT, Scope.REFERRALS_READ, Scope.CASES_READ, Scope.CASES_STATUS,
        Scope.CASES_UPDATE, Scope.WEBHOOKS_MANAGE,
    ),
}
# People of these roles log in with a TOTP second factor.
TOTP_ROLES: frozenset[Role] = frozenset({Role.MGEC_ADMIN, Role.MGEC_COORDINATOR})
MGEC_ROLES: frozenset[Role] = frozenset({Role.MGEC_ADMIN, Role.MGEC_COORDINATOR, Role.MGEC_CASEWORKER})


def effective_scopes(
    requested: Iterable[str], *, client_scopes: Iterable[str], role: Role | None
) -> frozenset[str]:
    """requested ∩ the client's ∩ (for a person) the role's; without a person, no person-only scope."""
    out = frozenset(requested) & frozenset(client_scopes) & ALL_SCOPES
    if role is None:
        return out - PERSON_ONLY_SCOPES
    return out & ROLE_SCOPES[role]


MGEC_KIND = "mgec"


@dataclass(frozen=True)
class OrganisationRef:
    """An organisation as the Actor carries it; `kind` is an OrganisationKind value (a str), kept as a
    plain string here so that this kernel module does not import the organisations part above it."""

    id: uuid.UUID
    kind: str


@dataclass(frozen=True)
class Actor:
    """The caller of one request: an organisation's system, or a person of an organisation."""

    organisation: OrganisationRef
    client_id: str
    user_id: uuid.UUID | None
    role: Role | None
    scopes: frozenset[str]

    @property
    def organisation_id(self) -> uuid.UUID:
        return self.organisation.id

    @property
    def is_mgec(self) -> bool:
        return self.organisation.kind == MGEC_KIND

    @property
    def is_person(self) -> bool:
        return self.user_id is not None

    def has(self, scope: str) -> bool:
        return scope in self.scopes


class InsufficientScope(InsufficientScopeError):
    """403 with RFC 6750's `WWW-Authenticate: Bearer error="insufficient_scope", scope="..."`."""

    def __init__(self, needed: Iterable[str]) -> None:
        self.needed = " ".join(sorted(needed))
        super().__init__(description=f"The token holds none of the scopes this route needs: {self.needed}.")

    def get_headers(self) -> list[tuple[str, str]]:
        headers = super().get_headers()
        headers.append(("WWW-Authenticate", f'Bearer error="{self.error}", scope="{self.needed}", '
                                            f'error_description="{self.get_error_description()}"'))
        return headers


def current_actor() -> Actor:
    """The Actor of the current request; only inside a view guarded by require_scope()."""
    actor = g.get("actor")
    if actor is None:
        raise RuntimeError("current_actor() outside a route guarded by require_scope()")
    return actor


def authenticate() -> Actor:
    """Validate the request's bearer token (raises Authlib's OAuth2Error) and return its Actor."""
    return current_app.extensions["referral_api.authenticate"]()


def require_scope(scope: str | None = None, *, any_of: Iterable[str] | None = None) -> Callable:
    """Guard a view: a valid token holding `scope` (or, with `any_of`, at least one of those scopes).

    Exactly one of the two must be given, so that every route names what it needs; the marker
    `__required_scopes__` lets a test walk the URL map and prove it.
    """
    if (scope is None) == (any_of is None):
        raise TypeError("require_scope() takes exactly one of: a scope, or any_of=[scopes]")
    needed = frozenset([scope] if scope is not None else any_of or ())
    unknown = needed - ALL_SCOPES
    if not needed or unknown:
        raise ValueError(f"unknown scopes: {sorted(unknown)}" if unknown else "no scope named")

    def decorator(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            actor = authenticate()
            if not actor.scopes & needed:
                raise InsufficientScope(needed)
            g.actor = actor
            return fn(*args, **kwargs)

        wrapper.__required_scopes__ = needed  # type: ignore[attr-defined]
        return wrapper

    return decorator
