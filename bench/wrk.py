"""The load harness of the benches: `wrk` against WSGI apps under gunicorn, in alternating rounds.

    from bench import wrk

    parser = argparse.ArgumentParser()
    wrk.add_arguments(parser)             # --rounds (1-10), --seconds (1-60), --database-url
    args = parser.parse_args()
    with wrk.serve("bench.my_bench:full_app()", env) as full, \
            wrk.serve("bench.my_bench:bare_app()", env) as bare:
        results = wrk.compare(
            {"bare": wrk.Target(bare + "/bare"), "full": wrk.Target(full + "/api/v1/x", headers={...})},
            rounds=args.rounds, seconds=args.seconds,
        )
        wrk.report(results, baseline="bare", goal=0.6, p99_goal=2.0)

`wrk` runs as the issue measures: `wrk -t2 -c32 -d<secs> --latency [-s script.lua] [-H ...] url`; a
POST body (or any method but GET) is sent through a generated Lua script. Each app runs under
gunicorn with 2 sync workers on a free 127.0.0.1 port, started from the repository root so that
`bench.<module>:<factory>()` imports. `wrk` is installed from Debian's packages when missing.
Every round prints requests/s, p50, p99 and the count of non-2xx/3xx answers (which fail the round:
a bench that measures refusals measures nothing), and, on Linux, the CPU time per request of the
target's gunicorn processes ("app") and of every PostgreSQL process ("postgres") during the round,
read from /proc: on a shared, noisy machine requests/s swing from round to round, CPU per request
much less, and it says which side a difference is on. `report` prints the best and the median of the
rounds of each target and their ratios to the baseline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import socket
import statistics
import subprocess  # nosec B404 - starts wrk, apt-get and gunicorn, fixed argument lists
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
PROC = Path("/proc")
_SERVED: dict[str, int] = {}  # base address -> pid of the gunicorn master serving it


def cpu_ticks(pid: int) -> int:
    """User and system CPU time of a process so far, in clock ticks (0 when it is gone)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return 0
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state is field 3
    return int(fields[11]) + int(fields[12])


def _processes() -> Iterator[tuple[int, int, str]]:
    """(pid, parent pid, command name) of every process."""
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            yield int(entry.name), int(stat[stat.rindex(")") + 2:].split()[1]), comm


def process_groups(master: int) -> dict[str, set[int]]:
    """The pids of a gunicorn master and its workers ("app") and of every PostgreSQL process."""
    groups: dict[str, set[int]] = {"app": set(), "postgres": set()}
    for pid, parent, comm in _processes():
        if master in (pid, parent):
            groups["app"].add(pid)
        elif comm in {"postgres", "postmaster"}:
            groups["postgres"].add(pid)
    return groups


def _group_ticks(groups: dict[str, set[int]]) -> dict[str, dict[int, int]]:
    return {name: {pid: cpu_ticks(pid) for pid in pids} for name, pids in groups.items()}


def cpu_per_request(before: dict[str, dict[int, int]], master: int,
                    requests: int) -> dict[str, float]:
    """Milliseconds of CPU per request of each group since `before` (a process started since counts
    from zero; one that ended since is not counted)."""
    after = _group_ticks(process_groups(master))
    tick_ms = 1000.0 / os.sysconf("SC_CLK_TCK")
    return {name: sum(t - before.get(name, {}).get(pid, 0) for pid, t in ticks.items()) * tick_ms
            / max(requests, 1) for name, ticks in after.items()}


