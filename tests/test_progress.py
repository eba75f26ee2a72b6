"""Long commands show count, rate and ETA on a terminal (a real pseudo-terminal here) and nothing
without one or with --json (issue 19, progress)."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import subprocess
import time
from pathlib import Path

import pytest

from referral_api.progress import Progress, TerminalProgress
from tests.test_serve import BIN, _env

pytestmark = pytest.mark.slow
_REDRAW = re.compile(r"\r(?!\n)")  # a carriage return that redraws (the terminal sends \r\n for a newline)
_LINE = re.compile(r"(\d+)/(\d+) \S+(?: \S+)? \(\d+%\)\s+[\d.]+/s")


def _under_pty(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run `referral-api ARGS` with stdin, stdout and stderr on a pseudo-terminal; all it wrote."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([str(BIN / "referral-api"), *args], env=env, stdin=terminal, stdout=terminal,
                            stderr=terminal, close_fds=True)
    os.close(terminal)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    return proc.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> dict[str, str]:
    env = _env(tmp_path_factory.mktemp("progress"))
    subprocess.run([str(BIN / "referral-api"), "db", "upgrade"], env=env, check=True, capture_output=True,
                   timeout=120)
    return env


def test_demo_seed_and_audit_verify_show_progress_on_a_terminal(seeded):
    code, out = _under_pty(["demo", "seed"], seeded)
    assert code == 0, out
    assert "demo seed  9/9 steps (100%)" in out and _REDRAW.search(out)
    code, out = _under_pty(["audit", "verify"], seeded)
    assert code == 0, out
    lines = list(_LINE.finditer(out))
    assert lines and int(lines[-1].group(1)) == int(lines[-1].group(2)) > 0
    assert "audit verify" in out and "intact:" in out


@pytest.mark.parametrize("args", [["audit", "checkpoint"], ["retention", "run"], ["keys", "rotate"],
                                  ["webhooks", "work", "--once"]])
def test_the_other_long_commands_show_progress_on_a_terminal(seeded, args):
    code, out = _under_pty(args, seeded)
    assert code == 0, out
    label = " ".join(args)
    assert re.search(re.escape(label) + r"(: verifying)?  \d+/\d+ ", out), out


@pytest.mark.parametrize("args", [["audit", "verify"], ["demo", "seed"], ["retention", "run"]])
def test_no_terminal_or_json_no_progress(seeded, args):
    piped = subprocess.run([str(BIN / "referral-api"), *args], env=seeded, capture_output=True, text=True,
                           timeout=120, stdin=subprocess.DEVNULL)
    assert piped.returncode == 0
    assert "\r" not in piped.stdout + piped.stderr and "/s" not in piped.stderr
    code, out = _under_pty([*args, "--json"], seeded)
    assert code == 0 and not _REDRAW.search(out) and not _LINE.search(out)
    json.loads(out.strip().splitlines()[-1])


def test_the_line_counts_rate_and_eta(tmp_path):
    path = tmp_path / "line.txt"
    with path.open("w") as stream, TerminalProgress("job", stream=stream, unit="items") as progress:
        progress.start(10)
        progress._started -= 2.0  # two seconds ago: 4 done means 2/s and 3 s left
        progress.advance(4)
        assert re.fullmatch(r"job  4/10 items \(40%\)  2\.0/s  ETA 00:0[23]", progress.line())
    text = Path(path).read_text()
    assert text.endswith("\n") and "10/10" not in text and "4/10" in text
    silent = Progress()
    silent.start(3)
    silent.advance(3)
    with contextlib.suppress(Exception):
        silent.finish()
    assert silent.done == 3
