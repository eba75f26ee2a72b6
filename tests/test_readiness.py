"""`/readyz` and the 503 answer when the database is unreachable; recovery without a restart."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from referral_api import create_app, dbmigrate
from referral_api.db import database, get_session
from tests.conftest import throwaway_database
from tests.netutil import TcpProxy


def _app_with_probe(url, tmp_path):
    app = create_app({"database_url": url, "instance_path": str(tmp_path)})

    @app.route("/api/v1/_probe")
    def probe():
        return {"one": get_session().execute(sa.text("SELECT 1")).scalar_one()}

    return app


def test_readyz_is_503_until_migrated(backend, tmp_path):
    with throwaway_database(backend, tmp_path) as url:
        app = create_app({"database_url": url, "instance_path": str(tmp_path)})
        client = app.test_client()
        response = client.get("/readyz")
        assert response.status_code == 503 and response.mimetype == "application/problem+json"
        assert "db upgrade" in response.get_json()["detail"]
        dbmigrate.upgrade(database(app))
        assert client.get("/readyz").status_code == 200
        database(app).engine.dispose()


def test_unopenable_sqlite_is_503_not_500(tmp_path):
    app = _app_with_probe(f"sqlite:///{tmp_path / 'missing-dir' / 'x.sqlite3'}", tmp_path)
    client = app.test_client()
    for path in ("/readyz", "/api/v1/_probe"):
        response = client.get(path)
        assert response.status_code == 503, path
        assert response.mimetype == "application/problem+json"
        assert response.headers["Retry-After"]
        assert "sqlite" not in response.get_data(as_text=True).lower()


@pytest.mark.postgres_only
def test_database_down_then_back_without_restart(backend, tmp_path):
    with throwaway_database(backend, tmp_path) as url:
        real = sa.make_url(url)
        proxy = TcpProxy((real.host or "127.0.0.1", real.port or 5432)).start()
        proxied = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        app = _app_with_probe(proxied, tmp_path)
        dbmigrate.upgrade(database(app))
        client = app.test_client()
        try:
            assert client.get("/readyz").status_code == 200
            assert client.get("/api/v1/_probe").get_json() == {"one": 1}

            proxy.stop()
            for path in ("/readyz", "/api/v1/_probe"):
                response = client.get(path)
                assert response.status_code == 503, (path, response.get_data(as_text=True))
                assert response.mimetype == "application/problem+json"
                assert response.headers["Retry-After"]
                body = response.get_data(as_text=True)
                assert "psycopg" not in body and "127.0.0.1" not in body

            proxy.start()
            assert client.get("/readyz").status_code == 200
            assert client.get("/api/v1/_probe").get_json() == {"one": 1}
        finally:
            proxy.stop()
            database(app).engine.dispose()


def test_readyz_does_not_parse_the_migration_scripts_at_every_request(client, monkeypatch):
    """/readyz is public and unlimited; building Alembic's ScriptDirectory from every migration file
    costs about 30 ms of CPU. The heads cannot change while the process runs: read once."""
    from alembic.script import ScriptDirectory

    calls = []
    original = ScriptDirectory.from_config.__func__

    def counting(cls, config):
        calls.append(1)
        return original(cls, config)

    monkeypatch.setattr(ScriptDirectory, "from_config", classmethod(counting))
    answers = [client.get("/readyz") for _ in range(5)]
    assert {a.status_code for a in answers} == {200}
    assert [a.get_json() for a in answers] == [{"status": "ready"}] * 5  # no engine, no revision: public
    assert len(calls) <= 1, len(calls)  # none when an earlier test of this process read them already
