"""`POST /oauth/token` under load, as a ratio to a minimal Authlib server on the same database.

    .venv/bin/python bench/token_bench.py [--rounds 3] [--seconds 10]
                                          [--database-url postgresql://.../scratch]

Both targets run the same way (bench/wrk.py): gunicorn, 2 sync workers each, on 127.0.0.1, against
the same database, loaded one at a time by `wrk -t2 -c32` for --seconds in --rounds alternating
rounds. Each request is a client credentials grant with client_secret_basic.

- "authlib example": the server of Authlib's documented Flask example ("Flask OAuth 2.0 Server":
  the `authlib.integrations.sqla_oauth2` client and token mixins, `create_query_client_func`,
  `create_save_token_func`, `ClientCredentialsGrant`, `authorization.create_token_response()`), on
  plain SQLAlchemy (a scoped session removed at the end of the request, as Flask-SQLAlchemy does)
  with its own two tables in the same database: one client read, one token row and one commit a
  request.
- "token endpoint": the service's own `/oauth/token` (rate limits raised above the load, as
  README "Sizing the rate limits" says; the issued token is audited), with `create_app()` as
  `referral-api serve` builds it.

Prints every round, the best and the median of each and the ratios (goal: at least 1.0x).
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import tempfile
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import pgtrace, wrk  # noqa: E402  (after the path above)

EXAMPLE_PREFIX = "bench_authlib_"
LIMITS = "1000000/minute"


def _example_models():
    """The documented example's models (Client and Token on Authlib's mixins), in tables of their own."""
    import sqlalchemy as sa
    from authlib.integrations.sqla_oauth2 import OAuth2ClientMixin, OAuth2TokenMixin
    from sqlalchemy.orm import DeclarativeBase

    class Base(DeclarativeBase):
        pass

    class Client(Base, OAuth2ClientMixin):
        __tablename__ = EXAMPLE_PREFIX + "client"
        id = sa.Column(sa.Integer, primary_key=True)
        user_id = sa.Column(sa.Integer, nullable=True)

    class Token(Base, OAuth2TokenMixin):
        __tablename__ = EXAMPLE_PREFIX + "token"
        id = sa.Column(sa.Integer, primary_key=True)
        user_id = sa.Column(sa.Integer, nullable=True)

    return Base, Client, Token


def example_app():
    """Authlib's documented Flask example server, client credentials grant only."""
    import sqlalchemy as sa
    from authlib.integrations.flask_oauth2 import AuthorizationServer
    from authlib.integrations.sqla_oauth2 import create_query_client_func, create_save_token_func
    from authlib.oauth2.rfc6749 import grants
    from flask import Flask
    from sqlalchemy.orm import scoped_session, sessionmaker

    _base, client_model, token_model = _example_models()
    engine = sa.create_engine(os.environ["BENCH_DATABASE_URL"])
    session = scoped_session(sessionmaker(bind=engine))
    app = Flask("authlib_example")
    authorization = AuthorizationServer(
        app,
        query_client=create_query_client_func(session, client_model),
        save_token=create_save_token_func(session, token_model),
    )
    authorization.register_grant(grants.ClientCredentialsGrant)

    @app.teardown_appcontext
    def remove_session(_exc):
        session.remove()

    app.extensions["bench.engine"] = engine

    @app.route("/oauth/token", methods=["POST"])
    def issue_token():
        return authorization.create_token_response()

    return app


def full_app():
    from referral_api import create_app

    limits = dict.fromkeys(("AUTH_RATELIMIT_TOKEN_PER_CLIENT", "AUTH_RATELIMIT_TOKEN_PER_ADDRESS"), LIMITS)
    return create_app({"database_url": os.environ["BENCH_DATABASE_URL"],
                       "instance_path": os.environ["BENCH_INSTANCE_PATH"], **limits})


