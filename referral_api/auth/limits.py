"""Rate limits on the token endpoint and the login form, counted with `limits`.

Two kinds of window. The limits that guard secrets against guessing (failed authentications, the
login form) use exact moving windows: never more than N in any span of the period. Each keeps one
entry per counted request, which costs nothing at their low rates. The throughput limits of the token
endpoint (per address, per client), which a deployment sizes at thousands a minute, use `limits`'
sliding-window counter instead: two counters per key and rate, the previous period's weighted by how
much of it the window still covers. That is constant memory and work per request, whatever the rate.
A moving window of 100,000 a minute kept up to 100,000 entries per key and worker, and inserting each
new entry at the front of that list made every request slower as the rate grew. The counter is
approximate: requests bunched at the end of one period and the start of the next can pass up to twice
the rate within a span of one period, never more.

Only what a caller proves can cost a client its quota: the per-client limit of /oauth/token counts a
request when its client has authenticated (`mark_authenticated`), under the id it proved, so naming
another client costs that client nothing. Failed authentications (at the token, introspection and
revocation endpoints alike) count against their address and their (client, address) pair, the
client id read as Authlib reads it (`_named_client`), so that an attacker naming a client id is
refused while the client is not. The login form, which every person shares through one first-party
client, is limited by address.

The rules of a view are checked before it runs and counted after it, only when their condition
holds: requests in flight together are checked against the same count, so parallel failures can
pass a failure limit by up to their number less one (at /oauth/token the per-address limit, counted
before the view, bounds them; the login lock of failures.py counts before the password check
instead). No other route pays anything for them (the limits are on these views, not in a hook of
every request).
"""

from __future__ import annotations

import functools
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6749.util import extract_basic_authorization
from flask import Flask, Response, current_app, g, request
from joserfc import jws
from joserfc.errors import JoseError
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter, RateLimiter, SlidingWindowCounterRateLimiter

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
_CHARGED = "referral_api_charged_client"  # the client this request was counted against
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
            try:
                self._MemoryStorage__expire_events()  # type: ignore[attr-defined]
            except KeyError:
                # A counter a request's read dropped as expired while this pass looked at it (limits'
                # get() does so without a lock): already gone, and the next pass sees the rest.
                continue


@functools.lru_cache(maxsize=64)
def _parsed(rates: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(rates))


def _items(name: str, config: Any) -> tuple[RateLimitItem, ...]:
    """The rates of a limit in the app's `config`: the Flask config's value, else the setting's (read at
    each request, as tests and a reloaded config may change it; parsed once per value)."""
    return _parsed(config.get(name) or getattr(config["SETTINGS"], SETTING_OF[name]))


def client_key() -> str:
    """The client a request names (not yet authenticated): Basic user, form client_id or assertion sub
    (read once a request)."""
    known = g.get(_CLIENT_KEY)
    if known is None:
        known = _named_client()
        setattr(g, _CLIENT_KEY, known)
    return known


_CLIENT_KEY = "referral_api_ratelimit_client_key"


def _named_client() -> str:
    """The client whose credential Authlib checks, its id as Authlib reads it: the Basic user
    percent-decoded (RFC 6749, 2.3.1: `cl%5Fx` is `cl_x`, one counter), else the `sub` of a client
    assertion, else the form's client_id (client_secret_post, or a public client). A request carries
    one method's credentials at most (`presented_methods`; more are refused before any is checked), so
    that id is the one whose secret or key a failure guessed at."""
    presented = presented_methods()
    if "client_secret_basic" in presented:
        try:
            client_id, _secret = extract_basic_authorization(request.headers)
        except ValueError:  # not UTF-8: refused before the view (validators.authorization_header_message)
            client_id = None
    elif "private_key_jwt" in presented:
        try:
            claims = json.loads(jws.extract_compact(request.form["client_assertion"].encode()).payload)
            client_id = str(claims.get("sub", ""))
        except (JoseError, ValueError, AttributeError, UnicodeDecodeError, KeyError):
            client_id = None
    else:
        client_id = request.form.get("client_id")
    return "client:" + (client_id or "-")[:64]


