"""`referral-api audit verify` over 100,000 events on PostgreSQL, as a ratio to a streaming verify written
here with psycopg, canonical JSON and hashlib; and its memory at 10,000 vs 100,000 events.

    .venv/bin/python bench/audit_bench.py [--events 100000] [--small 10000] [--rounds 5]
                                          [--max-seconds 300] [--database-url postgresql://...]

Without --database-url, a scratch database is created on postgresql://postgres@127.0.0.1:5432 and
dropped afterwards. The chain is seeded with COPY (sealed events, hashes computed here), first
--small events, then the rest up to --events. At each size the peak of Python's allocations
(tracemalloc) is measured for the command and the baseline, each alone: flat memory means the
same peak at both sizes. At the full size, in alternating rounds, it times (a) `audit verify --json`
run in-process through the app's command line (seal check, streamed walk, result) and (b) the
baseline: one server-side cursor, the same canonical JSON built from the row, sha256, linked to the
previous hash. It prints each best round and the throughput ratio baseline/command (goal >= 0.7).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scratch import scratch_database  # noqa: E402
from referral_api import create_app, dbmigrate  # noqa: E402
from referral_api.audit.models import GENESIS_HASH, canonical  # noqa: E402
from referral_api.cli import cli  # noqa: E402
from referral_api.db import Database  # noqa: E402

ACTIONS = ["referrals:referral:read", "auth:token:issue", "cases:case:read", "referrals:referral:create"]
COLUMNS = ("seq", "id", "occurred_at", "organisation_id", "client_id", "user_id", "action", "resource_type",
           "resource_id", "outcome", "request_id", "details", "prev_hash", "hash")


def seed(dsn: str, start: int, stop: int) -> None:
    """Events start+1..stop, chained on the current head, written with COPY."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT seq, hash FROM audit_events WHERE seq IS NOT NULL "
                           "ORDER BY seq DESC LIMIT 1").fetchone()
        prev = row[1] if row else GENESIS_HASH
        orgs = [uuid.uuid4() for _ in range(20)]
        when = datetime(2026, 1, 1, tzinfo=UTC)
        with conn.cursor().copy(f"COPY audit_events ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for seq in range(start + 1, stop + 1):
                values = [seq, uuid.uuid4(), when + timedelta(seconds=seq, microseconds=seq % 997),
                          orgs[seq % 20], f"client-{seq % 50}", None if seq % 3 else f"user-{seq % 40}",
                          ACTIONS[seq % 4], "referral", str(uuid.uuid4()), "success", f"req-{seq}",
                          {"count": seq % 7, "filters": ["action", "since"]} if seq % 2 else None, prev]
                digest = hashlib.sha256(canonical(*values)).hexdigest()
                values[11] = None if values[11] is None else json.dumps(values[11])
                copy.write_row([*values, digest])
                prev = digest
        conn.execute("ANALYZE audit_events")


def baseline_verify(dsn: str) -> int:
    """The streaming verify one would write by hand: server-side cursor, canonical JSON, sha256."""
    checked, prev = 0, GENESIS_HASH
    with psycopg.connect(dsn) as conn, conn.cursor(name="chain") as cur:
        cur.itersize = 2000
        cur.execute(f"SELECT {', '.join(COLUMNS)} FROM audit_events "  # noqa: S608  (constant names)
                    "WHERE seq IS NOT NULL ORDER BY seq")
        for (seq, id_, occurred_at, org, client, user, action, rtype, rid, outcome, request_id, details,
             prev_hash, digest) in cur:
            doc = {"v": 1, "seq": seq, "id": str(id_),
                   "occurred_at": occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                   "organisation_id": str(org) if org else None, "client_id": client, "user_id": user,
                   "action": action, "resource_type": rtype, "resource_id": rid, "outcome": outcome,
                   "request_id": request_id, "details": details, "prev_hash": prev_hash}
            text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
            if seq != checked + 1 or prev_hash != prev or hashlib.sha256(text).hexdigest() != digest:
                raise SystemExit(f"baseline: chain broken at {seq}")
            checked, prev = seq, digest
    return checked


def command_verify(runner) -> int:
    result = runner.invoke(cli, ["audit", "verify", "--json"])
    doc = json.loads(result.stdout)
    if result.exit_code != 0 or not doc["ok"]:
        raise SystemExit(f"audit verify: {result.output}")
    return doc["checked"]


def peak(fn) -> tuple[int, float]:
    """(peak bytes allocated by Python while fn ran, its result)."""
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def timed(fn) -> tuple[int, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def measure(dsn: str, runner, args, deadline: float) -> None:
    seed(dsn, 0, args.small)
    memory = {}
    for size in (args.small, args.events):
        if size != args.small:
            started = time.perf_counter()
            seed(dsn, args.small, size)
            print(f"seeded up to {size} events in {time.perf_counter() - started:.1f} s")
        command_verify(runner)  # warm-up: imports, first statement
        n_command, memory[("command", size)] = peak(lambda: command_verify(runner))
        n_baseline, memory[("baseline", size)] = peak(lambda: baseline_verify(dsn))
        assert n_command == n_baseline == size, (n_command, n_baseline, size)
    for who in ("command", "baseline"):
        small, large = memory[(who, args.small)], memory[(who, args.events)]
        print(f"tracemalloc peak, {who:8}: {small / 1e6:6.2f} MB at {args.small} events, "
              f"{large / 1e6:6.2f} MB at {args.events} events ({large / small:.2f}x)")
    best = {"command": float("inf"), "baseline": float("inf")}
    rounds = 0
    for _ in range(args.rounds):
        if time.monotonic() > deadline:
            print("stopped early: --max-seconds reached")
            break
        best["command"] = min(best["command"], timed(lambda: command_verify(runner))[1])
        best["baseline"] = min(best["baseline"], timed(lambda: baseline_verify(dsn))[1])
        rounds += 1
    print(f"{args.events} events; {rounds} alternating rounds, best of each")
    print(f"referral-api audit verify (in-process CLI): best {best['command']:.3f} s "
          f"({args.events / best['command']:,.0f} events/s)")
    print(f"baseline psycopg streaming verify:          best {best['baseline']:.3f} s "
          f"({args.events / best['baseline']:,.0f} events/s)")
    print(f"throughput ratio command / baseline: {best['baseline'] / best['command']:.2f} (goal >= 0.7)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-seconds", type=float, default=300.0)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    deadline = time.monotonic() + args.max_seconds
    with scratch_database("audit_bench", args.database_url) as url:
        dsn = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        db = Database(url)
        try:
            dbmigrate.upgrade(db)
            with tempfile.TemporaryDirectory() as instance:
                app = create_app({"database_url": url, "instance_path": instance, "TESTING": True})
                measure(dsn, app.test_cli_runner(), args, deadline)
        finally:
            db.engine.dispose()


if __name__ == "__main__":
    main()
