"""Soak: mixed traffic for N minutes against nginx + gunicorn + the webhook worker on PostgreSQL.

    .venv/bin/python bench/soak.py --minutes 30 [--threads 4] [--max-requests 2000000] [--workers 2]
                                   [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

Builds the production stack on loopback (bench/stack.py: the shipped nginx configuration with a
self-signed certificate, `referral-api serve`, `referral-api webhooks work`), on two scratch databases
it creates and drops (records, and the key store apart with KEYSTORE_URL) through the admin URL, and
Redis for rate limits when it answers. Threads send tokens, submissions, reads, lists and moves
(partners withdraw what they submitted; MGEC holds and resumes cases); MGEC and the police subscribe a
loopback receiver to every event. Prints, per minute, requests, errors and p50/p99 latency; at the end
the errors by kind, what the receiver got against what the outbox held, and the resident memory of
every process after the first minute and at the end, with the growth in percent (goal: 0 errors,
growth under 10 %). Stops at --minutes or --max-requests, whichever comes first.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import statistics
import subprocess  # nosec B404 - runs the referral-api command, fixed argument lists
import sys
import tempfile
import threading
import time
import uuid
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.stack import BIN, Stack, free_port

NAMES = ["Oyunchimeg", "Sarangerel", "Narantsetseg", "Bolormaa", "Enkhjargal", "Tsetsegmaa", "Altantsetseg",
         "Munkhzul", "Gerelmaa", "Khulan", "Anu", "Solongo"]
FAMILIES = ["Dorj", "Bold", "Bat", "Tseren", "Batsukh", "Ganbold", "Purev", "Sukh"]


class Receiver(BaseHTTPRequestHandler):
    """The partners' webhook endpoint: counts what arrives, answers 204."""

    received: collections.Counter = collections.Counter()
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.lock:
            self.received[json.loads(body).get("type", "?")] += 1
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        return