def presented_methods() -> list[str]:
    """The client authentication methods whose credentials this request carries, whether complete or
    not (RFC 6749, 2.3: a client uses one per request): a Basic Authorization header, a form
    client_secret, a client assertion."""
    methods = []
    scheme = request.headers.get("Authorization", "").split(None, 1)
    if scheme and scheme[0].lower() == "basic":
        methods.append("client_secret_basic")
    if request.form.get("client_secret"):
        methods.append("client_secret_post")
    if request.form.get("client_assertion") or request.form.get("client_assertion_type"):
        methods.append("private_key_jwt")
    return methods


def address_key() -> str:
    return "address:" + (request.remote_addr or "-")


def client_address_key() -> str:
    return f"{client_key()}|{address_key()}"


def mark_authenticated(client_id: str, endpoint: str) -> None:
    """Note that this request's client proved who it is (called by the authorization server); at the
    token endpoint, count the request against that client's limit: 429 (TooManyRequests) over it.
    Counted once proved, under the id it proved: naming another client costs that client nothing,
    and no spelling of its own id gives a client a fresh counter."""
    setattr(g, AUTHENTICATED, client_id)
    if g.get(_CHARGED) == client_id:  # authenticated again in the same request (client_cache.py)
        return
    # A client's own requests to the token endpoint; not the console's exchanges made in-process for
    # a browser (one at each sign-in, bounded per address at the callback): counted here, anyone could
    # spend the console's quota with junk callbacks and keep every person out.
    if endpoint != "token" or request.endpoint != "oauth.token":
        return
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    limits: RateLimits = app.extensions["referral_api.limiter"]
    setattr(g, _CHARGED, client_id)
    identifiers = (limits.key_prefix, CLIENT_SCOPE, "client:" + client_id[:64])
    for item in _items(CLIENT_LIMIT, app.config):
        if not limits.throughput.hit(item, *identifiers):
            raise _too_many(item, limits.throughput.get_window_stats(item, *identifiers).reset_time)


def unproved() -> None:
    """This request's client is to be authenticated again (client_cache.py): until it is, it has proved
    nothing (a refusal then counts as a failure); a charge already made stands, and is not repeated."""
    g.pop(AUTHENTICATED, None)


def _failed(_response: Response) -> bool:
    return g.get(AUTHENTICATED) is None


@dataclass(frozen=True)
class Rule:
    """One limit of a view: its setting, whose key it counts, and when a request counts (None: always,
    counted before the view, as a request refused by it must be)."""

    setting: str
    key: Callable[[], str]
    scope: str
    counts: Callable[[Response], bool] | None = None
    exact: bool = True  # an exact moving window; False: the sliding-window counter (a throughput limit)


# The guessing limits: failed client authentications at the token, introspection and revocation
# endpoints, one set of counters for the three.
FAILURE_RULES = (
    Rule("AUTH_RATELIMIT_TOKEN_FAILURES_PER_ADDRESS", address_key, "token-fail-address", _failed),
    Rule("AUTH_RATELIMIT_TOKEN_FAILURES_PER_CLIENT_ADDRESS", client_address_key, "token-fail-client-address",
         _failed),
)
TOKEN_RULES = (
    Rule("AUTH_RATELIMIT_TOKEN_PER_ADDRESS", address_key, "token-address", exact=False),
    *FAILURE_RULES,
)
# The per-client throughput limit (a sliding-window counter): counted by mark_authenticated(), when a
# client has proved who it is, under the id it proved.
CLIENT_LIMIT, CLIENT_SCOPE = "AUTH_RATELIMIT_TOKEN_PER_CLIENT", "token-client"
LOGIN_RULES = (Rule("AUTH_RATELIMIT_LOGIN_PER_ADDRESS", address_key, "login-address"),)
# The console's sign-in callback (its code exchange runs in-process): as many a minute per address as
# the login form it follows, on counters of its own.
CONSOLE_CALLBACK_RULES = (Rule("AUTH_RATELIMIT_LOGIN_PER_ADDRESS", address_key, "console-callback-address"),)
# Starting a console sign-in stores a pending session (kept 10 minutes): bounded per address the same way,
# so that a stranger cannot fill the table with them.
CONSOLE_START_RULES = (Rule("AUTH_RATELIMIT_LOGIN_PER_ADDRESS", address_key, "console-start-address"),)


