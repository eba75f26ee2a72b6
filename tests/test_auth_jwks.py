"""A client's key set by JWKS URI: cached as HTTP caching allows (bounded), refetched once on an unknown
`kid`, never through a redirect, and only from public addresses (the outbound guard of webhooks).

The partner's JWKS endpoint is a real HTTP server on loopback (plain http to loopback is the
development setting `WEBHOOKS_ALLOW_HTTP_LOOPBACK`); the refused addresses are checked with name
resolution and connections stubbed, so nothing leaves this machine.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import urllib3.util.connection
from joserfc import jwt

from referral_api.auth import jwks, services
from referral_api.auth.models import ClientAuthMethod
from tests import oauth_helpers as h

ISSUER = "http://localhost"


class Partner:
    """What the partner's JWKS endpoint answers, and every request it got."""

    def __init__(self) -> None:
        self.keys: list[dict] = []
        self.cache_control: str | None = "max-age=60"
        self.redirect_to: str | None = None
        self.requests: list[str] = []


def _handler(partner: Partner):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            partner.requests.append(self.path)
            if self.path == "/jwks" and partner.redirect_to:
                self.send_response(302)
                self.send_header("Location", partner.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = json.dumps({"keys": partner.keys}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            if partner.cache_control:
                self.send_header("Cache-Control", partner.cache_control)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Handler


@pytest.fixture
def partner():
    state = Partner()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(app, monkeypatch):
    """A fresh cache on a clock the test moves; plain http to loopback allowed, as in development."""
    fake = Clock()
    monkeypatch.setattr(jwks, "CACHE", jwks.JwksCache(clock=fake))
    settings = app.config["SETTINGS"]
    monkeypatch.setitem(app.config, "SETTINGS", dataclasses.replace(
        settings, webhooks_allow_http_loopback=True, jwks_cache_max_seconds=3600))
    return fake


def _client(session, uri: str):
    issued = services.create_client(
        session, organisation=str(h.organisation(session).id), name=f"uri client {id(uri)}",
        scopes=["referrals:read"], auth_method=ClientAuthMethod.PRIVATE_KEY_JWT,
        jwks_uri="https://partner.example/jwks.json",
    )
    issued.client.jwks_uri = uri  # registration insists on https; the development loopback is http
    session.commit()
    return issued.client


def _key(kid: str):
    key = h.ec_key()
    return key, {**key.as_dict(private=False), "kid": kid}


def _token(http, client, key, kid: str | None):
    headers = {"alg": "ES256", **({"kid": kid} if kid else {})}
    claims = h.assertion_form(client.client_id, key, aud=ISSUER)
    decoded = jwt.decode(claims["client_assertion"], key)
    claims["client_assertion"] = jwt.encode(headers, decoded.claims, key, algorithms=["ES256"])
    return http.post("/oauth/token", data={"grant_type": "client_credentials", **claims})


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, jwks.DEFAULT_MAX_AGE),
        ("max-age=60", 60),
        ("public, max-age=120, must-revalidate", 120),
        ('max-age="30"', 30),
        ("max-age=99999999", 3600),  # bounded
        ("no-store", 0),
        ("max-age=600, no-cache", 0),
        ("private", jwks.DEFAULT_MAX_AGE),
        ("s-maxage=5", jwks.DEFAULT_MAX_AGE),  # only max-age counts, not a name ending in it
    ],
)
def test_max_age_follows_cache_control_within_the_bound(header, expected):
    assert jwks.max_age(header, upper=3600) == expected


def test_the_key_set_is_cached_for_max_age_then_fetched_again(client, session, partner, clock):
    key, public = _key("k1")
    partner.keys = [public]
    c = _client(session, partner.base + "/jwks")
    assert _token(client, c, key, "k1").status_code == 200
    assert _token(client, c, key, "k1").status_code == 200
    assert _token(client, c, key, None).status_code == 200
    assert partner.requests == ["/jwks"]
    clock.now += 61
    assert _token(client, c, key, "k1").status_code == 200
    assert partner.requests == ["/jwks", "/jwks"]


