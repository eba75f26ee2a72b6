"""One attempt over a real loopback socket: TOTAL_TIMEOUT bounds all of it, not the body alone.

The timeouts are the real ones' shape (connect 3 s, read 5 s, 10 s in all) scaled down, so that a
receiver sending a byte now and then, well inside the read timeout each time, would hold the worker
for several times the total if nothing bounded the whole exchange.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from referral_api import outbound
from referral_api.webhooks import transport

TOTAL = 1.5
TRICKLE_FOR = 6.0  # the receiver would go on this long
EVERY = 0.2
SLACK = 2.0  # seconds past the deadline a busy machine may take to run the watchdog (far below TRICKLE_FOR)


@pytest.fixture(autouse=True)
def _scaled_timeouts(monkeypatch):
    monkeypatch.setattr(transport, "CONNECT_TIMEOUT", 0.5)
    monkeypatch.setattr(transport, "READ_TIMEOUT", 0.75)
    monkeypatch.setattr(transport, "TOTAL_TIMEOUT", TOTAL)


def _trickle(conn: socket.socket, data: bytes) -> None:
    """Send `data` a byte at a time, every EVERY seconds, for TRICKLE_FOR seconds at most."""
    end = time.monotonic() + TRICKLE_FOR
    for byte in data:
        if time.monotonic() > end:
            return
        conn.sendall(bytes([byte]))
        time.sleep(EVERY)


def _receiver(answer):
    """A one-connection loopback receiver: reads the request, then `answer(conn)`; returns its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve():
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                answer(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def _post(scheme: str, answer) -> transport.Outcome:
    listener, thread = _receiver(answer)
    try:
        return transport.post(f"{scheme}://127.0.0.1:{listener.getsockname()[1]}/hook", body=b"{}",
                              headers={"webhook-id": "msg_1"}, allow_http_loopback=True)
    finally:
        listener.close()
        thread.join(TRICKLE_FOR + 1)


def _trickling_headers(conn):
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    _trickle(conn, b"X-Slow: " + b"a" * 100 + b"\r\nContent-Length: 0\r\n\r\n")


def _trickling_status_line(conn):
    _trickle(conn, b"HTTP/1.1 200 OK" + b" " * 100 + b"\r\nContent-Length: 0\r\n\r\n")


@pytest.mark.parametrize("answer", [_trickling_headers, _trickling_status_line],
                         ids=["headers", "status-line"])
def test_an_answer_whose_head_trickles_ends_at_the_total_timeout_as_a_failure(answer):
    outcome = _post("http", answer)
    assert outcome.duration_ms < (TOTAL + SLACK) * 1000, outcome
    assert outcome.status_code is None and not outcome.succeeded, outcome
    assert outcome.error == "TotalTimeout: no complete answer within 1.5 s"


def test_a_head_in_time_counts_though_the_body_trickles_past_the_deadline():
    def answer(conn):
        conn.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")

    assert _post("http", answer).status_code == 204

    def slow_body(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        _trickle(conn, b"x" * 1000)

    outcome = _post("http", slow_body)  # the body is cut short (it is only kept for the attempt's record)
    assert outcome.succeeded and outcome.duration_ms < (TOTAL + SLACK) * 1000, outcome
    assert len(outcome.body or "") < 1000


def test_the_watchdog_still_cuts_a_connection_whose_socket_was_detached():
    """TLS wrapping detaches the socket urllib3 made (the descriptor moves to the SSL socket): the
    watchdog holds a duplicate, so the connection is cut all the same. (A TLS handshake itself is
    bounded by the socket timeout: CPython gives each SSL operation one deadline.)"""
    watchdog = outbound.Watchdog(time.monotonic() + 0.3)
    a, b = socket.socketpair()
    try:
        watchdog.watch(a)
        moved = socket.socket(fileno=a.detach())  # what SSLContext.wrap_socket does
        moved.settimeout(5)
        started = time.monotonic()
        assert moved.recv(1) == b"" and time.monotonic() - started < 2
        moved.close()
    finally:
        watchdog.close()
        b.close()


def test_a_connection_watched_after_the_deadline_is_shut_down_at_once():
    watchdog = outbound.Watchdog(time.monotonic() - 1)
    deadline = time.monotonic() + 2
    while not watchdog.expired and time.monotonic() < deadline:
        time.sleep(0.01)
    a, b = socket.socketpair()
    try:
        watchdog.watch(a)
        assert a.recv(1) == b""  # shut down: the read ends at once, with nothing
    finally:
        watchdog.close()
        a.close()
        b.close()


@pytest.mark.parametrize("exc", [UnicodeEncodeError("ascii", "х", 0, 1, "ordinal not in range(128)"),
                                 RuntimeError("a bug near http://127.0.0.1:9/hook?token=s3cr3t")])
def test_post_never_raises_an_unexpected_error_is_a_failed_outcome(monkeypatch, caplog, exc):
    def broken(*args, **kwargs):
        raise exc

    monkeypatch.setattr(transport, "pinned_pool", broken)
    outcome = transport.post("http://127.0.0.1:9/hook?token=s3cr3t", body=b"{}", headers={},
                             allow_http_loopback=True)
    assert outcome.status_code is None and not outcome.succeeded
    assert outcome.error == f"internal error: {type(exc).__name__}"
    assert caplog.records and not any("s3cr3t" in str(r.__dict__) for r in caplog.records)


@pytest.mark.parametrize("answer", [_trickling_headers, _trickling_status_line],
                         ids=["headers", "status-line"])
def test_a_jwks_uri_trickling_its_answer_ends_at_the_total_timeout(monkeypatch, answer):
    """The token endpoint fetches a partner's key set on the request's own time: the same bound."""
    from referral_api.auth import jwks

    monkeypatch.setattr(jwks, "CONNECT_TIMEOUT", 0.5)
    monkeypatch.setattr(jwks, "READ_TIMEOUT", 0.75)
    monkeypatch.setattr(jwks, "TOTAL_TIMEOUT", TOTAL)
    listener, thread = _receiver(answer)
    started = time.monotonic()
    try:
        with pytest.raises(jwks.JwksError) as failed:
            jwks.fetch(f"http://127.0.0.1:{listener.getsockname()[1]}/jwks.json", allow_http_loopback=True)
    finally:
        listener.close()
        thread.join(TRICKLE_FOR + 1)
    assert time.monotonic() - started < TOTAL + SLACK
    assert str(failed.value) == "the JWKS URI gave no complete answer within the total timeout"
