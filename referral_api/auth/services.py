"""Use cases on OAuth clients and people: create, list, revoke, rotate, deactivate, log in."""

from __future__ import annotations

import contextlib
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any, Protocol

import pyotp
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from .. import audit
from ..access import ALL_SCOPES, TOTP_ROLES, Role
from ..audit.actions import AuditAction, Outcome
from ..db import utcnow
from ..errors import Conflict, InvalidPayload, NotFound
from ..organisations import services as org_services
from . import trail
from .models import (
    GRANT_TYPES,
    SECRET_METHODS,
    Client,
    ClientAuthMethod,
    Token,
    User,
    secret_hash,
)

# Failures from one address that lock the account for it; as many from anywhere slow the account.
MAX_FAILED_LOGINS = 5
LOCK_DURATION = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 12
TOTP_ISSUER = "MGEC referral API"

_hasher = PasswordHasher()
# Verified against when the e-mail is unknown, so that the answer takes as long either way.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


# ---------------------------------------------------------------- clients


@dataclass(frozen=True)
class IssuedClient:
    client: Client
    client_secret: str | None


def _check_jwks(jwks: str | None) -> None:
    if jwks is None:
        return
    from joserfc.jwk import KeySet

    try:
        key_set = KeySet.import_key_set(json.loads(jwks))
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidPayload(errors={"jwks": [f"not a JSON Web Key Set: {type(exc).__name__}"]}) from None
    if any(key.is_private for key in key_set.keys):
        raise InvalidPayload(errors={"jwks": ["contains a private key; register the public keys only"]})
    if any(key.key_type == "oct" for key in key_set.keys):
        raise InvalidPayload(errors={"jwks": ["symmetric keys are refused; use RSA, EC or OKP keys"]})


def _client_problems(*, scopes: list[str], grant_types: list[str], redirect_uris: list[str],
                     auth_method: ClientAuthMethod, jwks: str | None, jwks_uri: str | None,
                     require_private_key_jwt: bool) -> dict[str, list[str]]:
    """What is wrong with a client's registration, by field (empty when nothing is)."""
    problems: dict[str, list[str]] = {}
    if unknown := sorted(set(scopes) - ALL_SCOPES):
        problems["scopes"] = [f"unknown scopes: {' '.join(unknown)}"]
    if not scopes:
        problems["scopes"] = ["name at least one scope"]
    if unknown := sorted(set(grant_types) - set(GRANT_TYPES)):
        problems["grant_types"] = [f"unsupported grant types: {' '.join(unknown)}"]
    if "authorization_code" in grant_types and not redirect_uris:
        problems["redirect_uris"] = ["an authorization_code client needs at least one redirect URI"]
    for uri in redirect_uris:
        if not uri.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            problems.setdefault("redirect_uris", []).append(f"{uri!r} must be https (or loopback http)")
    if auth_method is ClientAuthMethod.PRIVATE_KEY_JWT:
        if bool(jwks) == bool(jwks_uri):
            problems["jwks"] = ["private_key_jwt needs exactly one of a JWKS or a JWKS URI"]
        if jwks_uri and not jwks_uri.startswith("https://"):
            problems["jwks_uri"] = ["must be an https:// URL"]
    elif require_private_key_jwt:
        problems["auth_method"] = ["this deployment requires private_key_jwt (OAUTH_REQUIRE_PRIVATE_KEY_JWT)"]
    elif jwks or jwks_uri:
        problems["jwks"] = ["a JWKS is only for private_key_jwt clients"]
    return problems


def create_client(
    session: Session,
    *,
    organisation: str,
    name: str,
    scopes: list[str],
    grant_types: list[str] | None = None,
    redirect_uris: list[str] | None = None,
    auth_method: ClientAuthMethod = ClientAuthMethod.CLIENT_SECRET_BASIC,
    jwks: str | None = None,
    jwks_uri: str | None = None,
    require_private_key_jwt: bool = False,
) -> IssuedClient:
    """Register a client of `organisation` (id or name); a secret client's secret is returned once."""
    org = org_services.find(session, organisation)
    grant_types = grant_types or ["client_credentials"]
    redirect_uris = redirect_uris or []
    problems = _client_problems(scopes=scopes, grant_types=grant_types, redirect_uris=redirect_uris,
                                auth_method=auth_method, jwks=jwks, jwks_uri=jwks_uri,
                                require_private_key_jwt=require_private_key_jwt)
    if problems:
        raise InvalidPayload(errors=problems)
    _check_jwks(jwks)

    secret = secrets.token_urlsafe(32) if auth_method in SECRET_METHODS else None
    client = Client(
        client_id="cl_" + secrets.token_urlsafe(18),
        name=name,
        organisation_id=org.id,
        client_secret_hash=secret_hash(secret) if secret else None,
        token_endpoint_auth_method=auth_method,
        jwks=jwks,
        jwks_uri=jwks_uri,
        scope=" ".join(sorted(set(scopes))),
        grant_types=" ".join(g for g in GRANT_TYPES if g in grant_types),
        redirect_uris=" ".join(redirect_uris),
    )
    session.add(client)
    session.flush()
    trail.record(session, AuditAction.AUTH_CLIENT_CREATE, resource_type="client", resource_id=client.id,
                 details={"client_id": client.client_id, "organisation_id": org.id,
                          "auth_method": auth_method.value, "scope": client.scope,
                          "grant_types": client.grant_types})
    session.commit()
    return IssuedClient(client, secret)


