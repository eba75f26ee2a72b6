"""The README's Quickstart, and the webhook walkthrough of docs/webhooks.md that continues it, run as a
newcomer pastes them: the blocks are extracted from the pages themselves (the fenced block after each
`<!-- quickstart:... -->` or `<!-- walkthrough:... -->` mark), on a fresh instance folder, with
`make run` serving on a free loopback port, the other blocks in order in one shell; every answer is
checked. A changed command that breaks, a step removed or reordered, fails here."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.netutil import free_port, wait_http

REPO = Path(__file__).resolve().parent.parent
VENV = Path(sys.prefix)
pytestmark = pytest.mark.slow

MARK = re.compile(r"<!-- (quickstart|walkthrough):(background|step|file) (\S+) -->\n```\w*\n(.*?)```", re.S)


@dataclass
class Block:
    kind: str  # background, step or file
    name: str
    text: str


def blocks(page: Path, prefix: str) -> list[Block]:
    found = MARK.findall(page.read_text(encoding="utf-8"))
    return [Block(kind, name, text) for pre, kind, name, text in found if pre == prefix]


def test_the_pages_hold_the_marked_steps_in_order():
    """Each step of the newcomer's trial is present, in this order (the test below checks each)."""
    assert [(b.kind, b.name) for b in blocks(REPO / "README.md", "quickstart")] == [
        ("background", "serve"), ("step", "credentials"), ("step", "token"), ("step", "submit"),
        ("step", "status"), ("step", "sdk")]
    assert [(b.kind, b.name) for b in blocks(REPO / "docs" / "webhooks.md", "walkthrough")] == [
        ("step", "subscribe"), ("file", "receiver.py"), ("background", "receiver"), ("step", "ping")]


class Shell:
    """One bash, as the reader's second terminal: variables and functions carry from block to block."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(["bash", "--noprofile", "--norc"], cwd=cwd, env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.send("set -eo pipefail")

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def send(self, text: str, *, timeout: float = 120) -> str:
        """Run a block; its output (stdout and stderr), failing on a non-zero exit."""
        self.proc.stdin.write(text.rstrip("\n") + "\necho \"@@done $?\"\n")
        self.proc.stdin.flush()
        out: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError("block timed out:\n" + text + "\n--- output:\n" + "".join(out)) from None
            if line is None:
                raise AssertionError("the shell exited (a command failed):\n" + text + "\n--- output:\n"
                                     + "".join(out))
            before, marker, status = line.partition("@@done ")
            if marker:  # after output without a final newline (curl's JSON), the mark ends that line
                out.append(before + "\n" if before else "")
                assert status.strip() == "0", "".join(out)
                return "".join(out)
            out.append(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


class Background:
    """A block left running in its own terminal (its own session), with its output kept."""

    def __init__(self, text: str, cwd: Path, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.file = open(log, "wb")  # noqa: SIM115  (closed in stop())
        self.proc = subprocess.Popen(["bash", "-c", text], cwd=cwd, env=env, stdout=self.file,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """As Ctrl-C or a `kill` would: the signal to the terminal's process group."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        try:
            return self.proc.wait(timeout=60)
        finally:
            self.file.close()