def _setup_example(url: str) -> tuple[str, str]:
    import sqlalchemy as sa
    from sqlalchemy.orm import Session

    base, client_model, _token = _example_models()
    engine = sa.create_engine(url)
    base.metadata.drop_all(engine)
    base.metadata.create_all(engine)
    client_id, secret = uuid.uuid4().hex, uuid.uuid4().hex + uuid.uuid4().hex
    with Session(engine) as s:
        client = client_model(client_id=client_id, client_secret=secret, client_id_issued_at=0)
        client.set_client_metadata({"grant_types": ["client_credentials"], "scope": "cases:status",
                                    "token_endpoint_auth_method": "client_secret_basic"})
        s.add(client)
        s.commit()
    engine.dispose()
    return client_id, secret


def _setup_full(url: str, instance: str) -> tuple[str, str]:
    """Migrate, and an embassy with a client holding cases:status."""
    from referral_api import create_app, dbmigrate
    from referral_api.auth import services as auth_services
    from referral_api.db import database
    from referral_api.organisations.models import Organisation, OrganisationKind

    app = create_app({"database_url": url, "instance_path": instance})
    db = database(app)
    dbmigrate.upgrade(db)
    with app.app_context(), db.sessionmaker() as s:
        suffix = uuid.uuid4().hex[:6]
        embassy = Organisation(name=f"Embassy of Mongolia in Seoul {suffix}", kind=OrganisationKind.EMBASSY,
                               country="KR")
        s.add(embassy)
        s.flush()
        issued = auth_services.create_client(s, organisation=str(embassy.id), name=f"bench {suffix}",
                                             scopes=["cases:status"])
        s.commit()
        client_id, secret = issued.client.client_id, issued.client_secret
    db.engine.dispose()
    return client_id, secret


def _target(base: str, client_id: str, secret: str) -> wrk.Target:
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return wrk.Target(base + "/oauth/token", method="POST",
                      body="grant_type=client_credentials&scope=cases%3Astatus",
                      headers={"Authorization": f"Basic {basic}",
                               "Content-Type": "application/x-www-form-urlencoded"})


def count_round_trips(targets: dict[str, tuple[object, object, str, str]]) -> None:
    """One token request of each target in-process (after one to warm up): what it sends to
    PostgreSQL (bench/pgtrace.py), printed."""
    for label, (app, engine, client_id, secret) in targets.items():
        client = app.test_client()
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()

        def send(client=client, basic=basic, label=label):
            form = {"grant_type": "client_credentials", "scope": "cases:status"}
            answer = client.post("/oauth/token", data=form, headers={"Authorization": f"Basic {basic}"})
            assert answer.status_code == 200, (label, answer.get_data(as_text=True))

        send()
        with pgtrace.traffic(engine) as seen:
            send()
        engine.dispose()
        print(f"one request, in-process: {label:<16} {len(seen.statements):3d} statements, "
              f"{seen.commits} commit(s), {seen.round_trips} round trip(s)")


def main() -> None:
    from referral_api.db import database

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    wrk.add_arguments(parser)
    args = parser.parse_args()
    rounds, seconds = wrk.bounded(args)
    if not args.database_url.startswith("postgresql"):
        raise SystemExit("give --database-url postgresql://... (a scratch database)")
    with tempfile.TemporaryDirectory() as tmp:
        full_creds = _setup_full(args.database_url, tmp)
        example_creds = _setup_example(args.database_url)
        env = {**os.environ, "BENCH_DATABASE_URL": args.database_url, "BENCH_INSTANCE_PATH": tmp}
        os.environ.update(BENCH_DATABASE_URL=args.database_url, BENCH_INSTANCE_PATH=tmp)
        example, full = example_app(), full_app()
        count_round_trips({"authlib example": (example, example.extensions["bench.engine"], *example_creds),
                           "token endpoint": (full, database(full).engine, *full_creds)})
        with wrk.serve("bench.token_bench:example_app()", env) as example_url, \
                wrk.serve("bench.token_bench:full_app()", env) as full_url:
            targets = {"authlib example": _target(example_url, *example_creds),
                       "token endpoint": _target(full_url, *full_creds)}
            for label, target in targets.items():
                answer = requests.post(target.url, data=target.body, headers=target.headers, timeout=60)
                assert answer.status_code == 200 and answer.json().get("access_token"), (label, answer.text)
            results = wrk.compare(targets, rounds=rounds, seconds=seconds)
        wrk.report(results, baseline="authlib example", goal=1.0)


if __name__ == "__main__":
    main()
