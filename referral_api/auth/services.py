"""Use cases on OAuth clients and people: create, list, revoke, rotate, deactivate, log in."""

from __future__ import annotations

import contextlib
import secrets
import unicodedata
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
from sqlalchemy.orm.attributes import set_committed_value

from .. import audit
from ..access import TOTP_ROLES, Role
from ..audit.actions import AuditAction, Outcome
from ..db import utcnow
from ..errors import Conflict, InvalidPayload, NotFound
from ..organisations import services as org_services
from ..organisations.models import Organisation
from ..validators import one_line_problems, same_secret
from . import trail
from .clients import (  # noqa: F401  (the clients' use cases, kept importable from here)
    IssuedClient,
    add_redirect_uris,
    create_client,
    find_client,
    list_clients,
    revoke_client,
    revoke_tokens,
    rotate_secret,
)
from .models import (
    Token,
    User,
)

# Failures from one address that lock the account for it; as many from anywhere slow the account.
MAX_FAILED_LOGINS = 5
LOCK_DURATION = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 12
TOTP_ISSUER = "MGEC referral API"

_hasher = PasswordHasher()
# Verified against when the e-mail is unknown, so that the answer takes as long either way.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))




# ---------------------------------------------------------------- people


@dataclass(frozen=True)
class IssuedUser:
    user: User
    totp_uri: str | None


def _totp_uri(user: User, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=TOTP_ISSUER)


def needs_totp(role: Role, organisation: Organisation) -> bool:
    """Whether a person must log in with a TOTP code: MGEC's admins and coordinators, and the officers of
    an organisation that requires it (every embassy; others as an admin sets it)."""
    return role in TOTP_ROLES or (role is Role.PARTNER_OFFICER and organisation.requires_totp)


def create_user(
    session: Session,
    *,
    organisation: str,
    email: str,
    role: Role,
    password: str,
    name: str = "",
    totp: bool = False,
    actor: Any = None,
) -> IssuedUser:
    """Create a person; with a second factor (needs_totp(), or `totp` asked for a partner officer), the
    TOTP provisioning URI is returned once."""
    org = org_services.find(session, organisation)
    email = email.strip().lower()
    problems: dict[str, list[str]] = {}
    if "@" not in email or len(email) > 254:
        problems["email"] = ["not an e-mail address"]
    if len(password) < MIN_PASSWORD_LENGTH:
        problems["password"] = [f"at least {MIN_PASSWORD_LENGTH} characters"]
    if name_problems := one_line_problems(name, max_len=User.__table__.c.name.type.length, required=False):
        problems["name"] = name_problems
    if role in TOTP_ROLES or role is Role.MGEC_CASEWORKER:
        if org.kind.value != "mgec":
            problems["role"] = [f"{role.value} is for people of MGEC"]
    elif org.kind.value == "mgec":
        problems["role"] = [f"{role.value} is for people of partner organisations"]
    if problems:
        raise InvalidPayload(errors=problems)
    taken = Conflict(f"A user with e-mail {email!r} exists already.", errors={"email": ["taken"]})
    if session.scalar(sa.select(User.id).where(User.email == email)):
        raise taken
    with_totp = needs_totp(role, org) or (totp and role is Role.PARTNER_OFFICER)
    totp_secret = pyotp.random_base32() if with_totp else None
    user = User(organisation_id=org.id, email=email, name=name, role=role,
                password_hash=_hasher.hash(password), totp_secret=totp_secret)
    session.add(user)
    try:
        session.flush()
    except sa.exc.IntegrityError:  # created at the same moment by someone else: their commit won
        session.rollback()
        if session.scalar(sa.select(User.id).where(User.email == email)):
            raise taken from None
        raise
    trail.record(session, AuditAction.AUTH_USER_CREATE, resource_type="user", resource_id=user.id,
                 details={"organisation_id": org.id, "role": role.value}, actor=actor)
    if totp_secret:
        _audit_enrol(session, user, actor)
    session.commit()
    return IssuedUser(user, _totp_uri(user, totp_secret) if totp_secret else None)


def _audit_enrol(session: Session, user: User, actor: Any = None) -> None:
    trail.record(session, AuditAction.AUTH_TOTP_ENROL, resource_type="user", resource_id=user.id,
                 details={"role": user.role.value}, actor=actor)


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


def list_users(session: Session) -> list[User]:
    """Every person, by organisation and e-mail (the admins' page)."""
    return list(session.scalars(sa.select(User).order_by(User.organisation_id, User.email)))


def deactivate_user(session: Session, ref: str, *, actor: Any = None) -> User:
    """Deactivate a person: their tokens stop working within TOKEN_CACHE_SECONDS
    (default 5 s)."""
    user = find_user(session, ref)
    user.active = False
    revoke_tokens(session, Token.user_id == user.id)
    trail.record(session, AuditAction.AUTH_USER_DEACTIVATE, resource_type="user", resource_id=user.id,
                 actor=actor)
    session.commit()
    return user


