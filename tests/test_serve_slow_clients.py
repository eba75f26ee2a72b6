"""`referral-api serve` survives slow clients (issue 11, point 5): 50 connections sending their request
line and headers a byte at a time for 30 seconds (reopened when the server drops one), and /healthz
answers within a second throughout."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time

import pytest
import requests

from tests.netutil import free_port, wait_http
from tests.test_serve import BIN, _env

pytestmark = pytest.mark.slow

SLOW_CLIENTS = 50
HOLD_SECONDS = 30


def _slow_client(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # never finished
    return sock


def test_fifty_slow_clients_do_not_take_the_server_down(tmp_path):
    env = _env(tmp_path)
    subprocess.run([str(BIN / "referral-api"), "db", "upgrade"], env=env, check=True, capture_output=True,
                   timeout=120)
    port = free_port()
    # As `make run` serves: the serve command with its default workers.
    proc = subprocess.Popen([str(BIN / "referral-api"), "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    slow: list[socket.socket] = []
    try:
        wait_http(base + "/healthz")
        slow = [_slow_client(port) for _ in range(SLOW_CLIENTS)]
        answered, reopened, started = 0, 0, time.monotonic()
        while time.monotonic() - started < HOLD_SECONDS:
            for i, sock in enumerate(slow):
                try:
                    sock.sendall(b"a")  # one more byte of a header that never ends
                except OSError:
                    # The server gave up on this one (gevent workers bound each request read by the
                    # keep-alive timeout): the attacker opens another, so 50 stay open throughout.
                    sock.close()
                    slow[i] = _slow_client(port)
                    reopened += 1
            before = time.monotonic()
            response = requests.get(base + "/healthz", timeout=1)
            assert response.status_code == 200 and time.monotonic() - before < 1
            answered += 1
            time.sleep(0.5)
        assert answered >= 20
    finally:
        for sock in slow:
            with contextlib.suppress(OSError):
                sock.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
