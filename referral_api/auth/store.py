"""Where Authlib meets the database: clients, tokens and their families, looked up by hash."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app, g, request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from .. import audit
from ..audit.actions import AuditAction
from ..db import get_session, utcnow
from ..organisations.models import Organisation, OrganisationKind
from ..validators import control_character
from . import client_cache, token_cache, trail
from .models import AuthorizationCode, Client, Token, User, secret_hash

REFRESH_TOKEN_TTL = timedelta(hours=12)


def issuer() -> str:
    """REFERRAL_API_ISSUER, or the URL the request came to (development)."""
    configured = current_app.config["SETTINGS"].issuer
    return (configured or request.host_url).rstrip("/")


def endpoint_url(path: str) -> str:
    return issuer() + path


def query_client(client_id: str) -> Client | None:
    """A client that may act now: not revoked, and its organisation not suspended."""
    # A client id from a form is checked on the way in (http.check_request_text); one from an
    # Authorization header is checked here: with a NUL, PostgreSQL would fail the query.
    if not isinstance(client_id, str) or len(client_id) > 64 or control_character(client_id):
        return None
    client = client_cache.lookup(client_id)
    if client is None:
        generation = token_cache.generation()  # before the rows are read: a change after it refuses the put
        client = get_session().scalar(_CLIENT_BY_ID, {"client_id": client_id})
        if client is None or client.is_revoked or not client.organisation.is_active:
            return None
        client_cache.remember(client, generation)
    g.log_client_id = client.client_id
    return client


# Built once: a statement made per request costs its construction and its cache key every time. Of the
# organisation its status and kind (what the grants read; a client's copy holds them, client_cache.py;
# the rest loads if anything asks for it on a client read from the session).
_CLIENT_BY_ID = (sa.select(Client).where(Client.client_id == sa.bindparam("client_id"))
                 .options(joinedload(Client.organisation).load_only(Organisation.status, Organisation.kind)))


def user_may_act(user: User | None, client: Client | None = None) -> bool:
    """Whether a person may act now, through `client` if given: see may_sign_in_through."""
    return user is not None and user.active and user.organisation.is_active and (
        client is None or may_sign_in_through(client, user))


def may_sign_in_through(client: Client, user: User) -> bool:
    """A person signs in through MGEC's own applications (the console, the docs) or an application of
    their own organisation, never another organisation's: its token would act as the person (a police
    system holding an MGEC coordinator's token reads every referral)."""
    return client.organisation_id == user.organisation_id or client.organisation.kind is OrganisationKind.MGEC


def save_token(token: dict[str, Any], oauth_request: Any) -> None:
    """Store a new token pair as hashes, in the family of the code or refresh token it came from."""
    session = get_session()
    code: AuthorizationCode | None = oauth_request.authorization_code
    previous: Token | None = oauth_request.refresh_token
    family_id, code_id = None, None
    if code is not None:
        family_id, code_id = uuid.uuid4(), code.id
    elif previous is not None:
        family_id, code_id = previous.family_id, previous.authorization_code_id
    now = utcnow()
    refresh = token.get("refresh_token")
    # A rotated refresh token keeps its family's deadline: 12 hours from the sign-in, however often
    # it is used (a session, or a stolen refresh token kept in use, signs in again with its TOTP then).
    refresh_until = previous.refresh_expires_at if previous is not None and previous.refresh_expires_at \
        else now + REFRESH_TOKEN_TTL
    row = {
        "id": uuid.uuid4(),  # set here: the INSERT needs no RETURNING
        "access_token_hash": secret_hash(token["access_token"]),
        "refresh_token_hash": secret_hash(refresh) if refresh else None,
        "client_pk": oauth_request.client.id,
        "user_id": oauth_request.user.id if oauth_request.user else None,
        "authorization_code_id": code_id,
        "family_id": family_id,
        "scope": token.get("scope", ""),
        "issued_at": now,
        "expires_in": int(token["expires_in"]),
        "refresh_expires_at": refresh_until if refresh else None,
        "dpop_jkt": getattr(oauth_request, "dpop_jkt", None),
    }
    # Nobody reads the new row back in this request: a Core INSERT, sent with the audit event and the
    # COMMIT (no unit of work, no round trip of its own). A client copied earlier (client_cache.py) must
    # still be as copied when the row is written.
    copied = client_cache.used() is not None
    if copied:
        audit.send_with_commit(session, client_cache.guarded_insert(tuple(row)),
                               {**row, **client_cache.guard_values(oauth_request.client)})
    else:
        audit.send_with_commit(session, _INSERT_TOKEN, row)
    action = AuditAction.AUTH_TOKEN_REFRESH if previous is not None else AuditAction.AUTH_TOKEN_ISSUE
    trail.record(session, action, resource_type="token", resource_id=row["id"], client=oauth_request.client,
                 user=oauth_request.user, with_commit=True,
                 details={"grant_type": oauth_request.payload.grant_type, "scope": row["scope"],
                          "dpop": row["dpop_jkt"] is not None})
    try:
        audit.commit_pipelined(session)
    except IntegrityError as error:
        if copied and client_cache.refused_by_guard(error):
            raise client_cache.StaleClient from None
        raise


_INSERT_TOKEN = Token.__table__.insert()


def revoke_family(session: Any, *, family_id: uuid.UUID | None = None,
                  code_id: uuid.UUID | None = None) -> None:
    """Revoke every token of a family, or issued from a code: the answer to a replayed credential."""
    now = utcnow()
    where = Token.family_id == family_id if family_id is not None else Token.authorization_code_id == code_id
    for token in session.scalars(sa.select(Token).where(where)):
        token.revoke(now)
    session.commit()


def query_token(token_string: str, hint: str | None) -> tuple[Token | None, str]:
    """The stored token matching a presented access or refresh token, and which of the two it was."""
    session = get_session()
    digest = secret_hash(token_string)
    order = ["access_token", "refresh_token"]
    if hint == "refresh_token":
        order.reverse()
    for kind in order:
        column = Token.access_token_hash if kind == "access_token" else Token.refresh_token_hash
        row = session.scalar(sa.select(Token).where(column == digest))
        if row is not None:
            return row, kind
    return None, ""


def token_is_live(token: Token, kind: str = "access_token") -> bool:
    """Whether a token may still be used: not expired or revoked, and its client, person and
    organisation may still act."""
    now = utcnow()
    if kind == "refresh_token":
        expires = token.refresh_expires_at
        if token.refresh_revoked_at is not None or expires is None or expires <= now:
            return False
    elif token.access_revoked_at is not None or token.expires_at <= now:
        return False
    client = token.client
    if client.is_revoked or not client.organisation.is_active:
        return False
    return token.user_id is None or user_may_act(token.user, client)