def find_client(session: Session, client_id: str) -> Client:
    client = session.scalar(sa.select(Client).where(Client.client_id == client_id))
    if client is None:
        raise NotFound(f"No client with client_id {client_id!r}.")
    return client


def list_clients(session: Session, *, organisation: str | None = None) -> list[Client]:
    query = sa.select(Client).order_by(Client.created_at, Client.client_id)
    if organisation:
        query = query.where(Client.organisation_id == org_services.find(session, organisation).id)
    return list(session.scalars(query))


def _revoke_tokens(session: Session, where: Any) -> None:
    now = utcnow()
    session.execute(sa.update(Token).where(where, Token.access_revoked_at.is_(None))
                    .values(access_revoked_at=now))
    session.execute(sa.update(Token).where(where, Token.refresh_token_hash.is_not(None),
                                           Token.refresh_revoked_at.is_(None))
                    .values(refresh_revoked_at=now))


def revoke_client(session: Session, client_id: str) -> Client:
    """Revoke a client: it cannot authenticate, and its tokens stop working at the next request."""
    client = find_client(session, client_id)
    client.revoked_at = client.revoked_at or utcnow()
    _revoke_tokens(session, Token.client_pk == client.id)
    trail.record(session, AuditAction.AUTH_CLIENT_REVOKE, resource_type="client", resource_id=client.id,
                 details={"client_id": client.client_id})
    session.commit()
    return client


def rotate_secret(session: Session, client_id: str) -> IssuedClient:
    """Give a secret client a new secret (shown once); the old one stops working at once."""
    client = find_client(session, client_id)
    if client.token_endpoint_auth_method not in SECRET_METHODS:
        raise Conflict("This client authenticates with private_key_jwt; it has no secret to rotate.")
    if client.is_revoked:
        raise Conflict("This client is revoked.")
    secret = secrets.token_urlsafe(32)
    client.client_secret_hash = secret_hash(secret)
    trail.record(session, AuditAction.AUTH_CLIENT_ROTATE_SECRET, resource_type="client",
                 resource_id=client.id, details={"client_id": client.client_id})
    session.commit()
    return IssuedClient(client, secret)


# ---------------------------------------------------------------- people


@dataclass(frozen=True)
class IssuedUser:
    user: User
    totp_uri: str | None


def _totp_uri(user: User, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=TOTP_ISSUER)


def create_user(
    session: Session, *, organisation: str, email: str, role: Role, password: str, name: str = ""
) -> IssuedUser:
    """Create a person; for roles with a second factor, the TOTP provisioning URI is returned once."""
    org = org_services.find(session, organisation)
    email = email.strip().lower()
    problems: dict[str, list[str]] = {}
    if "@" not in email or len(email) > 254:
        problems["email"] = ["not an e-mail address"]
    if len(password) < MIN_PASSWORD_LENGTH:
        problems["password"] = [f"at least {MIN_PASSWORD_LENGTH} characters"]
    if role in TOTP_ROLES or role is Role.MGEC_CASEWORKER:
        if org.kind.value != "mgec":
            problems["role"] = [f"{role.value} is for people of MGEC"]
    elif org.kind.value == "mgec":
        problems["role"] = [f"{role.value} is for people of partner organisations"]
    if problems:
        raise InvalidPayload(errors=problems)
    if session.scalar(sa.select(User.id).where(User.email == email)):
        raise Conflict(f"A user with e-mail {email!r} exists already.", errors={"email": ["taken"]})
    totp_secret = pyotp.random_base32() if role in TOTP_ROLES else None
    user = User(organisation_id=org.id, email=email, name=name, role=role,
                password_hash=_hasher.hash(password), totp_secret=totp_secret)
    session.add(user)
    session.flush()
    trail.record(session, AuditAction.AUTH_USER_CREATE, resource_type="user", resource_id=user.id,
                 details={"organisation_id": org.id, "role": role.value})
    if totp_secret:
        _audit_enrol(session, user)
    session.commit()
    return IssuedUser(user, _totp_uri(user, totp_secret) if totp_secret else None)


def _audit_enrol(session: Session, user: User) -> None:
    trail.record(session, AuditAction.AUTH_TOTP_ENROL, resource_type="user", resource_id=user.id,
                 details={"role": user.role.value})


