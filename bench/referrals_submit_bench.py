"""Submitting referrals under load, as a ratio to a bare route inserting the same JSON as one row.

    .venv/bin/python bench/referrals_submit_bench.py --database-url postgresql://.../scratch
                                                     [--rounds 3] [--seconds 10]

Both targets run the same way (bench/wrk.py): gunicorn, 2 sync workers each, on 127.0.0.1, against
the same database; only one is loaded at a time, by `wrk -t2 -c32` for --seconds, in --rounds
alternating rounds. Each request is a new referral: a Lua script gives it its own external_reference
and Idempotency-Key, and its own person (passport, national id, names, date of birth), so that the
duplicate check does the work of a real day rather than counting one person over and over. The full
target is the real `POST /api/v1/referrals` with a police client's bearer token (token check,
idempotency key, consent and minimisation, reference, duplicate count through blind indexes, data key
and AES-GCM sealing, match keys, audit entry, outbox event, staff view). The bare route parses the
same JSON and inserts it as one row (a JSON column) with one commit, without auth.

Before the load, one request of each runs in-process and the statements, commits and round trips it
sends to the database are counted (libpq's trace, bench/pgtrace.py) and printed. Then every round,
the best and median of each target and the ratios (goal: throughput at least 0.25x). --database-url
names a scratch PostgreSQL database (its public schema is migrated to head and used as is); it is
required: SQLite has one writer at a time, and 32 concurrent submissions on it answer 503s when it
is busy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
# Under gunicorn this module is imported from ROOT (`bench.referrals_submit_bench:...`).
sys.path.insert(0, str(ROOT))

from bench import pgtrace, wrk  # noqa: E402  (after the path above)

BARE_TABLE = "bench_bare_referrals"
# Real Mongolian name stems and endings, and family names: people differ as they would in a day.
STEMS = ["Bat", "Bold", "Tömör", "Altan", "Erdene", "Gan", "Oyun", "Saran", "Nar", "Enkh"]
ENDINGS = ["bayar", "erdene", "tuya", "zaya", "chimeg", "suren", "jargal", "tsetseg"]
FAMILIES = ["Dorj", "Bat", "Tseren", "Gombo", "Dash", "Sükh", "Baatar", "Damdin"]


def body_template() -> str:
    """A police referral with @MARKERS@ the Lua script fills per request (see LUA)."""
    today = date.today()
    body = {
        "source": "police",
        "external_reference": "@REF@",
        "concern": "trafficking",
        "person": {
            "family_name": "@FAMILY@",
            "given_name": "@GIVEN@",
            "sex": "female",
            "date_of_birth": "@DOB@",
            "nationality": "MN",
            "passport_number": "@PASSPORT@",
            "national_id": "@NATIONAL@",
            "phone": "+853 6612 3456",
            "home_province": "dornogovi",
            "languages": ["mn", "zh"],
            "current_location": "Police shelter, Macau",
        },
        "situation": {
            "identified_country": "MO",
            "identified_city": "Macau",
            "identified_on": (today - timedelta(days=3)).isoformat(),
            "exploitation_types": ["sexual"],
            "narrative": "Recruited with a promise of hotel work in Macau.",
            "urgency": "urgent",
            "needs": ["shelter", "travel_documents", "psychosocial"],
            "safety_risk": "high",
            "contact_family": "no",
        },
        "consent": {
            "given": True,
            "obtained_on": (today - timedelta(days=2)).isoformat(),
            "obtained_by": "Officer Leong",
            "method": "written",
            "language": "mn",
            "share_with": ["embassy", "iom"],
        },
    }
    return json.dumps(body, ensure_ascii=False)


LUA = """
local template = %(template)s
local stems, endings, families = %(stems)s, %(endings)s, %(families)s
local run, counter = "", 0

function init(args)
  local f = io.open("/dev/urandom", "rb")
  local seed = f:read(8)
  f:close()
  run = (string.gsub(seed, ".", function(c) return string.format("%%02x", string.byte(c)) end))
  math.randomseed(string.byte(seed, 1) * 16777216 + string.byte(seed, 2) * 65536
                  + string.byte(seed, 3) * 256 + string.byte(seed, 4))
end