class Load:
    """Shared state of the traffic threads: latencies per minute and errors by kind."""

    def __init__(self, stack: Stack, clients: dict, cases: list[str], *, deadline: float, max_requests: int):
        self.stack, self.clients, self.cases = stack, clients, cases
        self.deadline, self.max_requests = deadline, max_requests
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.count = 0
        self.minutes: dict[int, list[float]] = collections.defaultdict(list)
        self.minute_errors: collections.Counter = collections.Counter()
        self.errors: collections.Counter = collections.Counter()

    def running(self) -> bool:
        return time.monotonic() < self.deadline and self.count < self.max_requests

    def call(self, http: requests.Session, kind: str, method: str, path: str,
             **kwargs) -> requests.Response | None:
        began = time.monotonic()
        try:
            answer = http.request(method, self.stack.base + path, verify=str(self.stack.cert), timeout=30,
                                  **kwargs)
            bad = None if answer.status_code < 400 else f"{kind} {answer.status_code}"
        except requests.RequestException as exc:
            answer, bad = None, f"{kind} {type(exc).__name__}"
        elapsed = time.monotonic() - began
        with self.lock:
            self.count += 1
            minute = int((began - self.started) // 60)
            self.minutes[minute].append(elapsed)
            if bad:
                self.errors[bad] += 1
                self.minute_errors[minute] += 1
        return None if bad else answer


def _referral(rng: random.Random) -> dict:
    today = date.today()
    return {
        "source": "police", "external_reference": "SOAK-" + uuid.uuid4().hex[:16],
        "person": {"given_name": rng.choice(NAMES), "family_name": rng.choice(FAMILIES), "sex": "female",
                   "date_of_birth": f"{rng.randint(1975, 2004)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"},
        "situation": {"identified_country": "MO", "identified_on": str(today - timedelta(days=3)),
                      "exploitation_types": ["sexual"]},
        "consent": {"given": True, "method": "written", "obtained_on": str(today - timedelta(days=2)),
                    "share_with": ["embassy"]},
    }


class Traffic(threading.Thread):
    """One client's loop: a fresh token every 20 s, then a weighted choice of request."""

    def __init__(self, load: Load, index: int) -> None:
        super().__init__(daemon=True)
        self.load, self.index = load, index
        self.rng = random.Random(index)
        self.http = requests.Session()
        self.tokens: dict[str, tuple[float, str]] = {}
        self.mine: list[str] = []
        self.case = load.cases[index] if index < len(load.cases) else None
        self.held = False

    def token(self, kind: str) -> str | None:
        got = self.tokens.get(kind)
        if got and time.monotonic() - got[0] < 20:
            return got[1]
        client = self.load.clients[kind]
        answer = self.load.call(self.http, "token", "POST", "/oauth/token",
                                data={"grant_type": "client_credentials"},
                                auth=(client["client_id"], client["client_secret"]))
        if answer is None:
            return None
        self.tokens[kind] = (time.monotonic(), answer.json()["access_token"])
        return self.tokens[kind][1]

    def as_(self, kind: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(kind)}"}

    def step(self) -> None:
        roll = self.rng.random()
        if roll < 0.2 or not self.mine:
            answer = self.load.call(self.http, "submit", "POST", "/api/v1/referrals",
                                    json=_referral(self.rng),
                                    headers={**self.as_("police"), "Idempotency-Key": uuid.uuid4().hex})
            if answer is not None:
                self.mine.append(answer.headers["Location"])
        elif roll < 0.55:
            self.load.call(self.http, "read", "GET", self.rng.choice(self.mine[-50:]),
                           headers=self.as_("police"))
        elif roll < 0.7:
            self.load.call(self.http, "list", "GET", "/api/v1/referrals?limit=20", headers=self.as_("mgec"))
        elif roll < 0.8:
            self.load.call(self.http, "status", "GET", "/api/v1/cases?limit=20", headers=self.as_("mgec"))
        elif roll < 0.9 and len(self.mine) > 5:
            path = self.mine.pop(0) + "/withdraw"
            self.load.call(self.http, "withdraw", "POST", path, json={"note": "Soak test: withdrawn."},
                           headers=self.as_("police"))
        elif self.case:
            verb = "resume" if self.held else "hold"
            answer = self.load.call(self.http, verb, "POST", f"/api/v1/cases/{self.case}/{verb}",
                                    json={"reason": "Soak test move."}, headers=self.as_("mgec"))
            if answer is not None:
                self.held = not self.held

    def run(self) -> None:
        while self.load.running():
            self.step()


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([str(BIN / "referral-api"), *args], env=env, capture_output=True, text=True,  # nosec
                          timeout=300, check=True)
    return done.stdout


def _databases(admin_url: str) -> tuple[sa.Engine, list[str]]:
    admin = sa.create_engine(admin_url.replace("postgresql://", "postgresql+psycopg://", 1),
                             isolation_level="AUTOCOMMIT")
    names = [f"referral_soak_{uuid.uuid4().hex[:8]}", f"referral_soak_keys_{uuid.uuid4().hex[:8]}"]
    with admin.connect() as conn:
        for name in names:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    return admin, names


def _env(folder: Path, admin: sa.Engine, names: list[str], redis_ok: bool) -> dict[str, str]:
    url = admin.url.set(drivername="postgresql")
    mine = ("DATABASE_URL", "REFERRAL_API_", "KEYSTORE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(mine)}
    env.update(REFERRAL_API_INSTANCE_PATH=str(folder), TRUSTED_PROXY_COUNT="1", METRICS_ALLOW="127.0.0.1",
               DATABASE_URL=url.set(database=names[0]).render_as_string(hide_password=False),
               KEYSTORE_URL=url.set(database=names[1]).render_as_string(hide_password=False),
               WEBHOOKS_ALLOW_HTTP_LOOPBACK="true", DEADLINES_EVERY_SECONDS="30", PRUNE_INTERVAL_SECONDS="60")
    if redis_ok:
        env["RATELIMIT_STORAGE_URI"] = "redis://127.0.0.1:6379/0"
    return env


def _redis_up() -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
        return True
    except OSError:
        return False


def _rss(stack: Stack) -> dict[str, int]:
    out = {}
    for role, pids in stack.pids().items():
        for i, pid in enumerate(pids):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
            out[f"{role}{'' if i == 0 else f'.child{i}'} (pid {pid})"] = kb
    return out


def _setup(stack: Stack, env: dict[str, str], hook_url: str) -> tuple[dict, list[str]]:
    seeded = json.loads(_cli(env, "demo", "seed", "--json"))
    clients = seeded["clients"]
    http = requests.Session()
    tokens = {}
    for kind in ("mgec", "police"):
        c = clients[kind]
        tokens[kind] = http.post(stack.base + "/oauth/token", data={"grant_type": "client_credentials"},
                                 auth=(c["client_id"], c["client_secret"]), verify=str(stack.cert),
                                 timeout=30).json()["access_token"]
        made = http.post(stack.base + "/api/v1/webhooks", json={"url": hook_url}, verify=str(stack.cert),
                         headers={"Authorization": "Bearer " + tokens[kind]}, timeout=30)
        made.raise_for_status()
    cases = http.get(stack.base + "/api/v1/cases?limit=20", verify=str(stack.cert), timeout=30,
                     headers={"Authorization": "Bearer " + tokens["mgec"]}).json()
    return clients, [c["id"] for c in cases["items"]]


def _watch(load: Load, stack: Stack, threads: list[Traffic], *, baseline_after: float) -> dict[str, int]:
    """Print each minute as it completes (with the stack's total memory); the memory baseline."""
    print("live: minute  requests  errors  p99 ms  RSS of the stack (MiB)", flush=True)
    baseline: dict[str, int] = {}
    shown = 0
    while any(t.is_alive() for t in threads):
        time.sleep(1)
        elapsed = time.monotonic() - load.started
        if not baseline and elapsed >= baseline_after:
            baseline = _rss(stack)
        while shown < int(elapsed // 60):
            with load.lock:
                lat = sorted(load.minutes.get(shown, [0.0]))
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            print(f"live: {shown + 1:>6}  {len(lat):>8}  {load.minute_errors[shown]:>6}  {p99 * 1000:>6.0f}  "
                  f"{sum(_rss(stack).values()) / 1024:>8.1f}", flush=True)
            shown += 1
    return baseline or _rss(stack)


def _report_minutes(load: Load) -> None:
    print("minute  requests  errors    p50 ms    p99 ms")
    for minute in sorted(load.minutes):
        lat = sorted(load.minutes[minute])
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(f"{minute + 1:>6}  {len(lat):>8}  {load.minute_errors[minute]:>6}  "
              f"{statistics.median(lat) * 1000:>8.1f}  {p99 * 1000:>8.1f}")


def _scrape(stack: Stack) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(stack.app_base + "/metrics", timeout=30).text
    wanted = ("referral_api_outbox_backlog", "referral_api_webhook_deliveries", "referral_api_overdue_items")
    out = {}
    for family in text_string_to_metric_families(text):
        if family.name in wanted:
            for s in family.samples:
                out[s.name + json.dumps(s.labels, sort_keys=True)] = s.value
    return out


def _report_end(load: Load, stack: Stack, rss_start: dict[str, int], rss_end: dict[str, int]) -> None:
    _report_minutes(load)
    total = sum(len(v) for v in load.minutes.values())
    print(f"\nrequests {total}, errors {sum(load.errors.values())}: {dict(load.errors) or 'none'}")
    print("webhooks received by type:", dict(Receiver.received))
    print("metrics at the end:", _scrape(stack))
    print("\nresident memory (KiB): after minute 1 -> end, growth")
    for name, end in sorted(rss_end.items()):
        start = rss_start.get(name)
        growth = f"{100 * (end - start) / start:+.1f}%" if start else "(new)"
        print(f"  {name:<34} {start or 0:>8} -> {end:>8}  {growth}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-requests", type=int, default=2_000_000)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="referral-soak-"))
    receiver = ThreadingHTTPServer(("127.0.0.1", free_port()), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    admin, names = _databases(args.database_url)
    env = _env(folder, admin, names, _redis_up())
    try:
        _cli(env, "db", "upgrade")
        _cli(env, "keys", "init")
        with Stack(folder / "stack", env, workers=args.workers, with_worker=True) as stack:
            clients, cases = _setup(stack, env, f"http://127.0.0.1:{receiver.server_port}/hook")
            print(f"stack up in {folder}: nginx https :{stack.https_port}, app :{stack.app_port}, "
                  f"{args.workers} gunicorn workers, webhook worker; {args.threads} threads, "
                  f"{args.minutes} min",
                  flush=True)
            load = Load(stack, clients, cases, deadline=time.monotonic() + args.minutes * 60,
                        max_requests=args.max_requests)
            threads = [Traffic(load, i) for i in range(args.threads)]
            for t in threads:
                t.start()
            rss_start = _watch(load, stack, threads, baseline_after=min(60.0, args.minutes * 30))
            time.sleep(5)  # the worker delivers what the last requests published
            _report_end(load, stack, rss_start, _rss(stack))
    finally:
        receiver.shutdown()
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