class RateLimits:
    """The counters (storage from RATELIMIT_STORAGE_URI) and the two strategies over them: `limiter`, the
    exact moving window (the guessing limits, failures.py's lock and summary), and `throughput`, the
    sliding-window counter (the rules with exact=False)."""

    def __init__(self, uri: str, key_prefix: str = "referral_api") -> None:
        self.storage: Storage = storage_from_string(PROCESS_MEMORY if uri.startswith("memory://") else uri)
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.throughput = SlidingWindowCounterRateLimiter(self.storage)
        self.key_prefix = key_prefix

    def _strategy(self, rule: Rule) -> RateLimiter:
        return self.limiter if rule.exact else self.throughput

    def reset(self) -> None:
        self.storage.reset()

    def refusal(self, rules: tuple[Rule, ...]) -> tuple[errors.TooManyRequests | None, list[_Counted]]:
        """429 for the first limit this request would exceed; else counts the unconditional ones. Also
        the limits checked (each key and its rates read once, a rule's only when it is reached), for
        `count` after the view."""
        counted: list[_Counted] = []
        config = current_app.config  # one lookup through the proxy, not one per rule
        for rule in rules:
            identifiers = (self.key_prefix, rule.scope, rule.key())
            items = _items(rule.setting, config)
            counted.append((rule, identifiers, items))
            strategy = self._strategy(rule)
            for item in items:
                allowed = strategy.hit(item, *identifiers) if rule.counts is None \
                    else strategy.test(item, *identifiers)
                if not allowed:
                    reset_at = strategy.get_window_stats(item, *identifiers).reset_time
                    return _too_many(item, reset_at), counted
        return None, counted

    def count(self, counted: list[_Counted], response: Response) -> None:
        for rule, identifiers, items in counted:
            if rule.counts is not None and rule.counts(response):
                strategy = self._strategy(rule)
                for item in items:
                    strategy.hit(item, *identifiers)


_Counted = tuple[Rule, tuple[str, str, str], tuple[RateLimitItem, ...]]


def _too_many(item: RateLimitItem, reset_at: float) -> errors.TooManyRequests:
    retry_after = max(1, math.ceil(reset_at - time.time()))
    return errors.TooManyRequests(f"Rate limit of {item} exceeded; retry in {retry_after} seconds.",
                                  headers={"Retry-After": str(retry_after)})


def limited(view: Callable[..., Any], rules: tuple[Rule, ...], methods: frozenset[str] | None = None,
            refuse: Callable[[errors.TooManyRequests], Response] = errors.render) -> Callable[..., Any]:
    """The view behind its limits (on `methods` only, when given); `refuse` answers a refusal (429)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if methods is not None and request.method not in methods:
            return view(*args, **kwargs)
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        limits: RateLimits = app.extensions["referral_api.limiter"]
        refused, counted = limits.refusal(rules)
        if refused is not None:
            return refuse(refused)
        response = app.make_response(view(*args, **kwargs))
        limits.count(counted, response)
        return response

    return wrapper


def init_app(app: Flask) -> RateLimits:
    """The app's counters, from RATELIMIT_STORAGE_URI; limits the OAuth token and login views."""
    limits = RateLimits(app.config["SETTINGS"].ratelimit_storage_uri)
    app.view_functions["oauth.token"] = limited(app.view_functions["oauth.token"], TOKEN_RULES)
    for endpoint in ("oauth.introspect", "oauth.revoke"):
        app.view_functions[endpoint] = limited(app.view_functions[endpoint], FAILURE_RULES)
    app.view_functions["oauth.authorize"] = limited(app.view_functions["oauth.authorize"], LOGIN_RULES,
                                                    frozenset({"POST"}))
    app.extensions["referral_api.limiter"] = limits
    return limits
