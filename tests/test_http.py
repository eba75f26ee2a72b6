"""The HTTP conventions every answer follows (docs/api.md)."""

from __future__ import annotations

import json

import marshmallow as ma
import pytest
import sqlalchemy as sa
from flask_restx import Namespace, Resource

from referral_api import create_app
from referral_api.errors import PreconditionFailed, require_current
from referral_api.http import load, with_etag
from referral_api.paging import decode_cursor, encode_cursor

PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "request_id"}


def assert_problem(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert body.keys() >= PROBLEM_KEYS
    assert body["status"] == status
    assert body["request_id"] == response.headers["X-Request-ID"]
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and "<html" not in text.lower()
    return body


def test_unknown_route_is_problem_json(client):
    assert_problem(client.get("/api/v1/no-such-thing"), 404)


def test_wrong_method_is_problem_json_with_allow(client):
    response = client.delete("/healthz")
    assert_problem(response, 405)
    assert "GET" in response.headers["Allow"]


def test_text_plain_post_is_415_problem(client):
    body = assert_problem(
        client.post("/api/v1/anything", data="hello", headers={"Content-Type": "text/plain"}), 415
    )
    assert "Content-Type" in body["errors"]


def test_unknown_methods_add_nothing_to_the_upload_limit_cache(app, client):
    """The per-route cache of upload limits is keyed by matched routes only: a client inventing methods
    (gunicorn passes any token) cannot grow a worker's memory."""
    client.post("/oauth/token", data={"grant_type": "client_credentials"})
    known = app.extensions["referral_api.upload_limits"]  # this app's, shared with other tests
    before = set(known)
    for n in range(50):
        assert client.open("/oauth/token", method=f"X{n}", data={"grant_type": "client_credentials"}
                           ).status_code == 405
        assert client.open(f"/api/v1/no-such-{n}", method="POST", json={}).status_code == 404
    client.post("/oauth/token", data={"grant_type": "client_credentials"})
    assert set(known) == before and ("oauth.token", "POST") in known
    assert all(endpoint is not None for endpoint, _method in known), known


def test_oversized_body_is_413_problem(app, client):
    too_big = b"{" + b" " * app.config["MAX_CONTENT_LENGTH"] + b"}"
    assert_problem(client.post("/api/v1/anything", data=too_big, content_type="application/json"), 413)


def test_request_id_echoed_or_generated(client):
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    generated = client.get("/healthz").headers["X-Request-ID"]
    assert len(generated) == 36
    # A header that could forge log lines is replaced, not echoed.
    forged = client.get("/healthz", headers={"X-Request-ID": 'x" level="ERROR'}).headers["X-Request-ID"]
    assert forged != 'x" level="ERROR' and len(forged) == 36


def test_a_request_id_ending_in_a_line_break_is_replaced_and_the_answer_keeps_its_headers(client):
    # a regex's $ matches before a final newline: the id was echoed, werkzeug refused it as a header
    # value, and the 500 that followed went out without the security headers
    answer = client.get("/healthz", environ_base={"HTTP_X_REQUEST_ID": "abc-123\n"})  # as a server passes it
    assert answer.status_code == 200
    assert len(answer.headers["X-Request-ID"]) == 36
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_security_headers_on_every_answer(client):
    for response in (client.get("/healthz"), client.get("/nope")):
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_security_headers_replace_a_views_own_keep_its_cache_and_csp_and_appear_once(tmp_path):
    app = create_app({"database_url": f"sqlite:///{tmp_path / 'h.sqlite3'}", "instance_path": str(tmp_path)})

    @app.route("/own-headers")
    def own_headers():
        return "x", 200, {"X-Frame-Options": "SAMEORIGIN", "X-Request-ID": "forged",
                          "Referrer-Policy": "origin", "Cache-Control": "private, max-age=60",
                          "Content-Security-Policy": "default-src 'self'"}

    client = app.test_client()
    answer = client.get("/own-headers", headers={"X-Request-ID": "abc-123"})
    assert answer.headers.getlist("X-Frame-Options") == ["DENY"]
    assert answer.headers.getlist("X-Request-ID") == ["abc-123"]
    assert answer.headers.getlist("Referrer-Policy") == ["no-referrer"]
    assert answer.headers.getlist("X-Content-Type-Options") == ["nosniff"]
    assert answer.headers.getlist("Cache-Control") == ["private, max-age=60"]
    assert answer.headers.getlist("Content-Security-Policy") == ["default-src 'self'"]
    assert "Strict-Transport-Security" not in answer.headers
    secure = client.get("/healthz", base_url="https://localhost")
    assert secure.headers.getlist("Strict-Transport-Security") == ["max-age=63072000; includeSubDomains"]
    assert secure.headers.getlist("Cache-Control") == ["no-store"]
    assert secure.headers.getlist("Content-Security-Policy") == ["default-src 'none'; frame-ancestors 'none'"]


def test_docs_and_swagger_served(client):
    docs = client.get("/docs")
    assert docs.status_code == 200 and b"swagger" in docs.data.lower()
    spec = client.get("/swagger.json").get_json()
    assert spec["swagger"] == "2.0" and "/healthz" in spec["paths"]


def test_swagger_ui_can_be_turned_off(tmp_path):
    app = create_app({"instance_path": str(tmp_path), "swagger_ui": False})
    assert app.test_client().get("/docs").status_code == 404


class _EchoSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    name = ma.fields.String(required=True, validate=ma.validate.Length(max=5))
    count = ma.fields.Integer(required=True)
    nested = ma.fields.Nested(
        type("_Inner", (ma.Schema,), {"when": ma.fields.Date(required=True)}), required=False
    )


@pytest.fixture
def echo_client(tmp_path):
    """An app with one extra route that loads a body through http.load()."""
    app = create_app({"instance_path": str(tmp_path)})
    api = app.extensions["referral_api.api"]
    ns = Namespace("echo", path="/api/v1/echo")

    @ns.route("")
    class Echo(Resource):
        def post(self):
            data = load(_EchoSchema())
            return with_etag({"name": data["name"], "count": data["count"]})

    api.add_namespace(ns)
    return app.test_client()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "ok", "count": "many"}, "count"),
        ({"name": "far too long", "count": 1}, "name"),
        ({"count": 1}, "name"),
        ({"name": "ok", "count": 1, "status": "accepted"}, "status"),
        ({"name": "ok", "count": 1, "nested": {"when": "yesterday"}}, "nested.when"),
        ([1, 2], "body"),
    ],
)
def test_invalid_fields_are_422_naming_the_field(echo_client, body, field):
    body = assert_problem(echo_client.post("/api/v1/echo", json=body), 422)
    assert field in body["errors"], body


