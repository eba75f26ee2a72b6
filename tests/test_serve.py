"""The README's run path with real processes: migrate, seed, gunicorn on loopback, HTTP as partners see it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.netutil import free_port, wait_http

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REFERRAL_API_"))}
    env.update(REFERRAL_API_INSTANCE_PATH=str(tmp_path), **extra)
    return env


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("served")
    env = _env(tmp)
    for args in (["db", "upgrade"], ["demo", "seed"]):
        subprocess.run([str(BIN / "referral-api"), *args], env=env, check=True, capture_output=True,
                       timeout=120)
    port = free_port()
    log = open(tmp / "stderr.log", "w+b")  # noqa: SIM115  (read back after the server stops)
    proc = subprocess.Popen(
        [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "1", "--no-control-socket",
         "referral_api.wsgi:app"],
        env=env, stdout=subprocess.DEVNULL, stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/healthz")
        yield base, tmp / "stderr.log"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


def test_health_docs_and_spec(served):
    base, _ = served
    assert requests.get(base + "/healthz", timeout=5).json() == {"status": "ok"}
    ready = requests.get(base + "/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}
    docs = requests.get(base + "/docs", timeout=5)
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    assert requests.get(base + "/swaggerui/swagger-ui-bundle.js", timeout=5).status_code == 200
    assert requests.get(base + "/swagger.json", timeout=5).json()["swagger"] == "2.0"


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("post", "/api/v1/anything", {"data": "hi", "headers": {"Content-Type": "text/plain"}}, 415),
        ("get", "/api/v1/no-such-thing", {}, 404),
        ("delete", "/healthz", {}, 405),
        ("post", "/api/v1/anything", {"data": b"{" + b" " * (1024 * 1024 + 10) + b"}",
                                      "headers": {"Content-Type": "application/json"}}, 413),
    ],
)
def test_errors_are_problem_json_over_the_wire(served, method, path, kwargs, status):
    base, _ = served
    response = requests.request(method, base + path, timeout=10, **kwargs)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == status


def test_logs_are_json_with_request_id_and_never_a_body(served):
    base, log_path = served
    secret = "Narantsetseg-passport-E1234567"
    response = requests.post(base + "/api/v1/anything?name=" + secret, data=json.dumps({"name": secret}),
                             headers={"Content-Type": "application/json", "X-Request-ID": "req-log-test-1"},
                             timeout=5)
    assert response.headers["X-Request-ID"] == "req-log-test-1"
    requests.get(base + "/healthz", timeout=5)  # flushes ordering: the line above is written before this one
    text = log_path.read_text(encoding="utf-8", errors="replace")
    assert secret not in text
    ours = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    mine = [entry for entry in ours if entry.get("request_id") == "req-log-test-1"]
    assert mine and mine[0]["path"] == "/api/v1/anything" and mine[0]["status"] == 404


@pytest.mark.postgres_only
def test_gunicorn_survives_the_database_going_away(backend, tmp_path):
    """Database stopped: /readyz 503 problem+json, the process stays up; back: 200 without a restart."""
    import sqlalchemy as sa

    from tests.conftest import throwaway_database
    from tests.netutil import TcpProxy

    with throwaway_database(backend, tmp_path) as url:
        real = sa.make_url(url)
        proxy = TcpProxy((real.host or "127.0.0.1", real.port or 5432)).start()
        proxied = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        env = _env(tmp_path, DATABASE_URL=proxied)
        subprocess.run([str(BIN / "referral-api"), "db", "upgrade"], env=env, check=True, capture_output=True,
                       timeout=120)
        port = free_port()
        proc = subprocess.Popen(
            [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "1", "--no-control-socket",
             "referral_api.wsgi:app"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(base + "/healthz")
            assert requests.get(base + "/readyz", timeout=10).status_code == 200
            proxy.stop()
            down = requests.get(base + "/readyz", timeout=15)
            assert down.status_code == 503
            assert down.headers["Content-Type"] == "application/problem+json"
            assert proc.poll() is None
            assert requests.get(base + "/healthz", timeout=5).status_code == 200
            proxy.start()
            assert requests.get(base + "/readyz", timeout=15).status_code == 200
        finally:
            proxy.stop()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
