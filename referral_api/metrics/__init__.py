"""`/metrics` in the Prometheus text format (prometheus-client), for the monitoring host only.

Counted per request: requests by route template (never the raw path), method and status, with a
latency histogram; tokens issued and refused at `/oauth/token`. Read at scrape time from the
database: see collect.py. Under gunicorn the counters of every worker are summed through
PROMETHEUS_MULTIPROC_DIR (`referral-api serve` prepares it; see docs/deploy.md).

Who may scrape: only a client whose own address (the socket's, not a forwarded one) is in
METRICS_ALLOW and whose request came through no proxy (no X-Forwarded-For). METRICS_ALLOW is empty by
default: nobody. Anyone else gets the same 404 problem as for an unknown route.
"""

from __future__ import annotations

import ipaddress
import os
import time
from typing import Any

from flask import Flask, Request, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from ..db import database
from ..errors import NotFound
from .collect import DatabaseCollector

__all__ = ["address_allowed", "init_app"]

_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
_GRANTS = {"client_credentials", "authorization_code", "refresh_token"}
_OAUTH_ERRORS = {"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
                 "unsupported_grant_type", "invalid_scope", "access_denied", "server_error"}

REQUESTS = Counter("referral_api_http_requests", "HTTP requests by route template, method and status.",
                   ["route", "method", "status"])
LATENCY = Histogram("referral_api_http_request_duration_seconds", "Time to answer, by route template.",
                    ["route"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
TOKENS_ISSUED = Counter("referral_api_tokens_issued", "Access tokens issued at /oauth/token, by grant type.",
                        ["grant_type"])
TOKENS_REFUSED = Counter("referral_api_tokens_refused", "Token requests refused at /oauth/token, by error.",
                         ["error"])


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def address_allowed(remote: str | None, allowed: tuple[Network, ...]) -> bool:
    """True when `remote` lies in one of the allowed networks (an empty list allows nobody)."""
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        return False
    return any(address in network for network in allowed if address.version == network.version)


def _route(req: Request) -> str:
    rule = req.url_rule
    return rule.rule if rule is not None else "(unmatched)"


def _start() -> None:
    g.metrics_started = time.perf_counter()


# A metric's child per label values, found once a process: labels() validates and locks at each call,
# which cost more than counting. The label values are bounded (route templates, known methods, statuses,
# grants and errors), and so is this cache.
_CHILDREN: dict[tuple[Any, ...], Any] = {}


def _child(metric: Any, *values: str) -> Any:
    key = (metric, *values)
    child = _CHILDREN.get(key)
    if child is None:
        child = _CHILDREN[key] = metric.labels(*values)
    return child


def _count_token(response: Response, req: Request) -> None:
    if response.status_code == 200:
        grant = req.form.get("grant_type", "")
        _child(TOKENS_ISSUED, grant if grant in _GRANTS else "other").inc()
        return
    body = response.get_json(silent=True) if response.is_json else None
    error = body.get("error") if isinstance(body, dict) else None
    if response.status_code == 429:
        error = "rate_limited"
    _child(TOKENS_REFUSED, error if error in _OAUTH_ERRORS or error == "rate_limited" else "other").inc()


def _finish(response: Response) -> Response:
    req = request._get_current_object()  # type: ignore[attr-defined]  # one lookup through the proxy
    route = _route(req)
    method = req.method if req.method in _METHODS else "OTHER"
    _child(REQUESTS, route, method, str(response.status_code)).inc()
    started = g.get("metrics_started")
    if started is not None:
        _child(LATENCY, route).observe(time.perf_counter() - started)
    if route == "/oauth/token" and method == "POST":
        _count_token(response, req)
    return response


def _registry() -> CollectorRegistry:
    """A registry for this scrape: every worker's counters (multiprocess mode) or this process's."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        for collector in (REQUESTS, LATENCY, TOKENS_ISSUED, TOKENS_REFUSED):
            registry.register(collector)
    registry.register(DatabaseCollector(database().sessionmaker))
    return registry


def metrics_view() -> Response:
    """The scrape: refused (as an unknown route) unless the direct peer is allowed and unproxied."""
    settings = current_app.config["SETTINGS"]
    peer = request.environ.get("werkzeug.proxy_fix.orig", {}).get("REMOTE_ADDR", request.remote_addr)
    if "X-Forwarded-For" in request.headers or not address_allowed(peer, settings.metrics_allow):
        raise NotFound("The requested URL was not found on the server.")
    return Response(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_finish)
    app.add_url_rule("/metrics", "metrics", metrics_view, methods=["GET"])