def test_malformed_json_is_400_problem(echo_client):
    response = echo_client.post("/api/v1/echo", data='{"name": ', content_type="application/json")
    body = assert_problem(response, 400)
    assert "body" in body["errors"]
    assert '{"name"' not in response.get_data(as_text=True)


def test_valid_body_gets_etag(echo_client):
    response = echo_client.post("/api/v1/echo", json={"name": "ok", "count": 2})
    assert response.status_code == 200
    assert response.headers["ETag"].startswith('"')


@pytest.mark.parametrize("if_match", [None, "*", '"abc"', 'W/"abc"', '"old", "abc"'])
def test_if_match_passes(if_match):
    require_current(if_match, '"abc"', what="record")


@pytest.mark.parametrize("if_match", ['"def"', '"abc-ish"', ""])
def test_if_match_stale_is_412(if_match):
    with pytest.raises(PreconditionFailed) as info:
        require_current(if_match, '"abc"', what="referral")
    assert info.value.status == 412 and "referral" in info.value.detail


def test_cursor_round_trip_and_damage(tmp_path):
    assert decode_cursor(encode_cursor(["2026-01-01", "x"]), size=2) == ["2026-01-01", "x"]
    app = create_app({"instance_path": str(tmp_path)})
    with app.test_request_context():
        for bad in ("!!!", encode_cursor(["only-one"]), "e30"):
            with pytest.raises(Exception) as info:
                decode_cursor(bad, size=2)
            assert info.value.errors == {"cursor": ["not a cursor this list gave out"]}


def test_unhandled_error_is_500_problem_revealing_nothing(tmp_path):
    app = create_app({"instance_path": str(tmp_path)})

    @app.route("/boom")
    def boom():
        raise RuntimeError("SELECT secret FROM people")

    response = app.test_client().get("/boom")
    body = assert_problem(response, 500)
    assert "secret" not in json.dumps(body)


def test_a_database_error_never_shows_a_statements_values(app):
    # the log of an unexpected error carries the exception's text: SQLAlchemy's adds the values
    from referral_api.db import database

    with database(app).engine.connect() as connection, pytest.raises(sa.exc.DBAPIError) as raised:
        connection.execute(sa.text("SELECT :value || no_such_column"), {"value": "a.person@example.org"})
    assert "no_such_column" in str(raised.value)
    assert "a.person@example.org" not in str(raised.value)
