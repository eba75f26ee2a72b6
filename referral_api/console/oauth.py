"""The console as a first-party OAuth client of this same service.

Its code exchange and refreshes go through Authlib's own grants of the running authorization server
(a request built in-process, never HTTP to ourselves), so PKCE, code claiming, refresh rotation and
client authentication are the token endpoint's. The client authenticates with client_secret_post; its
secret is derived from the console key, so it is never stored or typed anywhere.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import sqlalchemy as sa
from flask import current_app, request
from sqlalchemy.orm import Session
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from ..access import ALL_SCOPES
from ..auth.models import Client, ClientAuthMethod, secret_hash
from ..auth.services import add_redirect_uris, create_client
from ..errors import InvalidPayload
from ..organisations import services as org_services
from ..organisations.models import Organisation, OrganisationKind
from ..privacy import get_privacy

CLIENT_NAME = "MGEC console"
GRANT_TYPES = ["authorization_code", "refresh_token"]


class ExchangeFailed(Exception):
    """The token endpoint refused the code or the refresh token (expired, replayed, revoked)."""


def console_key() -> bytes:
    """The console's secret: derived from the index key under a label of its own (domain separation)."""
    return hmac.new(get_privacy().index_key, b"referral-api console v1", hashlib.sha256).digest()


def derive(purpose: str, value: str | bytes) -> bytes:
    """HMAC-SHA256 of `value` for one `purpose` under the console key."""
    raw = value.encode() if isinstance(value, str) else value
    return hmac.new(console_key(), purpose.encode() + b"\x00" + raw, hashlib.sha256).digest()


def client_secret(client_id: str) -> str:
    return derive("client-secret", client_id).hex()


def find_client(session: Session) -> Client | None:
    """MGEC's console client, if registered and not revoked: by its name among MGEC's own clients (a
    partner's client given the same name is never taken for it, nor has its secret replaced)."""
    return session.scalar(
        sa.select(Client)
        .join(Organisation, Organisation.id == Client.organisation_id)
        .where(Client.name == CLIENT_NAME, Client.revoked_at.is_(None),
               Organisation.kind == OrganisationKind.MGEC)
        .order_by(Client.created_at)
    )


def register_client(session: Session, *, redirect_uris: list[str]) -> Client:
    """Register the console client of MGEC, or add redirect URIs to the existing one (idempotent)."""
    mgec = org_services.mgec(session)
    if mgec is None:
        raise InvalidPayload(errors={"organisation": ["create MGEC's organisation first"]})
    client = find_client(session)
    if client is None:
        client = create_client(
            session,
            organisation=str(mgec.id),
            name=CLIENT_NAME,
            scopes=sorted(ALL_SCOPES),
            grant_types=GRANT_TYPES,
            redirect_uris=redirect_uris,
            auth_method=ClientAuthMethod.CLIENT_SECRET_POST,
        ).client
    else:
        add_redirect_uris(session, client, redirect_uris)
    # The random secret create_client() made is dropped: the console derives its own.
    client.client_secret_hash = secret_hash(client_secret(client.client_id))
    session.commit()
    return client


def _token_request(form: dict[str, str]) -> dict[str, Any]:
    server = current_app.extensions["referral_api.oauth_server"]
    from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Request
    from authlib.oauth2 import OAuth2Error

    builder = EnvironBuilder(method="POST", path="/oauth/token", base_url=request.host_url, data=form)
    try:
        oauth_request = FlaskOAuth2Request(Request(builder.get_environ()))
    finally:
        builder.close()
    try:
        grant = server.get_token_grant(oauth_request)
        grant.validate_token_request()
        status, body, _headers = grant.create_token_response()
    except OAuth2Error as error:
        raise ExchangeFailed(error.error) from None
    if status != 200:
        raise ExchangeFailed(str(status))
    return body


def exchange_code(client: Client, *, code: str, verifier: str, redirect_uri: str) -> dict[str, Any]:
    """The token pair for an authorization code (PKCE verifier and redirect URI as sent)."""
    return _token_request(
        {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": redirect_uri,
            "client_id": client.client_id,
            "client_secret": client_secret(client.client_id),
        }
    )


def refresh(client: Client, refresh_token: str) -> dict[str, Any]:
    """A new token pair for a refresh token (rotated by the grant)."""
    return _token_request(
        {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": client.client_id,
            "client_secret": client_secret(client.client_id),
        }
    )
