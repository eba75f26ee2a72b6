"""Swagger UI at /docs, with OAuth 2.0 that works: PKCE through a first-party public docs client.

Partners' systems authorize with client credentials (their own client id and secret, typed into the
Authorize dialog); people with the authorization code and PKCE (S256) through the docs client, a
public client of MGEC (no secret: Swagger UI runs in the browser) whose redirect URI is Swagger UI's
oauth2-redirect page on the origin that serves /docs. `demo seed` registers it for the demo origins.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import render_template, url_for
from flask_restx import Api
from sqlalchemy.orm import Session

from ..access import ALL_SCOPES
from ..db import get_session
from ..errors import InvalidPayload
from ..organisations import services as org_services
from .clients import LOOPBACK_HOSTS, add_redirect_uris, create_client
from .models import Client, ClientAuthMethod

DOCS_CLIENT_NAME = "API documentation (Swagger UI)"
REDIRECT_PAGE = "oauth2-redirect.html"


def origin_problem(origin: str) -> str | None:
    """What is wrong with an origin serving /docs (None: nothing): https://host[:port], or http on
    127.0.0.1, localhost or [::1] exactly; no user, path, query or fragment."""
    try:
        parts = urlsplit(origin)
        host, _port = parts.hostname, parts.port  # a malformed port raises here
    except ValueError:
        return f"{origin!r} is not an origin"
    if not (parts.scheme == "https" and host) and not (parts.scheme == "http" and host in LOOPBACK_HOSTS):
        return f"{origin!r} must be https://host[:port] (or http on 127.0.0.1, localhost or [::1])"
    if "@" in parts.netloc or parts.path not in ("", "/") or parts.query or parts.fragment \
            or origin.rstrip("/").endswith(("?", "#")):
        return f"{origin!r} must be scheme://host[:port] only: no user, path, query or fragment"
    return None


def docs_redirect_uri(origin: str) -> str:
    """The redirect URI of the docs client on `origin` (scheme://host[:port]); a bad origin is
    InvalidPayload naming the field `origin`."""
    if problem := origin_problem(origin):
        raise InvalidPayload(errors={"origin": [problem]})
    return origin.rstrip("/") + "/swaggerui/" + REDIRECT_PAGE


def redirect_url() -> str:
    """Swagger UI's oauth2-redirect page on the origin serving this request."""
    return url_for("restx_doc.static", filename=REDIRECT_PAGE, _external=True)


def find_docs_client(session: Session) -> Client | None:
    """MGEC's live public client of that name (a partner's client of the same name is never it)."""
    mgec = org_services.mgec(session)
    if mgec is None:
        return None
    return session.scalar(
        sa.select(Client)
        .where(Client.name == DOCS_CLIENT_NAME, Client.organisation_id == mgec.id,
               Client.token_endpoint_auth_method == ClientAuthMethod.NONE, Client.revoked_at.is_(None))
        .order_by(Client.created_at)
    )


def register_docs_client(session: Session, *, redirect_uris: list[str],
                         require_private_key_jwt: bool = False) -> Client:
    """Register the public docs client of MGEC, or add redirect URIs to it (idempotent; checked as at
    registration, audited). Refused with `require_private_key_jwt` (the deployment's
    OAUTH_REQUIRE_PRIVATE_KEY_JWT): it is a public client."""
    if require_private_key_jwt:
        raise InvalidPayload(errors={"auth_method": [
            "this deployment requires private_key_jwt (OAUTH_REQUIRE_PRIVATE_KEY_JWT): a public client (auth "
            "method none), as the docs client is, is refused; use a client's own credentials at /docs"]})
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
            require_private_key_jwt=require_private_key_jwt,
        ).client
    return add_redirect_uris(session, client, redirect_uris)


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
