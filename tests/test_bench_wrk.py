"""The load harness's CPU accounting (bench/wrk.py): what each round says the app and PostgreSQL spent."""

from __future__ import annotations

import os
import subprocess  # nosec B404 - a fixed Python child, no shell
import sys
import time

import pytest

from bench import wrk

pytestmark = pytest.mark.skipif(not wrk.PROC.is_dir(), reason="CPU accounting reads Linux's /proc")

# A parent that starts a child burning CPU, then waits: a gunicorn master and its worker, in small.
_TREE = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "import time\\nend = time.process_time() + float(__import__('sys').argv[1])\\n"
    "while time.process_time() < end: pass\\ntime.sleep(60)", sys.argv[1]])
print(child.pid, flush=True)
time.sleep(60)
"""


def test_a_masters_workers_and_their_cpu_per_request_are_counted():
    master = subprocess.Popen([sys.executable, "-c", _TREE, "0.4"],  # nosec B603
                              stdout=subprocess.PIPE, text=True)
    try:
        worker = int(master.stdout.readline())
        before = {"app": {}}  # both started before the "round": counted from zero
        deadline = time.monotonic() + 20
        while wrk.cpu_ticks(worker) * 1000 / os.sysconf("SC_CLK_TCK") < 400 and time.monotonic() < deadline:
            time.sleep(0.05)
        groups = wrk.process_groups(master.pid)
        assert {master.pid, worker} <= groups["app"]
        assert not groups["app"] & groups["postgres"]
        per_request = wrk.cpu_per_request(before, master.pid, requests=10)
        assert per_request["app"] >= 38.0  # at least the worker's 0.4 s over 10 requests (10 ms ticks)
        again = wrk.cpu_per_request(wrk._group_ticks(groups), master.pid, requests=10)
        assert again["app"] < per_request["app"]  # since the second snapshot: only what was spent after
    finally:
        subprocess.run(["pkill", "-P", str(master.pid)], check=False)  # nosec B603 B607
        master.kill()
        master.wait(timeout=10)


def test_a_missing_process_has_no_cpu_and_a_round_line_and_the_median_show_the_cpu():
    assert wrk.cpu_ticks(2**22 + 12345) == 0  # above the largest pid_max Linux allows: no such process
    result = wrk.Result(100, 50.0, 10.0, 20.0, 0, {"app": 1.5, "postgres": 0.25})
    assert result.line().endswith("cpu ms/request:   app 1.50   postgres 0.25")
    middle = wrk.median([result, wrk.Result(100, 60.0, 9.0, 19.0, 0, {"app": 2.5, "postgres": 0.75}),
                         wrk.Result(100, 40.0, 11.0, 21.0, 0, {"app": 0.5, "postgres": 0.5})])
    assert middle.cpu_ms == {"app": 1.5, "postgres": 0.5} and middle.rps == 50.0