local function pick(list) return list[math.random(#list)] end

function request()
  counter = counter + 1
  local ref = "BENCH-" .. run .. "-" .. counter
  local values = {
    ["@REF@"] = ref,
    ["@FAMILY@"] = pick(families),
    ["@GIVEN@"] = pick(stems) .. pick(endings),
    ["@DOB@"] = string.format("%%04d-%%02d-%%02d", math.random(1970, 2005), math.random(1, 12),
                              math.random(1, 28)),
    ["@PASSPORT@"] = string.format("E%%07d", math.random(0, 9999999)),
    ["@NATIONAL@"] = string.format("УБ%%08d", math.random(0, 99999999)),
  }
  local body = (string.gsub(template, "@%%u+@", values))
  wrk.headers["Idempotency-Key"] = ref
  return wrk.format("POST", nil, nil, body)
end
"""


def _lua_list(items: list[str]) -> str:
    return "{" + ", ".join(json.dumps(i, ensure_ascii=False) for i in items) + "}"


def lua_script() -> str:
    return LUA % {"template": json.dumps(body_template(), ensure_ascii=False), "stems": _lua_list(STEMS),
                  "endings": _lua_list(ENDINGS), "families": _lua_list(FAMILIES)}


def _bare_table():
    import sqlalchemy as sa

    return sa.Table(BARE_TABLE, sa.MetaData(), sa.Column("id", sa.Uuid, primary_key=True),
                    sa.Column("body", sa.JSON, nullable=False),
                    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False))


def bare_app():
    """The baseline: Flask, one engine, the request's JSON inserted as one row, one commit. No auth."""
    from flask import Flask, request

    from referral_api.db import make_engine

    engine = make_engine(os.environ["BENCH_DATABASE_URL"])
    table = _bare_table()
    app = Flask("bare")
    app.extensions["bench.engine"] = engine

    @app.post("/bare")
    def submit():
        body = request.get_json()
        row_id = uuid.uuid4()
        with engine.begin() as conn:
            conn.execute(table.insert().values(id=row_id, body=body, created_at=datetime.now(UTC)))
        return {"id": str(row_id), **body}, 201, {"Location": f"/bare/{row_id}"}

    return app


def full_app():
    from referral_api import create_app

    return create_app(
        {"database_url": os.environ["BENCH_DATABASE_URL"], "instance_path": os.environ["BENCH_INSTANCE_PATH"]}
    )


def _setup(url: str, instance: str) -> tuple[str, str]:
    """Migrate; create MGEC, a police force with a client that may submit, and the bare table."""
    from referral_api import create_app, dbmigrate
    from referral_api.auth import services as auth_services
    from referral_api.db import database
    from referral_api.organisations.models import Organisation, OrganisationKind

    app = create_app({"database_url": url, "instance_path": instance})
    db = database(app)
    dbmigrate.upgrade(db)
    _bare_table().create(db.engine, checkfirst=True)
    with app.app_context(), db.sessionmaker() as s:
        suffix = uuid.uuid4().hex[:6]
        if s.query(Organisation).filter_by(kind=OrganisationKind.MGEC).one_or_none() is None:
            s.add(Organisation(name="MGEC", kind=OrganisationKind.MGEC, country="MN"))
        police = Organisation(name=f"Public Security Police Force of Macau {suffix}",
                              kind=OrganisationKind.POLICE, country="MO")
        s.add(police)
        s.flush()
        issued = auth_services.create_client(
            s, organisation=str(police.id), name=f"bench {suffix}", scopes=["referrals:submit"]
        )
        s.commit()
    db.engine.dispose()
    return issued.client.client_id, issued.client_secret


def _one_body(n: str) -> dict:
    text = body_template()
    values = {"@REF@": f"COUNT-{n}", "@FAMILY@": "Dorj", "@GIVEN@": "Batbayar", "@DOB@": "1999-04-12",
              "@PASSPORT@": f"E{n[:7]}", "@NATIONAL@": f"УБ{n[:8]}"}
    for marker, value in values.items():
        text = text.replace(marker, value)
    return json.loads(text)


def count_round_trips(token: str) -> dict[str, pgtrace.Traffic]:
    """One submission of each target in-process (after one to warm up): what it sends to PostgreSQL."""
    from referral_api.db import database

    full, bare = full_app(), bare_app()
    targets = {
        "bare route": (bare, bare.extensions["bench.engine"], "/bare", {}),
        "POST /api/v1/referrals": (full, database(full).engine, "/api/v1/referrals",
                                   {"Authorization": f"Bearer {token}"}),
    }
    found = {}
    for label, (app, engine, path, headers) in targets.items():
        client = app.test_client()

        def send(client=client, path=path, headers=headers):
            key = str(uuid.uuid4().int)[:12]
            response = client.post(path, json=_one_body(key), headers={**headers, "Idempotency-Key": key})
            assert response.status_code == 201, response.get_data(as_text=True)

        send()
        with pgtrace.traffic(engine) as found[label]:
            send()
        engine.dispose()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    wrk.add_arguments(parser)
    args = parser.parse_args()
    rounds, seconds = wrk.bounded(args)
    if not args.database_url.startswith(("postgresql", "postgres:")):
        parser.error("--database-url: a scratch PostgreSQL database (SQLite has one writer at a time)")
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url
        client_id, secret = _setup(url, tmp)
        env = {**os.environ, "BENCH_DATABASE_URL": url, "BENCH_INSTANCE_PATH": tmp}
        os.environ.update(BENCH_DATABASE_URL=url, BENCH_INSTANCE_PATH=tmp)
        script = Path(tmp) / "submit.lua"
        script.write_text(lua_script(), encoding="utf-8")
        with wrk.serve("bench.referrals_submit_bench:bare_app()", env) as bare, \
                wrk.serve("bench.referrals_submit_bench:full_app()", env) as full:
            token = requests.post(
                full + "/oauth/token", auth=(client_id, secret), timeout=60,
                data={"grant_type": "client_credentials", "scope": "referrals:submit"},
            ).json()["access_token"]
            for label, seen in count_round_trips(token).items():
                print(f"one request, in-process: {label:<24} {len(seen.statements):3d} statements, "
                      f"{seen.commits} commit(s), {seen.round_trips} round trip(s)")
            json_headers = {"Content-Type": "application/json"}
            targets = {
                "bare route": wrk.Target(bare + "/bare", headers=json_headers, script=str(script)),
                "submission": wrk.Target(full + "/api/v1/referrals", script=str(script),
                                         headers={**json_headers, "Authorization": f"Bearer {token}"}),
            }
            results = wrk.compare(targets, rounds=rounds, seconds=seconds)
        wrk.report(results, baseline="bare route", goal=0.25)
        print(f"database: {url.split(':', 1)[0]}")


if __name__ == "__main__":
    main()
