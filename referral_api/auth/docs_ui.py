"""Swagger UI at /docs, with OAuth 2.0 that works: PKCE through a first-party public docs client.

Partners' systems authorize with client credentials (their own client id and secret, typed into the
Authorize dialog); people with the authorization code and PKCE (S256) through the docs client, a
public client of MGEC (no secret: Swagger UI runs in the browser) whose redirect URI is Swagger UI's
oauth2-redirect page on the origin that serves /docs. `demo seed` registers it for the demo origins.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import render_template, url_for
from flask_restx import Api
from sqlalchemy.orm import Session

from ..access import ALL_SCOPES
from ..db import get_session
from ..errors import InvalidPayload
from ..organisations import services as org_services
from .clients import create_client
from .models import Client, ClientAuthMethod

DOCS_CLIENT_NAME = "API documentation (Swagger UI)"
REDIRECT_PAGE = "oauth2-redirect.html"


def docs_redirect_uri(origin: str) -> str:
    """The redirect URI of the docs client on `origin` (scheme://host[:port])."""
    return origin.rstrip("/") + "/swaggerui/" + REDIRECT_PAGE


def redirect_url() -> str:
    """Swagger UI's oauth2-redirect page on the origin serving this request."""
    return url_for("restx_doc.static", filename=REDIRECT_PAGE, _external=True)


def find_docs_client(session: Session) -> Client | None:
    return session.scalar(
        sa.select(Client)
        .where(Client.name == DOCS_CLIENT_NAME, Client.revoked_at.is_(None))
        .order_by(Client.created_at)
    )


def register_docs_client(session: Session, *, redirect_uris: list[str]) -> Client:
    """Register the public docs client of MGEC, or add redirect URIs to it (idempotent)."""
    mgec = org_services.mgec(session)
    if mgec is None:
        raise InvalidPayload(errors={"organisation": ["create MGEC's organisation first"]})
    client = find_docs_client(session)
    if client is None:
        return create_client(
            session,
            organisation=str(mgec.id),
            name=DOCS_CLIENT_NAME,
            scopes=sorted(ALL_SCOPES),
            grant_types=["authorization_code"],
            redirect_uris=redirect_uris,
            auth_method=ClientAuthMethod.NONE,
        ).client
    known = client.redirect_uris.split()
    client.redirect_uris = " ".join(known + [u for u in redirect_uris if u not in known])
    session.commit()
    return client


def oauth_settings() -> dict[str, Any]:
    """Swagger UI's initOAuth(): PKCE always; the docs client's id when it may come back to this origin."""
    client = find_docs_client(get_session())
    here = redirect_url()
    settings: dict[str, Any] = {"usePkceWithAuthorizationCodeGrant": True, "appName": "MGEC referral API"}
    if client is not None and client.check_redirect_uri(here):
        settings["clientId"] = client.client_id
    return settings


def render(api: Api) -> str:
    return render_template("docs/swagger-ui.html", title=api.title, specs_url=api.specs_url,
                           redirect_url=redirect_url(), oauth=oauth_settings())
