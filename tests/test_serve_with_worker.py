"""`referral-api serve --with-worker` (what `make run` runs): the server and the webhook worker as two
children of one command, started together and stopped together, with real processes on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from mgec_referrals import ReferralClient, verify_webhook

from tests.netutil import free_port, wait_http

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_URL", "REFERRAL_API_", "WEBHOOK"))}
    env.update(REFERRAL_API_INSTANCE_PATH=str(tmp), WEBHOOKS_ALLOW_HTTP_LOOPBACK="true")
    return env


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    """A fresh instance folder, migrated and seeded; the police demo client's credentials."""
    tmp = tmp_path_factory.mktemp("with-worker")
    env = _env(tmp)
    subprocess.run([str(BIN / "referral-api"), "db", "upgrade"], env=env, check=True, capture_output=True,
                   timeout=120)
    seeded = subprocess.run([str(BIN / "referral-api"), "demo", "seed", "--json"], env=env, check=True,
                            capture_output=True, timeout=120)
    return env, json.loads(seeded.stdout)["clients"]["police"]


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _in_sessions(sessions: set[int]) -> list[int]:
    """Live processes whose session is one of `sessions` (the children and everything they started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[3]) in sessions and stat[0] != "Z":
                found.append(int(entry.name))
    return found


def _wait_until(predicate, timeout: float = 40.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.fixture
def served(instance, tmp_path):
    """`referral-api serve --with-worker` on a free loopback port; yields (process, base URL, its two
    children)."""
    env, _ = instance
    port = free_port()
    log = open(tmp_path / "serve.log", "w+b")  # noqa: SIM115  (read back on failure)
    proc = subprocess.Popen([str(BIN / "referral-api"), "serve", "--port", str(port), "--workers", "1",
                             "--with-worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/healthz", timeout=60)
        assert _wait_until(lambda: len(_children(proc.pid)) == 2, timeout=20), _children(proc.pid)
        yield proc, base, _children(proc.pid)
    finally:
        for pid in [*_children(proc.pid), proc.pid]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=10)
        log.seek(0)
        print(log.read().decode(errors="replace"))
        log.close()


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


class _Receiver(ThreadingHTTPServer):
    """A webhook receiver on loopback that keeps what it is sent."""

    def __init__(self) -> None:
        received: list[tuple[dict[str, str], bytes]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.received = received
        threading.Thread(target=self.serve_forever, daemon=True).start()


def test_both_start_a_ping_is_delivered_and_sigterm_stops_both(instance, served):
    _, police = instance
    proc, base, children = served
    commands = sorted(_cmdline(pid) for pid in children)
    assert any("gunicorn" in c for c in commands) and any("webhooks work" in c for c in commands), commands

    receiver = _Receiver()
    try:
        client = ReferralClient(base, police["client_id"], police["client_secret"], scope="webhooks:manage")
        subscription = client.request("POST", "/api/v1/webhooks", json={
            "url": f"http://127.0.0.1:{receiver.server_port}/hook", "events": ["referral.submitted"]})
        ping = client.request("POST", f"/api/v1/webhooks/{subscription['id']}/ping")
        # nothing but the worker beside the server delivers it
        assert _wait_until(lambda: receiver.received, timeout=30), "the ping was not delivered"
        headers, body = receiver.received[0]
        event = verify_webhook(headers, body, subscription["secret"])
        assert event["type"] == "webhook.ping" and headers["webhook-id"] == ping["webhook_id"]
    finally:
        receiver.shutdown()

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=45) == 0
    assert not any(_alive(pid) for pid in children)
    assert _wait_until(lambda: not _in_sessions(set(children)), timeout=10), _in_sessions(set(children))
    with pytest.raises(requests.ConnectionError):
        requests.get(base + "/healthz", timeout=2)


def test_ctrl_c_stops_both(served):
    proc, _, children = served
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=45) == 0
    assert _wait_until(lambda: not _in_sessions(set(children)), timeout=10), _in_sessions(set(children))


def test_the_worker_dies_when_the_server_dies(served):
    proc, _, children = served
    server = next(pid for pid in children if "gunicorn" in _cmdline(pid))
    worker = next(pid for pid in children if pid != server)
    os.kill(server, signal.SIGKILL)
    assert proc.wait(timeout=45) != 0  # the server's death is a failure of the whole
    assert not _alive(worker)
    assert _wait_until(lambda: not _in_sessions(set(children)), timeout=15), _in_sessions(set(children))


def test_both_die_when_the_supervising_command_is_killed(served):
    proc, _, children = served
    proc.kill()  # SIGKILL: no chance to stop them itself
    proc.wait(timeout=10)
    assert _wait_until(lambda: not _in_sessions(set(children)), timeout=45), _in_sessions(set(children))