def find_user(session: Session, ref: str) -> User:
    """A user by id or e-mail."""
    user = None
    with contextlib.suppress(ValueError):
        user = session.get(User, uuid.UUID(ref))
    if user is None:
        user = session.scalar(sa.select(User).where(User.email == ref.strip().lower()))
    if user is None:
        raise NotFound(f"No user with id or e-mail {ref!r}.")
    return user


def deactivate_user(session: Session, ref: str) -> User:
    """Deactivate a person: their tokens stop working at the next request."""
    user = find_user(session, ref)
    user.active = False
    _revoke_tokens(session, Token.user_id == user.id)
    trail.record(session, AuditAction.AUTH_USER_DEACTIVATE, resource_type="user", resource_id=user.id)
    session.commit()
    return user


def reset_totp(session: Session, ref: str) -> IssuedUser:
    """A new TOTP secret for a person (the old one stops working); the URI is returned once."""
    user = find_user(session, ref)
    if user.role not in TOTP_ROLES:
        raise Conflict(f"People of role {user.role.value} log in without a TOTP code.")
    user.totp_secret = pyotp.random_base32()
    user.totp_last_step = None
    _audit_enrol(session, user)
    session.commit()
    return IssuedUser(user, _totp_uri(user, user.totp_secret))


class LoginFailed(Exception):
    """Wrong e-mail, password or code, or the account cannot log in; `reason` is for the log only."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _check_totp(user: User, code: str, now: datetime) -> bool:
    if not user.totp_secret:
        return False
    totp = pyotp.TOTP(user.totp_secret)
    code = code.strip().replace(" ", "")
    for offset in (0, -1, 1):
        at = now + timedelta(seconds=offset * totp.interval)
        step = totp.timecode(at)
        if secrets.compare_digest(totp.at(at), code) and (user.totp_last_step or -1) < step:
            user.totp_last_step = step  # a code is accepted once
            return True
    return False


def _audit_login(session: Session, user: User | None, action: AuditAction, outcome: Outcome,
                 reason: str | None = None) -> None:
    """Audit a login attempt; who is the person (never the e-mail typed), what, why it failed."""
    actor = SimpleNamespace(organisation_id=user.organisation_id, user_id=user.id) if user else None
    audit.record(session, actor=actor, action=action, resource_type="user",
                 resource_id=user.id if user else None, outcome=outcome,
                 details={"reason": reason} if reason else None)


def _refuse(session: Session, user: User | None, reason: str, *, locked: bool = False) -> LoginFailed:
    """Audit a refused login (and a lock it caused), commit, and return the error to raise."""
    _audit_login(session, user, AuditAction.AUTH_LOGIN_FAIL, Outcome.DENIED, reason)
    if locked:
        _audit_login(session, user, AuditAction.AUTH_ACCOUNT_LOCK, Outcome.SUCCESS, "repeated failures")
    session.commit()
    return LoginFailed(reason)


class LoginGuard(Protocol):
    """Failures per (account, address): see failures.LoginGuard."""

    def locked(self, user_id: Any) -> bool: ...
    def failed(self, user_id: Any) -> bool: ...
    def succeeded(self, user_id: Any) -> None: ...
    def slow_down(self) -> None: ...


def _password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def login(session: Session, *, email: str, password: str, guard: LoginGuard, totp_code: str = "") -> User:
    """Check a person's password (and TOTP where the role needs it).

    MAX_FAILED_LOGINS failures from one address lock the account for that address (`guard`); as many
    from anywhere only slow the account down (`locked_until`), so no one can lock a person out.
    Unknown, locked and known accounts cost one password hash each: the time tells nothing. Every
    attempt is an audit event, committed either way; every failure raises the same LoginFailed.
    """
    now = utcnow()
    user = session.scalar(sa.select(User).where(User.email == email.strip().lower()))
    if user is not None and user.is_locked(now):
        guard.slow_down()
    address_locked = user is not None and guard.locked(user.id)
    usable = user is not None and not address_locked
    password_ok = _password_matches(user.password_hash if usable else _DUMMY_HASH, password) and usable
    if user is None:
        raise _refuse(session, None, "unknown e-mail")
    if address_locked:
        raise _refuse(session, user, "account locked")
    second_factor_ok = user.role not in TOTP_ROLES or (password_ok and _check_totp(user, totp_code, now))
    if not (password_ok and second_factor_ok):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until = now + LOCK_DURATION
        reason = "wrong password" if not password_ok else "wrong TOTP code"
        raise _refuse(session, user, reason, locked=guard.failed(user.id))
    if not user.active or not user.organisation.is_active:
        raise _refuse(session, user, "user deactivated or organisation suspended")
    user.failed_logins = 0
    user.locked_until = None
    guard.succeeded(user.id)
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    _audit_login(session, user, AuditAction.AUTH_LOGIN_SUCCEED, Outcome.SUCCESS)
    session.commit()
    return user
