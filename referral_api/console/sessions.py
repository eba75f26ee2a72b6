"""Console sessions: sign-in with the authorization code and PKCE, idle timeout, refresh, sign-out.

The browser's cookie holds a random value; the table holds its SHA-256, the user, a reference to the
token row and the refresh token sealed under a key derived from the cookie. The OAuth state and the
PKCE verifier are derived from the cookie too, so nothing of the pending sign-in is stored in plain.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.orm import Session

from ..access import Actor
from ..auth.models import Token, secret_hash
from ..auth.server import actor_of
from ..auth.store import token_is_live
from ..db import utcnow
from ..validators import same_secret
from . import oauth
from .models import ConsoleSession

PENDING_TTL = timedelta(minutes=10)


class SignInFailed(Exception):
    """The callback does not belong to a sign-in this browser started, or the code was refused."""


@dataclass(frozen=True)
class Current:
    """The signed-in person of one request."""

    row: ConsoleSession
    actor: Actor
    cookie: str


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def oauth_state(cookie: str) -> str:
    return _b64(oauth.derive("state", cookie))


def pkce_verifier(cookie: str) -> str:
    return _b64(oauth.derive("pkce", cookie))


def pkce_challenge(cookie: str) -> str:
    return _b64(hashlib.sha256(pkce_verifier(cookie).encode()).digest())


def _seal(cookie: str, refresh_token: str) -> bytes:
    nonce = secrets.token_bytes(12)
    return nonce + AESGCM(oauth.derive("seal", cookie)).encrypt(nonce, refresh_token.encode(), None)


def _unseal(cookie: str, sealed: bytes) -> str | None:
    try:
        return AESGCM(oauth.derive("seal", cookie)).decrypt(sealed[:12], sealed[12:], None).decode()
    except (InvalidTag, ValueError):
        return None


def _find(session: Session, cookie: str | None) -> ConsoleSession | None:
    if not cookie or len(cookie) > 100:
        return None
    return session.scalar(sa.select(ConsoleSession).where(ConsoleSession.session_hash == secret_hash(cookie)))


def start(session: Session, *, language: str) -> str:
    """A pending sign-in; returns the cookie value (state and PKCE derive from it)."""
    cookie = secrets.token_urlsafe(32)
    # Sign-ins abandoned at the login form are of no use to anyone: drop them as new ones start.
    session.execute(
        sa.delete(ConsoleSession).where(
            ConsoleSession.user_id.is_(None), ConsoleSession.created_at < utcnow() - PENDING_TTL
        )
    )
    session.add(ConsoleSession(session_hash=secret_hash(cookie), language=language))
    session.commit()
    return cookie


def _hold(session: Session, row: ConsoleSession, cookie: str, tokens: dict) -> None:
    token = session.scalar(
        sa.select(Token).where(Token.access_token_hash == secret_hash(tokens["access_token"]))
    )
    if token is None:  # pragma: no cover - save_token() stored it in this same session
        raise SignInFailed("token not stored")
    row.user_id, row.token_id = token.user_id, token.id
    row.sealed_refresh_token = _seal(cookie, tokens["refresh_token"]) if tokens.get("refresh_token") else None


def finish(session: Session, cookie: str | None, *, code: str, state: str, redirect_uri: str) -> str:
    """Exchange the code for this browser's pending sign-in; returns the new cookie (rotated)."""
    row = _find(session, cookie)
    if (
        row is None
        or row.user_id is not None
        or row.ended_at is not None
        or row.created_at + PENDING_TTL < utcnow()
        or not same_secret(state, oauth_state(cookie))
    ):
        raise SignInFailed("no such pending sign-in")
    client = oauth.find_client(session)
    if client is None:
        raise SignInFailed("console client not registered")
    try:
        tokens = oauth.exchange_code(
            client, code=code, verifier=pkce_verifier(cookie), redirect_uri=redirect_uri
        )
    except oauth.ExchangeFailed as failed:
        row.ended_at = utcnow()  # a pending sign-in is tried once: a junk code ends it
        session.commit()
        raise SignInFailed(str(failed)) from None
    fresh = secrets.token_urlsafe(32)  # a new id after sign-in: a planted cookie gains nothing
    row.session_hash = secret_hash(fresh)
    _hold(session, row, fresh, tokens)
    row.last_seen_at = utcnow()
    session.commit()
    return fresh


def end(session: Session, row: ConsoleSession) -> None:
    """Sign out: the token (and its refresh token) revoked server-side, the session ended."""
    now = utcnow()
    if row.token_id is not None:
        token = session.get(Token, row.token_id)
        if token is not None:
            token.revoke(now)
    row.ended_at = row.ended_at or now
    row.sealed_refresh_token = None
    session.commit()


class Expired(Exception):
    """The session was idle too long, or its token can no longer be used."""


# pg_advisory_lock(class, key) of a console session's refresh ("cons" in ASCII; the two-key form is a
# key space apart from the audit chain's one-key lock)
_REFRESH_LOCK_CLASS = 0x636F6E73


@contextmanager
def _one_refresh_at_a_time(session: Session, row: ConsoleSession) -> Iterator[None]:
    """Two requests of one session (two tabs, a double click) find its token expired together: the
    second waits for the first's refresh and then uses its token. Presenting the refresh token the
    first spent would be a replay, which revokes the family and signs the person out. PostgreSQL: an
    advisory lock on a connection of its own, since the refresh grant commits on the request's; SQLite
    has one writer at a time."""
    engine = session.get_bind().engine
    if engine.dialect.name != "postgresql":
        yield
        return
    key = int.from_bytes(row.id.bytes[:4], "big", signed=True)
    with engine.connect() as lock:
        lock.execute(sa.select(sa.func.pg_advisory_lock(_REFRESH_LOCK_CLASS, key)))
        try:
            yield
        finally:
            lock.execute(sa.select(sa.func.pg_advisory_unlock(_REFRESH_LOCK_CLASS, key)))
            lock.commit()


def _held_token(session: Session, row: ConsoleSession, *, reread: bool = False) -> Token | None:
    """The session's token while it may be used (`reread`: from the database, not the session's copy)."""
    token = session.get(Token, row.token_id, populate_existing=reread) if row.token_id else None
    return token if token is not None and token_is_live(token) else None


def _live_token(session: Session, row: ConsoleSession, cookie: str) -> Token | None:
    token = _held_token(session, row)
    if token is not None:
        return token
    with _one_refresh_at_a_time(session, row):
        session.refresh(row)  # another request of the session may have refreshed while this one waited
        token = _held_token(session, row, reread=True)
        if token is not None:
            return token
        refresh_token = _unseal(cookie, row.sealed_refresh_token) if row.sealed_refresh_token else None
        client = oauth.find_client(session)
        if refresh_token is None or client is None:
            return None
        try:
            tokens = oauth.refresh(client, refresh_token)
        except oauth.ExchangeFailed:
            return None
        _hold(session, row, cookie, tokens)
        session.commit()  # the new token is the session's before the next request may look
        return session.get(Token, row.token_id)


def current(session: Session, cookie: str | None, *, idle: timedelta) -> Current | None:
    """The signed-in session of this cookie, touched; None without one; Expired when it lapsed."""
    row = _find(session, cookie)
    if row is None or not row.signed_in:
        return None
    now = utcnow()
    if row.last_seen_at + idle < now:
        end(session, row)
        raise Expired
    token = _live_token(session, row, cookie)
    if token is None:
        end(session, row)
        raise Expired
    row.last_seen_at = now
    session.commit()
    return Current(row=row, actor=actor_of(token), cookie=cookie)
