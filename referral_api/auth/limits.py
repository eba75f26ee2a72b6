"""Rate limits (Flask-Limiter) on the token endpoint and the login form, by client and by address."""

from __future__ import annotations

import json
import math
import time

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter, RequestLimit
from flask_limiter.util import get_remote_address
from joserfc import jws
from joserfc.errors import JoseError

from .. import errors

# Overridable through the Flask config (upper-case keys of create_app's mapping).
DEFAULT_LIMITS = {
    "AUTH_RATELIMIT_TOKEN_PER_CLIENT": "60/minute",
    "AUTH_RATELIMIT_TOKEN_PER_ADDRESS": "120/minute",
    "AUTH_RATELIMIT_LOGIN_PER_CLIENT": "60/minute",
    "AUTH_RATELIMIT_LOGIN_PER_ADDRESS": "20/minute",
}


def _limit(name: str):
    return lambda: current_app.config.get(name, DEFAULT_LIMITS[name])


def client_key() -> str:
    """The client a request names (not yet authenticated): Basic user, form client_id or assertion sub."""
    if request.authorization and request.authorization.username:
        return "client:" + request.authorization.username[:64]
    client_id = request.values.get("client_id")
    assertion = request.form.get("client_assertion")
    if not client_id and assertion:
        try:
            claims = json.loads(jws.extract_compact(assertion.encode()).payload)
            client_id = str(claims.get("sub", ""))
        except (JoseError, ValueError, AttributeError, UnicodeDecodeError):
            client_id = None
    return "client:" + (client_id or "-")[:64]


def address_key() -> str:
    return "address:" + (get_remote_address() or "-")


def _too_many(limit: RequestLimit) -> Response:
    retry_after = max(1, math.ceil(limit.reset_at - time.time()))
    return errors.problem(429, title="Too many requests", code="too_many_requests",
                          detail=f"Rate limit of {limit.limit} exceeded; retry in {retry_after} seconds.",
                          headers={"Retry-After": str(retry_after)})


def init_app(app: Flask) -> Limiter:
    """A limiter of this app, its storage from RATELIMIT_STORAGE_URI; limits the OAuth views."""
    limiter = Limiter(
        address_key,
        app=app,
        storage_uri=app.config["SETTINGS"].ratelimit_storage_uri,
        strategy="moving-window",
        key_prefix="referral_api",
        on_breach=_too_many,
    )
    for endpoint, prefix, methods in (("oauth.token", "TOKEN", None), ("oauth.authorize", "LOGIN", ["POST"])):
        view = app.view_functions[endpoint]
        view = limiter.limit(_limit(f"AUTH_RATELIMIT_{prefix}_PER_CLIENT"), key_func=client_key,
                             methods=methods, scope=f"{prefix.lower()}-client")(view)
        view = limiter.limit(_limit(f"AUTH_RATELIMIT_{prefix}_PER_ADDRESS"), key_func=address_key,
                             methods=methods, scope=f"{prefix.lower()}-address")(view)
        app.view_functions[endpoint] = view
    app.extensions["referral_api.limiter"] = limiter
    return limiter