def reset_password(session: Session, ref: str) -> str:
    """A new random password for a person, returned once; the old one stops working and the person's
    tokens are revoked (whoever knew the old password may hold one)."""
    user = find_user(session, ref)
    password = secrets.token_urlsafe(12)
    user.password_hash = _hasher.hash(password)
    revoke_tokens(session, Token.user_id == user.id)
    trail.record(session, AuditAction.AUTH_USER_RESET_PASSWORD, resource_type="user", resource_id=user.id)
    session.commit()
    return password


def reset_totp(session: Session, ref: str, *, actor: Any = None) -> IssuedUser:
    """A new TOTP secret for a person (the old one stops working) and their tokens revoked (a reset
    follows a lost or taken phone: a sign-in made with it ends too, as after a password reset); the
    URI is returned once."""
    user = find_user(session, ref)
    if not (user.totp_secret or needs_totp(user.role, user.organisation)):
        raise Conflict(f"This {user.role.value} logs in without a TOTP code.")
    user.totp_secret = pyotp.random_base32()
    user.totp_last_step = None
    revoke_tokens(session, Token.user_id == user.id)
    _audit_enrol(session, user, actor)
    session.commit()
    return IssuedUser(user, _totp_uri(user, user.totp_secret))


class LoginFailed(Exception):
    """Wrong e-mail, password or code, or the account cannot log in; `reason` is for the log only.

    `totp_reused`: the password was right and the code too, but it was used already (the page says
    so: only someone who knows the password learns it)."""

    def __init__(self, reason: str, *, totp_reused: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.totp_reused = totp_reused


TOTP_REUSED = "reused TOTP code"


def _check_totp(session: Session, user: User, code: str, now: datetime) -> bool:
    """Whether the code is good (and now spent)."""
    return _totp_problem(session, user, code, now) is None


def _totp_problem(session: Session, user: User, code: str, now: datetime) -> str | None:
    """None when the code is good (and now spent), else why not: wrong, or TOTP_REUSED."""
    if not user.totp_secret:
        return "no TOTP secret"
    totp = pyotp.TOTP(user.totp_secret)
    # full-width digits (a phone's East Asian keyboard) are the same digits
    code = unicodedata.normalize("NFKC", code).strip().replace(" ", "")
    for offset in (0, -1, 1):
        at = now + timedelta(seconds=offset * totp.interval)
        step = totp.timecode(at)
        if same_secret(code, totp.at(at)):
            return None if _spend_totp_step(session, user, step) else TOTP_REUSED
    return "wrong TOTP code"


def _spend_totp_step(session: Session, user: User, step: int) -> bool:
    """Mark the step used, in one conditional UPDATE: of two logins with one code at the same moment,
    the second waits for the first's row lock and then finds the step spent (a code works once; a
    check of the loaded row and a later write let both through)."""
    spent = session.execute(
        sa.update(User)
        .where(User.id == user.id, sa.or_(User.totp_last_step.is_(None), User.totp_last_step < step))
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    if spent.rowcount != 1:
        return False
    set_committed_value(user, "totp_last_step", step)
    return True


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

    def attempt(self, user_id: Any) -> bool: ...
    def locked(self, user_id: Any) -> bool: ...
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
    address_locked = user is not None and not guard.attempt(user.id)  # counted before the hash is checked
    usable = user is not None and not address_locked
    password_ok = _password_matches(user.password_hash if usable else _DUMMY_HASH, password) and usable
    if user is None:
        raise _refuse(session, None, "unknown e-mail")
    if address_locked:
        raise _refuse(session, user, "account locked")
    # Enrolled people always give a code; a role or an embassy that needs one cannot skip enrolment.
    required = bool(user.totp_secret) or needs_totp(user.role, user.organisation)
    totp_problem = _totp_problem(session, user, totp_code, now) if password_ok and required else None
    if not password_ok or totp_problem:
        # counted in the database (two failures at the same moment are two)
        user.failed_logins = User.failed_logins + 1
        session.flush()
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until = now + LOCK_DURATION
        reason = totp_problem or "wrong password"
        locked = guard.locked(user.id)  # this failure (counted as an attempt) filled the window
        failure = _refuse(session, user, reason, locked=locked)
        failure.totp_reused = (reason == TOTP_REUSED and not locked and user.active
                               and user.organisation.is_active)
        raise failure
    guard.succeeded(user.id)  # the right password (and code): not a failure of the pair
    if not user.active or not user.organisation.is_active:
        raise _refuse(session, user, "user deactivated or organisation suspended")
    user.failed_logins = 0
    user.locked_until = None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    _audit_login(session, user, AuditAction.AUTH_LOGIN_SUCCEED, Outcome.SUCCESS)
    session.commit()
    return user