def ensure_wrk() -> str:
    """The path of `wrk`; installs Debian's package when it is missing (needs root or sudo)."""
    found = shutil.which("wrk")
    if found:
        return found
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*prefix, "apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, env=env, check=False).returncode:  # nosec B603
        subprocess.run([*prefix, "apt-get", "update", "-q"], env=env, check=True)  # nosec B603
        subprocess.run(install, env=env, check=True)  # nosec B603
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk could not be installed (apt-get install -y wrk)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve(app: str, env: dict[str, str], *, workers: int = 2, timeout: float = 60.0) -> Iterator[str]:
    """Run `gunicorn -w <workers> <app>` (a "module:factory()" spec importable from the repository
    root) on a free loopback port; yields its base address, stops it on exit. The app's output (its
    access log lines) goes to a file, as a service's goes to its journal; the file's tail is shown
    when gunicorn does not come up."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="bench-gunicorn-", suffix=".log")  # noqa: SIM115
    proc = subprocess.Popen(  # nosec B603 - fixed argument list, no shell
        [str(BIN / "gunicorn"), "-w", str(workers), "-k", "sync", "-b", f"127.0.0.1:{port}",
         "--log-level", "warning", "--backlog", "2048", app],
        cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)}, stdin=subprocess.DEVNULL, stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                tail = Path(log.name).read_text(errors="replace")[-3000:]
                raise SystemExit(f"gunicorn ({app}) exited with {proc.returncode}:\n{tail}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"gunicorn ({app}) did not start within {timeout}s") from None
                time.sleep(0.1)
        base = f"http://127.0.0.1:{port}"
        _SERVED[base] = proc.pid
        yield base
    finally:
        _SERVED.pop(f"http://127.0.0.1:{port}", None)
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


@dataclass(frozen=True)
class Target:
    """One thing to load: a URL, its method, headers and body, or a Lua script of your own."""

    url: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    script: str | None = None  # a path; when given, method and body are the script's business


@dataclass(frozen=True)
class Result:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    bad: int  # non-2xx/3xx answers plus socket errors
    cpu_ms: dict[str, float] = field(default_factory=dict)  # CPU per request by group (cpu_per_request)

    def line(self) -> str:
        cpu = "".join(f"   {name} {ms:.2f}" for name, ms in self.cpu_ms.items())
        return (f"{self.rps:8.0f} req/s   p50 {self.p50_ms:7.2f} ms   p99 {self.p99_ms:7.2f} ms   "
                f"{self.requests} requests" + (f"   cpu ms/request:{cpu}" if cpu else ""))


def lua_for(target: Target) -> str:
    """A wrk script sending the target's method and body (headers go on the command line)."""
    lines = [f"wrk.method = {json.dumps(target.method)}"]
    if target.body is not None:
        lines.append(f"wrk.body = {json.dumps(target.body)}")
    return "\n".join(lines) + "\n"


def _ms(value: str, unit: str) -> float:
    return float(value) * UNITS[unit]


