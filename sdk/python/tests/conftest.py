"""The SDK's tests: the referral API served on 127.0.0.1 by a real HTTP server (SQLite), its clients
registered as MGEC would, and a loopback proxy that can fail a request after the server did it."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the project's own test helpers (tests/)


def _serve(app):
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def api(tmp_path):
    """(base_url, session) of the app served on loopback; rows made with `session` are committed."""
    from referral_api import create_app, dbmigrate
    from referral_api.db import database

    app = create_app({"database_url": f"sqlite:///{tmp_path / 'sdk.sqlite3'}",
                      "instance_path": str(tmp_path / "instance"), "TESTING": True})
    dbmigrate.upgrade(database(app))
    server, thread = _serve(app)
    session = database(app).sessionmaker()
    try:
        yield f"http://127.0.0.1:{server.server_port}", session
    finally:
        session.close()
        server.shutdown()
        thread.join(timeout=5)
        database(app).engine.dispose()


class FailingProxy:
    """Forwards every request to the API; the first `fail_first` POSTs are done by the API, then
    answered 503 with Retry-After (a lost answer). `seen` lists (method, path, Idempotency-Key)."""

    def __init__(self, upstream: str, *, fail_first: int = 1, retry_after: str = "1") -> None:
        self.upstream = upstream
        self.fail_first = fail_first
        self.retry_after = retry_after
        self.fail_token = 0  # the first token requests answered 503 (not forwarded): a busy server
        self.seen: list[tuple[str, str, str | None]] = []
        self.http = requests.Session()
        self.http.trust_env = False

    def __call__(self, environ, start_response):
        from werkzeug.wrappers import Request, Response

        request = Request(environ)
        self.seen.append((request.method, request.path, request.headers.get("Idempotency-Key")))
        if request.path == "/oauth/token" and self.fail_token > 0:
            self.fail_token -= 1
            busy = Response('{"error": "temporarily_unavailable"}', status=503, mimetype="application/json")
            busy.headers["Retry-After"] = "2"
            return busy(environ, start_response)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        answer = self.http.request(request.method, self.upstream + request.full_path.rstrip("?"),
                                   headers=headers, data=request.get_data(), timeout=30)
        if request.method == "POST" and request.path.startswith("/api/") and self.fail_first > 0:
            self.fail_first -= 1
            lost = Response('{"title": "Service unavailable"}', status=503,
                            mimetype="application/problem+json")
            lost.headers["Retry-After"] = self.retry_after
            return lost(environ, start_response)
        passed = Response(answer.content, status=answer.status_code)
        for name, value in answer.headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                passed.headers[name] = value
        return passed(environ, start_response)


@pytest.fixture
def failing_proxy(api):
    base, _session = api
    proxy = FailingProxy(base)
    server, thread = _serve(proxy)
    try:
        yield f"http://127.0.0.1:{server.server_port}", proxy
    finally:
        server.shutdown()
        thread.join(timeout=5)
