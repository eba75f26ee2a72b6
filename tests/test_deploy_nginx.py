"""The shipped nginx configuration in front of `referral-api serve` on loopback (issue 19, a real front):
requests and request ids pass, client addresses reach the rate limiter through TRUSTED_PROXY_COUNT=1,
50 slow clients do not stop /healthz, and an oversized body is refused by nginx with our problem page.
Document uploads are checked against a stand-in upstream (no service needed): they pass up to
DOCUMENT_MAX_MB and its envelope, unbuffered, while every other path keeps the 1 MiB limit."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import random
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from bench.stack import (
    NGINX_CONF,
    REPO,
    Stack,
    free_port,
    main_conf,
    nginx_binary,
    render,
    self_signed,
    wait_http,
)
from tests.test_serve import BIN, _env

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(nginx_binary() is None,
                                 reason="nginx is not installed (.ci/run installs it)")]

SLOW_CLIENTS = 50
HOLD_SECONDS = 14  # past nginx's client_header_timeout / client_body_timeout (10 s): dropped ones reopen


def _redis_available() -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", 6379), timeout=1):
        return True
    return False


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    if not _redis_available():
        pytest.skip("Redis is not running on 127.0.0.1:6379 (.ci/run starts it)")
    tmp = tmp_path_factory.mktemp("front")
    env = _env(tmp, TRUSTED_PROXY_COUNT="1", RATELIMIT_STORAGE_URI="redis://127.0.0.1:6379/0",
               METRICS_ALLOW="127.0.0.1")
    for args in (["db", "upgrade"], ["demo", "seed", "--json"]):
        done = subprocess.run([str(BIN / "referral-api"), *args], env=env, check=True, capture_output=True,
                              timeout=180, text=True)
    seeded = json.loads(done.stdout)
    with Stack(tmp / "stack", env) as stack:
        yield stack, seeded


def _app_log(stack: Stack) -> list[dict]:
    text = (stack.folder / "app.log").read_text(errors="replace")
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_requests_and_request_ids_pass_through(front):
    stack, seeded = front
    verify = str(stack.cert)
    answer = requests.get(stack.base + "/healthz", headers={"X-Request-ID": "front-e2e-1"}, verify=verify,
                          timeout=10)
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}
    assert answer.headers["X-Request-ID"] == "front-e2e-1"
    # X-Forwarded-Proto reached the app through the trusted proxy: it knows it is served over https.
    assert answer.headers["Strict-Transport-Security"].startswith("max-age=")
    client = seeded["clients"]["police"]
    token = requests.post(stack.base + "/oauth/token", data={"grant_type": "client_credentials"},
                          auth=(client["client_id"], client["client_secret"]), verify=verify, timeout=10)
    assert token.status_code == 200, token.text
    me = requests.get(stack.base + "/api/v1/me", verify=verify, timeout=10,
                      headers={"Authorization": "Bearer " + token.json()["access_token"]})
    assert me.status_code == 200 and me.json()["client_id"] == client["client_id"]
    # Without an id of the caller's, nginx makes one: the same id in nginx's log, the app's log and
    # the answer.
    made = requests.get(stack.base + "/readyz", verify=verify, timeout=10)
    assert made.status_code == 200
    rid = made.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid)
    def logged() -> bool:
        access = [json.loads(line) for line in (stack.folder / "access.log").read_text().splitlines()]
        return any(e["request_id"] == rid and e["path"] == "/readyz" and e["status"] == 200 for e in access)

    for _ in range(50):  # nginx writes its access line after the answer has left: wait for it, bounded
        if logged():
            break
        time.sleep(0.1)
    assert logged()
    assert any(e.get("request_id") == rid and e.get("path") == "/readyz" for e in _app_log(stack))
    assert any(e.get("request_id") == "front-e2e-1" for e in _app_log(stack))


def _token_attempt(stack: Stack, source: str, client_id: str, spoof: str | None = None) -> int:
    context = ssl.create_default_context(cafile=str(stack.cert))
    conn = http.client.HTTPSConnection("127.0.0.1", stack.https_port, source_address=(source, 0),
                                       context=context, timeout=10)
    basic = base64.b64encode(f"{client_id}:wrong-secret".encode()).decode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": "Basic " + basic}
    if spoof:
        headers["X-Forwarded-For"] = spoof
    try:
        conn.request("POST", "/oauth/token", body="grant_type=client_credentials", headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def test_client_addresses_reach_the_rate_limiter(front):
    """10 failed authentications a minute per (client, address): one address is refused, another is not."""
    stack, _ = front
    client_id = "front-" + uuid.uuid4().hex[:12]
    octets = random.sample(range(2, 250), 3)  # fresh loopback addresses: nobody else's counters
    guesser, other, third = (f"127.{random.randint(1, 250)}.{o}.{random.randint(2, 250)}" for o in octets)
    first = [_token_attempt(stack, guesser, client_id) for _ in range(10)]
    assert first == [401] * 10
    assert _token_attempt(stack, guesser, client_id) == 429
    # A header the guesser makes up changes nothing: nginx overwrites X-Forwarded-For with what it saw.
    assert _token_attempt(stack, guesser, client_id, spoof=third) == 429
    # Another address, same client: its own count.
    assert _token_attempt(stack, other, client_id) == 401
    assert _token_attempt(stack, third, client_id) == 401


def test_an_oversized_body_is_refused_by_nginx_with_our_problem_page(front):
    stack, _ = front
    page = json.loads((REPO / "deploy" / "nginx" / "errors" / "413.json").read_text())
    answer = requests.post(stack.base + "/api/v1/referrals", data=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                           headers={"Content-Type": "application/json", "X-Request-ID": "front-too-big"},
                           verify=str(stack.cert), timeout=30)
    assert answer.status_code == 413
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.json() == page and page["status"] == 413
    assert answer.headers["X-Request-ID"] == "front-too-big"
    requests.get(stack.base + "/healthz", verify=str(stack.cert), timeout=10)  # a line after, in order
    assert not any(e.get("request_id") == "front-too-big" for e in _app_log(stack))  # never reached the app


def _slow_client(stack: Stack, index: int, source: str = "127.0.0.1") -> ssl.SSLSocket:
    """Half the clients dribble a header that never ends, half a body that never ends."""
    context = ssl.create_default_context(cafile=str(stack.cert))
    raw = socket.create_connection(("127.0.0.1", stack.https_port), timeout=10, source_address=(source, 0))
    sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
    if index % 2:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    else:
        sock.sendall(b"POST /api/v1/referrals HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                     b"\r\nContent-Length: 100000\r\n\r\n{")
    return sock


def test_fifty_slow_clients_do_not_stop_healthz(front):
    stack, _ = front
    slow = [_slow_client(stack, i) for i in range(SLOW_CLIENTS)]
    answered = reopened = 0
    started = time.monotonic()
    try:
        while time.monotonic() - started < HOLD_SECONDS:
            for i, sock in enumerate(slow):
                try:
                    sock.sendall(b"a")
                except OSError:  # nginx gave up on it (timeouts): the attacker opens another
                    sock.close()
                    slow[i] = _slow_client(stack, i)
                    reopened += 1
            before = time.monotonic()
            answer = requests.get(stack.base + "/healthz", verify=str(stack.cert), timeout=2)
            assert answer.status_code == 200 and time.monotonic() - before < 2
            answered += 1
            time.sleep(0.5)
    finally:
        for sock in slow:
            with contextlib.suppress(OSError):
                sock.close()
    assert answered >= 10
    assert all(p.poll() is None for p in stack.procs.values())


def test_metrics_sum_every_worker_and_are_not_served_through_nginx(front):
    """Multiprocess mode: the counters of both gunicorn workers in one scrape, read on the app port."""
    from concurrent.futures import ThreadPoolExecutor

    from prometheus_client.parser import text_string_to_metric_families

    stack, _ = front

    def one(_: int) -> int:
        return requests.get(stack.base + "/healthz", verify=str(stack.cert), timeout=10).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(one, range(80))) == {200}
    scraped = requests.get(stack.app_base + "/metrics", timeout=10)
    assert scraped.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(scraped.text)}
    healthz = [s.value for s in families["referral_api_http_requests"].samples
               if s.name.endswith("_total") and s.labels["route"] == "/healthz"]
    assert sum(healthz) >= 80
    assert list(stack.metrics_dir.glob("counter_*.db"))  # the workers' shared files
    # Through nginx: refused (nginx's own 404, and the app would refuse a forwarded request anyway).
    outside = requests.get(stack.base + "/metrics", verify=str(stack.cert), timeout=10)
    assert outside.status_code == 404 and outside.headers["Content-Type"] == "application/problem+json"
    assert "referral_api_" not in outside.text


def test_one_address_holds_at_most_100_requests_in_progress(front):
    """limit_conn: the 101st request in progress from one address gets our 429 page; others are served."""
    stack, _ = front
    source = f"127.{random.randint(1, 250)}.{random.randint(1, 250)}.{random.randint(2, 250)}"
    held = [_slow_client(stack, 0, source) for _ in range(100)]  # bodies that never end: in progress
    try:
        time.sleep(0.5)
        context = ssl.create_default_context(cafile=str(stack.cert))
        conn = http.client.HTTPSConnection("127.0.0.1", stack.https_port, source_address=(source, 0),
                                           context=context, timeout=10)
        conn.request("GET", "/healthz")
        refused = conn.getresponse()
        assert refused.status == 429 and refused.getheader("Content-Type") == "application/problem+json"
        assert json.loads(refused.read()) == json.loads((REPO / "deploy/nginx/errors/429.json").read_text())
        conn.close()
        assert requests.get(stack.base + "/healthz", verify=str(stack.cert), timeout=5).status_code == 200
    finally:
        for sock in held:
            with contextlib.suppress(OSError):
                sock.close()


# ---------------------------------------------------------------- document uploads through the shipped nginx


FORWARDED = ("X-Forwarded-For", "X-Forwarded-Proto", "X-Request-ID", "Connection")


class _Counting(BaseHTTPRequestHandler):
    """The service's stand-in: answers how many body bytes reached it, on which path."""

    def _answer(self, received: int) -> None:
        passed = {name: self.headers.get(name) for name in FORWARDED}
        body = json.dumps({"path": self.path, "received": received, "headers": passed}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(0)

    def do_POST(self) -> None:
        left, received = int(self.headers.get("Content-Length", "0")), 0
        while left:
            piece = self.rfile.read(min(left, 1 << 16))
            if not piece:
                break
            left, received = left - len(piece), received + len(piece)
        self._answer(received)

    def log_message(self, *_args) -> None:
        pass


@pytest.fixture(scope="module")
def nginx_only(tmp_path_factory):
    """The shipped nginx configuration in front of _Counting; (base URL, certificate, nginx's folder)."""
    folder = tmp_path_factory.mktemp("nginx-only")
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    cert, key = self_signed(folder)
    https_port = free_port()
    server = folder / "referral-api.conf"
    server.write_text(render(NGINX_CONF.read_text(), https_port=https_port, http_port=free_port(),
                             app_ports=[upstream.server_port], cert=cert, key=key, logs=folder))
    (folder / "nginx.conf").write_text(main_conf(folder, server))
    nginx_bin = nginx_binary()
    args = ["-p", str(folder), "-c", str(folder / "nginx.conf"), "-e", str(folder / "error.log")]
    checked = subprocess.run([nginx_bin, "-t", *args], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    nginx = subprocess.Popen([nginx_bin, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             stdin=subprocess.DEVNULL, start_new_session=True)
    base = f"https://127.0.0.1:{https_port}"
    try:
        wait_http(base + "/healthz", verify=str(cert))
        yield base, str(cert), folder
    finally:
        nginx.send_signal(signal.SIGQUIT)
        try:
            nginx.wait(timeout=30)
        except subprocess.TimeoutExpired:
            nginx.kill()
            nginx.wait(timeout=10)
        upstream.shutdown()
        upstream.server_close()


def _largest_upload() -> int:
    """The largest body the service takes on an upload route at the default DOCUMENT_MAX_MB."""
    from referral_api.config import Settings
    from referral_api.documents.upload import ENVELOPE_BYTES, MIB

    return Settings().document_max_mb * MIB + ENVELOPE_BYTES


MULTIPART = {"Content-Type": "multipart/form-data; boundary=x"}


@pytest.mark.parametrize("path", ["/api/v1/referrals/REF-2026-000001/documents",
                                  "/api/v1/cases/5b0c4a5e-3f49-4bb5-9d3c-8f2b1f0f6a11/documents",
                                  "/console/referrals/REF-2026-000001/documents",
                                  "/console/cases/CASE-2026-000001/documents"])
def test_a_document_of_document_max_mb_reaches_the_service(nginx_only, path):
    """A scanned passport of DOCUMENT_MAX_MB (with its multipart envelope) passes nginx whole, on every
    upload route of the API and the console; a byte over nginx's upload limit is nginx's 413."""
    base, cert, _folder = nginx_only
    size = _largest_upload()
    answer = requests.post(base + path, data=b"\0" * size, headers={**MULTIPART, "X-Request-ID": "up-1"},
                           verify=cert, timeout=60)
    assert answer.status_code == 200 and answer.json()["path"] == path and answer.json()["received"] == size
    # proxied as every other request is: the address nginx saw, the scheme, the request id, keep-alive
    assert answer.json()["headers"] == {"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "https",
                                        "X-Request-ID": "up-1", "Connection": None}
    refused = requests.post(base + path, data=b"\0" * (21 * 1024 * 1024 + 1), headers=MULTIPART, verify=cert,
                            timeout=60)
    assert refused.status_code == 413 and refused.headers["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("path", ["/api/v1/referrals", "/api/v1/referrals/REF-2026-000001/documents/x",
                                  "/api/v1/documents/5b0c4a5e3f494bb59d3c8f2b1f0f6a11",
                                  "/console/referrals/REF-2026-000001"])
def test_every_other_path_keeps_the_one_mib_limit(nginx_only, path):
    base, cert, _folder = nginx_only
    fits = requests.post(base + path, data=b"{" + b" " * (1024 * 1024 - 2) + b"}", verify=cert, timeout=30,
                         headers={"Content-Type": "application/json"})
    assert fits.status_code == 200 and fits.json()["received"] == 1024 * 1024
    assert fits.json()["headers"]["X-Forwarded-Proto"] == "https" and fits.json()["headers"]["X-Request-ID"]
    refused = requests.post(base + path, data=b"{" + b" " * (2 * 1024 * 1024) + b"}", verify=cert, timeout=30,
                            headers={"Content-Type": "application/json"})
    assert refused.status_code == 413


def test_an_uploaded_document_is_never_written_to_nginxs_temporary_files(nginx_only):
    """The plaintext of an upload goes to the service as it arrives (proxy_request_buffering off). nginx
    logs each body it buffers to a temporary file: a JSON body of 512 KiB elsewhere is (the check sees
    it), a 3 MiB document never is."""
    base, cert, folder = nginx_only
    upload, other = "/api/v1/referrals/REF-2026-000002/documents", "/api/v1/referrals?buffered=1"
    answer = requests.post(base + upload, data=b"\1" * (3 * 1024 * 1024), headers=MULTIPART, verify=cert,
                           timeout=60)
    assert answer.status_code == 200 and answer.json()["received"] == 3 * 1024 * 1024
    json_body = requests.post(base + other, data=b"{" + b" " * (512 * 1024) + b"}", verify=cert, timeout=30,
                              headers={"Content-Type": "application/json"})
    assert json_body.status_code == 200
    buffered = [line for line in (folder / "error.log").read_text().splitlines()
                if "buffered to a temporary file" in line]
    assert any(f"POST {other} " in line for line in buffered), buffered
    assert not any(f"POST {upload} " in line for line in buffered), buffered