def parse(output: str) -> Result:
    """requests/s, p50, p99, request count and bad answers out of `wrk --latency` output."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    total = re.search(r"^\s*(\d+) requests in", output, re.M)
    p50 = re.search(r"^\s+50(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\b", output, re.M)
    p99 = re.search(r"^\s+99(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\b", output, re.M)
    if not (rps and total and p50 and p99):
        raise ValueError("wrk's output was not understood:\n" + output)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    bad = int(non2xx.group(1)) if non2xx else 0
    if errors:
        bad += sum(int(g) for g in errors.groups())
    return Result(int(total.group(1)), float(rps.group(1)), _ms(*p50.groups()), _ms(*p99.groups()), bad)


def run(target: Target, *, seconds: int, threads: int = 2, connections: int = 32) -> Result:
    """One `wrk -t2 -c32 -d<seconds> --latency` run against the target."""
    args = [ensure_wrk(), f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
            "--timeout", "10s"]
    for name, value in target.headers.items():
        args += ["-H", f"{name}: {value}"]
    master = next((pid for base, pid in _SERVED.items() if target.url.startswith(base + "/")), None)
    with tempfile.TemporaryDirectory() as tmp:
        script = target.script
        if script is None and (target.method != "GET" or target.body is not None):
            script = str(Path(tmp) / "request.lua")
            Path(script).write_text(lua_for(target))
        if script:
            args += ["-s", script]
        # the CPU of a target this module serves, on Linux; none for an address of its own
        before = _group_ticks(process_groups(master)) if master is not None and PROC.is_dir() else None
        done = subprocess.run([*args, target.url], capture_output=True, text=True, check=False)  # nosec B603
    if done.returncode:
        raise SystemExit(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    result = parse(done.stdout)
    if before is None:
        return result
    return dataclasses.replace(result, cpu_ms=cpu_per_request(before, master, result.requests))


def compare(targets: dict[str, Target], *, rounds: int, seconds: int, warmup: int = 2,
            allow_bad: bool = False) -> dict[str, list[Result]]:
    """Alternating rounds: every target once per round, in order, after a short warm-up of each.
    Prints every round; a round with refused or failed requests stops the bench unless allow_bad."""
    for target in targets.values():
        run(target, seconds=warmup)
    results: dict[str, list[Result]] = {label: [] for label in targets}
    width = max(len(label) for label in targets)
    for n in range(1, rounds + 1):
        for label, target in targets.items():
            result = run(target, seconds=seconds)
            print(f"round {n}  {label:<{width}} {result.line()}"
                  + (f"   {result.bad} BAD" if result.bad else ""), flush=True)
            if result.bad and not allow_bad:
                raise SystemExit(f"{label}: {result.bad} of {result.requests} requests failed or refused")
            results[label].append(result)
    return results


def best(results: list[Result]) -> Result:
    return max(results, key=lambda r: r.rps)


def median(results: list[Result]) -> Result:
    """The median round: median throughput, median p50, p99 and CPU per request (each on its own)."""
    groups = [name for name in results[0].cpu_ms if all(name in r.cpu_ms for r in results)]
    return Result(int(statistics.median(r.requests for r in results)),
                  statistics.median(r.rps for r in results),
                  statistics.median(r.p50_ms for r in results),
                  statistics.median(r.p99_ms for r in results), 0,
                  {name: statistics.median(r.cpu_ms[name] for r in results) for name in groups})


def report(results: dict[str, list[Result]], *, baseline: str, goal: float | None = None,
           p99_goal: float | None = None) -> dict[str, tuple[float, float]]:
    """Print best and median of each target and each one's throughput and p99 ratio to the baseline
    (best/best and median/median); returns {label: (best throughput ratio, best p99 ratio)}."""
    width = max(len(label) for label in results)
    for label, rows in results.items():
        print(f"best    {label:<{width}} {best(rows).line()}")
        print(f"median  {label:<{width}} {median(rows).line()}")
    base_best, base_median = best(results[baseline]), median(results[baseline])
    ratios: dict[str, tuple[float, float]] = {}
    for label, rows in results.items():
        if label == baseline:
            continue
        b, m = best(rows), median(rows)
        ratios[label] = (b.rps / base_best.rps, b.p99_ms / base_best.p99_ms)
        goals = []
        if goal is not None:
            goals.append(f"throughput >= {goal}x")
        if p99_goal is not None:
            goals.append(f"p99 <= {p99_goal}x")
        print(f"ratio   {label}/{baseline}: throughput best {ratios[label][0]:.2f}x median "
              f"{m.rps / base_median.rps:.2f}x; p99 best {ratios[label][1]:.2f}x median "
              f"{m.p99_ms / base_median.p99_ms:.2f}x" + (f"   (goal: {', '.join(goals)})" if goals else ""))
    print(f"{len(next(iter(results.values())))} alternating rounds, wrk -t2 -c32, gunicorn -w 2 (sync)")
    return ratios


def add_arguments(parser, *, rounds: int = 3, seconds: int = 10) -> None:
    """--rounds, --seconds and --database-url, the options every wrk bench takes."""
    parser.add_argument("--rounds", type=int, default=rounds,
                        help=f"alternating rounds, 1-10 (default {rounds})")
    parser.add_argument("--seconds", type=int, default=seconds,
                        help=f"seconds of load per target and round, 1-60 (default {seconds})")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", ""),
                        help="a scratch PostgreSQL database (its public schema is used as is)")


def bounded(args) -> tuple[int, int]:
    """The rounds and seconds of parsed arguments, clamped to 1-10 and 1-60."""
    return max(1, min(args.rounds, 10)), max(1, min(args.seconds, 60))
