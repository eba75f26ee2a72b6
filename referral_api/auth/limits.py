"""Rate limits (Flask-Limiter) on the token endpoint and the login form.

Only what a caller proves can cost a client its quota: the per-client limit of /oauth/token counts
requests whose client authenticated; failed authentications count against their address and their
(client, address) pair, so that an attacker naming a client id is refused while the client is not.
The login form, which every person shares through one first-party client, is limited by address.
"""

from __future__ import annotations

import json
import math
import threading
import time

from flask import Flask, Response, current_app, g, request
from flask_limiter import Limiter, RequestLimit
from flask_limiter.util import get_remote_address
from joserfc import jws
from joserfc.errors import JoseError
from limits.storage import MemoryStorage

from .. import errors

# Each limit is the setting (environment variable) of the same name; the Flask config (upper-case keys
# of create_app's mapping) overrides it.
SETTING_OF = {
    "AUTH_RATELIMIT_TOKEN_PER_CLIENT": "ratelimit_token_per_client",
    "AUTH_RATELIMIT_TOKEN_PER_ADDRESS": "ratelimit_token_per_address",
    "AUTH_RATELIMIT_TOKEN_FAILURES_PER_ADDRESS": "ratelimit_token_failures_per_address",
    "AUTH_RATELIMIT_TOKEN_FAILURES_PER_CLIENT_ADDRESS": "ratelimit_token_failures_per_client_address",
    "AUTH_RATELIMIT_LOGIN_PER_ADDRESS": "ratelimit_login_per_address",
}
AUTHENTICATED = "referral_api_authenticated_client"
PROCESS_MEMORY = "referral-api-memory://"


class ProcessMemoryStorage(MemoryStorage):
    """What `memory://` means here: limits' in-memory counters, expired by one daemon thread per
    process once a second. (limits' own MemoryStorage starts a new threading.Timer whenever its last
    expiry pass has ended: under load, a thread per request.) Expiry only frees memory: a count is
    right whether or not its old entries were dropped yet."""

    STORAGE_SCHEME = [PROCESS_MEMORY.removesuffix("://")]
    EXPIRE_EVERY = 1.0

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: str) -> None:
        self._expirer: threading.Thread | None = None
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    def _MemoryStorage__schedule_expiry(self) -> None:  # replaces the Timer per pass
        if self._expirer is None or not self._expirer.is_alive():  # none yet, or not after a fork
            self._expirer = threading.Thread(target=self._expire_forever, name="ratelimit-expiry",
                                             daemon=True)
            self._expirer.start()

    def _expire_forever(self) -> None:
        pause = threading.Event()  # never set: a pause that no patched time.sleep sees
        while True:
            pause.wait(self.EXPIRE_EVERY)
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]


def _limit(name: str):
    return lambda: current_app.config.get(name) or getattr(current_app.config["SETTINGS"], SETTING_OF[name])


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


def client_address_key() -> str:
    return f"{client_key()}|{address_key()}"


def mark_authenticated(client_id: str) -> None:
    """Note that this request's client proved who it is (called by the authorization server)."""
    setattr(g, AUTHENTICATED, client_id)


def _authenticated(_response: Response) -> bool:
    return g.get(AUTHENTICATED) is not None


def _failed(_response: Response) -> bool:
    return g.get(AUTHENTICATED) is None


def _too_many(limit: RequestLimit) -> Response:
    retry_after = max(1, math.ceil(limit.reset_at - time.time()))
    return errors.problem(429, title="Too many requests", code="too_many_requests",
                          detail=f"Rate limit of {limit.limit} exceeded; retry in {retry_after} seconds.",
                          headers={"Retry-After": str(retry_after)})


def init_app(app: Flask) -> Limiter:
    """A limiter of this app, its storage from RATELIMIT_STORAGE_URI; limits the OAuth views."""
    uri = app.config["SETTINGS"].ratelimit_storage_uri
    limiter = Limiter(
        address_key,
        app=app,
        storage_uri=PROCESS_MEMORY if uri.startswith("memory://") else uri,
        strategy="moving-window",
        key_prefix="referral_api",
        on_breach=_too_many,
    )
    token = app.view_functions["oauth.token"]
    # Checked before the request, counted after it: a request counts only when its predicate holds.
    for setting, key_func, scope, deduct_when in (
        ("AUTH_RATELIMIT_TOKEN_PER_CLIENT", client_key, "token-client", _authenticated),
        ("AUTH_RATELIMIT_TOKEN_FAILURES_PER_CLIENT_ADDRESS", client_address_key, "token-fail-client-address",
         _failed),
        ("AUTH_RATELIMIT_TOKEN_FAILURES_PER_ADDRESS", address_key, "token-fail-address", _failed),
        ("AUTH_RATELIMIT_TOKEN_PER_ADDRESS", address_key, "token-address", None),
    ):
        token = limiter.limit(_limit(setting), key_func=key_func, scope=scope, deduct_when=deduct_when)(token)
    app.view_functions["oauth.token"] = token
    app.view_functions["oauth.authorize"] = limiter.limit(
        _limit("AUTH_RATELIMIT_LOGIN_PER_ADDRESS"), key_func=address_key, methods=["POST"],
        scope="login-address")(app.view_functions["oauth.authorize"])
    app.extensions["referral_api.limiter"] = limiter
    return limiter