def test_a_long_max_age_is_bounded_and_no_store_is_not_kept(client, session, partner, clock):
    key, public = _key("k1")
    partner.keys, partner.cache_control = [public], "max-age=31536000"
    c = _client(session, partner.base + "/jwks")
    assert _token(client, c, key, "k1").status_code == 200
    clock.now += 3599
    assert _token(client, c, key, "k1").status_code == 200
    assert len(partner.requests) == 1
    clock.now += 2  # past JWKS_CACHE_MAX_SECONDS
    partner.cache_control = "no-store"
    assert _token(client, c, key, "k1").status_code == 200
    assert _token(client, c, key, "k1").status_code == 200
    assert len(partner.requests) == 3


def test_an_unknown_kid_refetches_once_and_made_up_kids_cannot_force_more(client, session, partner, clock):
    old, old_public = _key("2026-01")
    partner.keys = [old_public]
    c = _client(session, partner.base + "/jwks")
    assert _token(client, c, old, "2026-01").status_code == 200
    # the partner rotates: its next assertion names a key the cached set does not have
    clock.now += 30
    new, new_public = _key("2026-02")
    partner.keys = [new_public]
    assert _token(client, c, new, "2026-02").status_code == 200
    assert len(partner.requests) == 2
    assert _token(client, c, new, "2026-02").status_code == 200
    assert len(partner.requests) == 2
    # a kid nobody published: refused, and right after a fetch it causes none
    made_up = _token(client, c, new, "nope")
    assert made_up.get_json()["error"] == "invalid_client"
    assert len(partner.requests) == 2
    clock.now += jwks.REFETCH_FLOOR + 1
    assert _token(client, c, new, "nope").get_json()["error"] == "invalid_client"
    assert len(partner.requests) == 3  # once per assertion at most, never a loop


def test_a_redirect_is_not_followed(client, session, partner, clock):
    key, public = _key("k1")
    partner.keys, partner.redirect_to = [public], partner.base + "/elsewhere"
    c = _client(session, partner.base + "/jwks")
    response = _token(client, c, key, "k1")
    assert response.get_json()["error"] == "invalid_client"
    assert partner.requests == ["/jwks"]


@pytest.mark.parametrize(
    "uri",
    [
        "https://internal.partner.example/jwks",  # resolves to a private address
        "https://metadata.partner.example/jwks",
        "https://169.254.169.254/latest/meta-data/",
        "https://10.1.2.3/jwks",
        "https://127.0.0.1/jwks",
        "http://keys.partner.example/jwks",  # plain http to a public host
    ],
)
def test_a_jwks_uri_outside_the_guard_is_never_connected_to(app, client, session, clock, monkeypatch, uri):
    production = dataclasses.replace(app.config["SETTINGS"], webhooks_allow_http_loopback=False)
    monkeypatch.setitem(app.config, "SETTINGS", production)
    dns = {"internal.partner.example": "10.0.0.5", "metadata.partner.example": "169.254.169.254",
           "keys.partner.example": "93.184.215.14"}
    connections = []

    def getaddrinfo(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (dns.get(host, host), port))]

    def create_connection(address, *args, **kwargs):
        connections.append(address)
        raise ConnectionRefusedError("stubbed: no traffic leaves this machine in tests")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(urllib3.util.connection, "create_connection", create_connection)
    key, _public = _key("k1")
    c = _client(session, uri)
    response = _token(client, c, key, "k1")
    assert response.get_json()["error"] == "invalid_client"
    assert connections == []


def test_a_public_jwks_uri_is_connected_at_its_vetted_address(client, session, clock, monkeypatch):
    """The https path: resolved once by the guard, the connection goes to that address (stubbed)."""
    connections = []

    def getaddrinfo(host, port, *args, **kwargs):
        assert host == "keys.partner.example"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))]

    def create_connection(address, *args, **kwargs):
        connections.append(address)
        raise ConnectionRefusedError("stubbed: no traffic leaves this machine in tests")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(urllib3.util.connection, "create_connection", create_connection)
    key, _public = _key("k1")
    c = _client(session, "https://keys.partner.example/jwks")
    assert _token(client, c, key, "k1").get_json()["error"] == "invalid_client"
    assert connections == [("93.184.215.14", 443)]
