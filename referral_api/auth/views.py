"""The OAuth endpoints: the login form, token, revocation, introspection and RFC 8414 metadata.

They speak OAuth's own wire formats (form posts, RFC 6749 JSON errors, redirects), so they live on a
plain blueprint, outside the /api/v1 restx namespaces.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any
from urllib.parse import urlsplit

from authlib.oauth2 import OAuth2Error
from flask import Blueprint, Response, current_app, jsonify, render_template, request
from flask_babel import gettext as _

from ..access import ALL_SCOPES, TOTP_ROLES
from ..db import get_session
from ..validators import same_secret
from . import dpop, services
from .client_auth import ASSERTION_ALGORITHMS
from .failures import LoginGuard
from .server import AuthorizationServer, allowed_auth_methods
from .store import endpoint_url, issuer

bp = Blueprint("oauth", __name__)
log = logging.getLogger("referral_api.auth")

CSRF_COOKIE = "oauth_csrf"
_FORM_FIELDS = ("response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge",
                "code_challenge_method")


def _server() -> AuthorizationServer:
    return current_app.extensions["referral_api.oauth_server"]


def _login_page(grant: Any, *, error: str | None = None, status: int = 200, email: str = "") -> Response:
    token = secrets.token_urlsafe(32)
    params = {k: request.values.get(k) for k in _FORM_FIELDS if request.values.get(k)}
    html = render_template("auth/login.html", error=error, csrf_token=token, params=params, email=email,
                           client_name=grant.client.name, totp_roles=sorted(r.value for r in TOTP_ROLES))
    response = Response(html, status=status, mimetype="text/html")
    # Double-submit CSRF token: a cross-site page can neither read this cookie nor send it (SameSite).
    response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="Strict", secure=request.is_secure,
                        path="/oauth/authorize", max_age=900)
    origin = urlsplit(grant.redirect_uri or "")
    redirect_origin = f" {origin.scheme}://{origin.netloc}" if origin.scheme and origin.netloc else ""
    # The form posts here and is then redirected to the client: both must be allowed as form targets.
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; "
        f"form-action 'self'{redirect_origin}; frame-ancestors 'none'"
    )
    return response


def _csrf_ok() -> bool:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    field = request.form.get("csrf_token", "")
    return bool(cookie) and same_secret(field, cookie)


@bp.route("/oauth/authorize", methods=["GET", "POST"])
def authorize() -> Response:
    """The login form of people: e-mail, password and, for MGEC admins and coordinators, a TOTP code."""
    server = _server()
    try:
        grant = server.get_consent_grant(end_user=None)
    except OAuth2Error as error:
        return server.handle_error_response(None, error)
    if request.method == "GET":
        return _login_page(grant)
    if not _csrf_ok():
        return _login_page(grant, error=_("The form expired. Please try again."), status=400)
    session = get_session()
    email = request.form.get("email", "")
    try:
        user = services.login(session, email=email, password=request.form.get("password", ""),
                              totp_code=request.form.get("totp", ""), guard=LoginGuard.for_request())
    except services.LoginFailed as failure:
        # 400, not 401: a form, not an HTTP authentication scheme that a WWW-Authenticate could name.
        log.warning("login failed", extra={"reason": failure.reason, "client_id": grant.client.client_id})
        if failure.totp_reused:
            error = _("This one-time code was used already. "
                      "Wait for the next code in your authenticator app and try again.")
        else:
            error = _("The e-mail, password or one-time code is not right, "
                      "or the account is locked for a while.")
        return _login_page(grant, status=400, email=email, error=error)
    # First-party clients only: no consent screen, the code goes straight back.
    return server.create_authorization_response(grant=grant, grant_user=user)


@bp.route("/oauth/token", methods=["POST"])
def token() -> Response:
    """RFC 6749 token endpoint."""
    return _server().create_token_response()


@bp.route("/oauth/revoke", methods=["POST"])
def revoke() -> Response:
    """RFC 7009 revocation."""
    return _server().create_endpoint_response("revocation")


@bp.route("/oauth/introspect", methods=["POST"])
def introspect() -> Response:
    """RFC 7662 introspection."""
    return _server().create_endpoint_response("introspection")


@bp.route("/.well-known/oauth-authorization-server", methods=["GET"])
def metadata() -> Response:
    """RFC 8414 authorization server metadata."""
    methods = allowed_auth_methods()
    return jsonify({
        "issuer": issuer(),
        "authorization_endpoint": endpoint_url("/oauth/authorize"),
        "token_endpoint": endpoint_url("/oauth/token"),
        "revocation_endpoint": endpoint_url("/oauth/revoke"),
        "introspection_endpoint": endpoint_url("/oauth/introspect"),
        "scopes_supported": sorted(ALL_SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": methods,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
        "revocation_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
        "introspection_endpoint_auth_methods_supported": methods,
        "introspection_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
        "dpop_signing_alg_values_supported": dpop.ALGORITHMS,
    })