def _ours(marker: str) -> list[int]:
    """Our live processes whose environment holds `marker` (this run's own instance folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                    if state != "Z":
                        found.append(int(entry.name))
            except OSError:
                continue
    return found


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return bool(predicate())


def _json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def _check_quickstart(shell: Shell, steps: dict[str, str], work: Path) -> str:
    out = shell.send(steps["credentials"])
    demo = json.loads((work / "demo.json").read_text())
    police = demo["clients"]["police"]
    assert f"police client: {police['client_id']}" in out and police["client_secret"]
    assert demo["coordinator"]["password"] and demo["coordinator"]["totp_uri"].startswith("otpauth://")

    out = shell.send(steps["token"])
    scope_line, me = out.splitlines()[0], _json_lines(out)[-1]
    assert set(scope_line.split()) == {"referrals:submit", "referrals:read", "cases:status"}
    assert me["client_id"] == police["client_id"] and me["organisation"]["kind"] == "police"

    out = shell.send(steps["submit"])
    assert "HTTP 201" in out, out
    reference, status = out.strip().splitlines()[-1].split()
    assert re.fullmatch(r"REF-\d{4}-\d{6}", reference) and status == "submitted"
    submitted = json.loads((work / "submitted.json").read_text())
    assert submitted["external_reference"].startswith("PSP-MO-QS-")

    out = shell.send(steps["status"])
    assert out.splitlines()[0] == "submitted"
    case = _json_lines(out)[-1]
    assert case["stage"] == "travel_documents" and case["reference"].startswith("CASE-")
    assert "person" not in case

    out = shell.send(steps["sdk"])
    lines = out.splitlines()
    assert lines[0] == f"{reference} submitted {submitted['external_reference']}"
    assert f"mine: {reference} {submitted['external_reference']}" in lines
    assert lines[-1].startswith("422 on: ") and "person" in lines[-1]
    return reference


def _check_walkthrough(shell: Shell, walkthrough: list[Block], work: Path, env: dict[str, str],
                       reference: str) -> None:
    steps = {b.name: b for b in walkthrough}
    out = shell.send(steps["subscribe"].text)
    assert out.startswith("subscribed ") and "referral.withdrawn" in out, out
    assert (work / "webhook-secret.txt").read_text().startswith("whsec_")
    (work / "receiver.py").write_text(steps["receiver.py"].text)
    receiver = Background(steps["receiver"].text, work, env, work / "receiver.log")
    try:
        wait_http(f"http://127.0.0.1:{env['RECEIVER_PORT']}/", timeout=30)
        out = shell.send(steps["ping"].text)
        assert re.search(r"^ping \{'webhook_id': '[0-9a-f-]{36}'\}$", out, re.M), out
        assert f"withdrawn {reference} withdrawn" in out
        expected = ["verified webhook.ping", f"verified referral.withdrawn {reference}"]
        assert _wait_for(lambda: all(e in receiver.output().splitlines() for e in expected), 60), \
            receiver.output()
        assert "refused" not in receiver.output()
    finally:
        receiver.stop()


def test_the_quickstart_and_the_webhook_walkthrough_work_as_written(tmp_path):
    missing = [tool for tool in ("make", "curl", "bash") if shutil.which(tool) is None]
    if missing and os.environ.get("CI") != "true":
        pytest.skip(f"the Quickstart needs {', '.join(missing)}")
    assert not missing, f"the Quickstart needs {', '.join(missing)}"
    work = tmp_path / "checkout"  # the reader's second terminal: the blocks write their files here
    work.mkdir()
    (work / ".venv").symlink_to(VENV)
    instance = tmp_path / "instance"
    port, receiver_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_URL", "REFERRAL_API_", "WEBHOOK", "PORT", "MAKE"))}
    env.update(REFERRAL_API_INSTANCE_PATH=str(instance), PORT=str(port), RECEIVER_PORT=str(receiver_port),
               VENV=str(VENV))
    serve_block, *steps = blocks(REPO / "README.md", "quickstart")
    # `make run` as written, with the virtualenv this test runs in taken as installed already
    # (no pip run inside a test): the `make` of the block is told its install target is up to date.
    wrapper = f'make() {{ command make -o "{VENV}/bin/referral-api" "$@"; }}\n'
    server = Background(wrapper + serve_block.text, REPO, env, tmp_path / "make-run.log")
    shell = None
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=180)
        # both the server and the worker run
        assert _wait_for(lambda: "webhook worker" in server.output(), 30), server.output()
        shell = Shell(work, env)
        reference = _check_quickstart(shell, {b.name: b.text for b in steps}, work)
        _check_walkthrough(shell, blocks(REPO / "docs" / "webhooks.md", "walkthrough"), work, env, reference)
    finally:
        if shell is not None:
            shell.close()
        status = server.stop()  # SIGTERM to `make run`'s process group, as a `kill` would
        print(server.output()[-5000:])
    assert status is not None
    # nothing of this run is left: not the server, its gunicorn workers, the webhook worker or the receiver
    assert _wait_for(lambda: not _ours(str(instance)), 45), _ours(str(instance))
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
