"""The MGEC console over the Flask test client: sign-in, session, CSRF, headers, access, audit, words.

The browser tests (tests/browser/) drive the same pages in real Chromium.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from referral_api.access import Role
from referral_api.audit.actions import AuditAction
from referral_api.audit.models import AuditEvent
from referral_api.auth.models import Token, secret_hash
from referral_api.console import oauth
from referral_api.console.models import ConsoleSession
from referral_api.db import utcnow
from referral_api.referrals.models import Referral
from referral_api.referrals.states import ReferralStatus
from tests import console_helpers as c
from tests import oauth_helpers as h
from tests.console_helpers import console, signed_in  # noqa: F401  (the fixture and its sign-in)

HEADERS_PAGES = (
    "/console/queue",
    "/console/cases",
    "/console/cases/list",
    "/console/shelters",
    "/console/reports",
)


def test_root_and_console_lead_to_sign_in(client):
    assert client.get("/").headers["Location"].endswith("/console/")
    assert client.get("/console/").headers["Location"].endswith("/console/login")
    assert client.get("/console/queue").headers["Location"].startswith("/console/login")


def test_sign_in_keeps_the_token_server_side_behind_a_strict_cookie(client, session, console):
    answer = signed_in(client, session, console)
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # development over http on the loopback
    value = c.session_cookie(client)
    row = session.scalar(sa.select(ConsoleSession).where(ConsoleSession.user_id == console.coordinator.id))
    assert row.session_hash == secret_hash(value) and value not in row.session_hash
    token = session.get(Token, row.token_id)
    assert token.user_id == console.coordinator.id and "referrals:review" in token.scope
    assert row.sealed_refresh_token and b"." not in row.sealed_refresh_token[:0]
    assert client.get("/console/queue").status_code == 200


def test_cookie_is_secure_over_https(app, client, session, console):
    with app.app_context():
        c.register(session, "https://localhost/console/callback")
    start = client.get("/console/login/start", base_url="https://localhost")
    assert "Secure" in start.headers["Set-Cookie"]


def test_a_callback_not_started_by_this_browser_is_refused(client, session, console):
    answer = client.get("/console/callback?code=abc&state=def")
    assert answer.status_code == 400 and "console_session=" not in answer.headers.get("Set-Cookie", "")


def test_every_console_page_sends_the_strict_headers(client, session, console):
    signed_in(client, session, console)
    pages = [*HEADERS_PAGES, f"/console/referrals/{console.referral.id}", "/console/nowhere"]
    for path in pages:
        answer = client.get(path)
        assert answer.status_code == (404 if path == "/console/nowhere" else 200), path
        csp = answer.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "unsafe-inline" not in csp and "script-src 'self'" in csp, path
        assert answer.headers["Referrer-Policy"] == "no-referrer", path
        assert answer.headers["Cache-Control"] == "no-store", path
        assert "<style" not in answer.get_data(as_text=True) and " style=" not in answer.get_data(
            as_text=True
        )


@pytest.mark.parametrize("token", [None, "wrong"])
def test_csrf_missing_or_wrong_is_400_and_nothing_changes(client, session, console, token):
    signed_in(client, session, console)
    page = client.get(f"/console/referrals/{console.referral.id}").get_data(as_text=True)
    form = {"version": c.version_of(page), "target": "new"}
    if token:
        form["csrf_token"] = token
    answer = client.post(f"/console/referrals/{console.referral.id}/accept", data=form)
    assert answer.status_code == 400
    session.expire_all()
    assert session.get(Referral, console.referral.id).status is ReferralStatus.SUBMITTED


def test_an_idle_session_expires_and_its_token_is_revoked(client, session, console):
    signed_in(client, session, console)
    row = session.scalar(sa.select(ConsoleSession).where(ConsoleSession.user_id == console.coordinator.id))
    row.last_seen_at = utcnow() - timedelta(minutes=16)
    session.commit()
    answer = client.get("/console/queue")
    assert answer.status_code == 302 and "expired=1" in answer.headers["Location"]
    session.expire_all()
    assert session.get(Token, row.token_id).access_revoked_at is not None
    assert client.get("/console/queue").headers["Location"].startswith("/console/login")


def test_a_session_in_use_outlives_its_access_token_by_refreshing(client, session, console):
    signed_in(client, session, console)
    row = session.scalar(sa.select(ConsoleSession).where(ConsoleSession.user_id == console.coordinator.id))
    first = session.get(Token, row.token_id)
    first.expires_in = 1
    first.issued_at = utcnow() - timedelta(minutes=5)
    session.commit()
    assert client.get("/console/queue").status_code == 200
    session.expire_all()
    assert session.get(ConsoleSession, row.id).token_id != first.id


def test_sign_out_revokes_the_token_server_side(client, session, console):
    signed_in(client, session, console)
    row = session.scalar(sa.select(ConsoleSession).where(ConsoleSession.user_id == console.coordinator.id))
    html = client.get("/console/queue").get_data(as_text=True)
    answer = client.post("/console/logout", data={"csrf_token": c.csrf_of(html)})
    assert answer.status_code == 302 and "signed_out=1" in answer.headers["Location"]
    session.expire_all()
    token = session.get(Token, row.token_id)
    assert token.access_revoked_at is not None and token.refresh_revoked_at is not None
    assert session.get(ConsoleSession, row.id).ended_at is not None
    assert client.get("/console/queue").status_code == 302


def test_partner_people_and_systems_get_no_mgec_page(client, session, console):
    officer, totp = h.person(session, console.orgs["embassy"], Role.PARTNER_OFFICER)
    assert c.sign_in(client, session, officer, totp).status_code == 302
    for path in (*HEADERS_PAGES, f"/console/referrals/{console.referral.id}"):
        assert client.get(path).status_code == 403, path
    assert client.get("/console/").headers["Location"].endswith("/console/partner/cases")
    system = client.application.test_client()
    for path in HEADERS_PAGES:
        assert system.get(path, headers=console.headers("police")).status_code == 403, path


def test_four_eyes_the_submitter_sees_no_accept_and_a_forged_post_is_refused(app, client, session, console):
    client_id = oauth.find_client(session).client_id
    with app.app_context():
        own = c.submit(
            session,
            c.actor_for(console.coordinator, client_id),
            source="hotline",
            external_reference="HOTLINE-1",
        )
    signed_in(client, session, console)
    queue = client.get("/console/queue").get_data(as_text=True)
    assert "You submitted it: another coordinator decides" in queue
    html = client.get(f"/console/referrals/{own.id}").get_data(as_text=True)
    assert "Four eyes" in html and "/accept" not in html and "/reject" not in html
    forged = client.post(
        f"/console/referrals/{own.id}/accept",
        data={"csrf_token": c.csrf_of(html), "version": c.version_of(html), "target": "new"},
    )
    assert forged.status_code == 403
    session.expire_all()
    assert session.get(Referral, own.id).status is ReferralStatus.SUBMITTED


def test_a_stale_form_is_explained_not_an_error(client, session, console):
    signed_in(client, session, console)
    html = client.get(f"/console/referrals/{console.referral.id}").get_data(as_text=True)
    stale = c.version_of(html)
    client.post(
        f"/console/referrals/{console.referral.id}/review",
        data={"csrf_token": c.csrf_of(html), "version": stale},
    )
    answer = client.post(
        f"/console/referrals/{console.referral.id}/accept",
        data={"csrf_token": c.csrf_of(html), "version": stale, "target": "new"},
    )
    assert answer.status_code == 412
    assert "Someone changed this referral a moment ago" in answer.get_data(as_text=True)
    session.expire_all()
    assert session.get(Referral, console.referral.id).status is ReferralStatus.UNDER_REVIEW


def test_reading_a_referral_and_a_case_is_audited_as_through_the_api(client, session, console):
    signed_in(client, session, console)
    html = client.get(f"/console/referrals/{console.referral.id}").get_data(as_text=True)
    answer = client.post(
        f"/console/referrals/{console.referral.id}/accept",
        data={"csrf_token": c.csrf_of(html), "version": c.version_of(html), "target": "new"},
    )
    assert answer.status_code == 303
    case_path = answer.headers["Location"]
    assert client.get(case_path).status_code == 200
    events = session.scalars(
        sa.select(AuditEvent).where(AuditEvent.user_id == str(console.coordinator.id))
    ).all()
    actions = {(e.action, e.resource_id) for e in events}
    assert (AuditAction.REFERRAL_READ.value, str(console.referral.id)) in actions
    assert (AuditAction.REFERRAL_SEARCH_DUPLICATES.value, str(console.referral.id)) in actions
    assert any(a == AuditAction.CASE_READ.value for a, _ in actions)


def test_queue_puts_the_most_urgent_first_and_filters(app, client, session, console):
    police = c.partner_actor(console.orgs["police"])
    ctx = app.app_context()
    ctx.push()
    routine = c.submit(
        session,
        police,
        external_reference="MO-2",
        situation__urgency="routine",
        person__passport_number="E7654321",
        person__national_id="УБ01010101",
        person__family_name="Bold",
        person__given_name="Saraa",
        person__names_cyrillic="Болд Сараа",
    )
    emergency = c.submit(
        session,
        police,
        external_reference="MO-3",
        situation__urgency="emergency",
        person__passport_number="E1111111",
        person__national_id="УБ02020202",
        person__family_name="Tsend",
        person__given_name="Oyun",
        person__names_cyrillic="Цэнд Оюун",
    )
    ctx.pop()
    signed_in(client, session, console)
    html = client.get("/console/queue").get_data(as_text=True)
    assert (
        html.index(emergency.reference)
        < html.index(console.referral.reference)
        < html.index(routine.reference)
    )
    only = client.get("/console/queue?urgency=routine").get_data(as_text=True)
    assert routine.reference in only and emergency.reference not in only


def test_language_switch_is_remembered_and_never_leaves_the_site(client, session, console):
    signed_in(client, session, console, english=False)
    assert "Хянах шилжүүлгүүд" in client.get("/console/queue").get_data(as_text=True)  # Mongolian first
    answer = client.get("/console/language/en?next=/console/queue")
    assert answer.headers["Location"] == "/console/queue"
    assert "Review queue" in client.get("/console/queue").get_data(as_text=True)
    row = session.scalar(sa.select(ConsoleSession).where(ConsoleSession.user_id == console.coordinator.id))
    session.refresh(row)
    assert row.language == "en"
    for elsewhere in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        answer = client.get("/console/language/mn", query_string={"next": elsewhere})
        assert answer.headers["Location"] == "/console/", elsewhere
    # a control character in any query value is refused before the view (one rule, http.check_request_text)
    answer = client.get("/console/language/mn", query_string={"next": "/\t/evil.example/"})
    assert answer.status_code == 400 and "Location" not in answer.headers
    assert answer.mimetype == "text/html"


def test_reports_page_draws_svg_charts_and_marks_suppressed_cells(client, session, console):
    signed_in(client, session, console)
    html = client.get("/console/reports").get_data(as_text=True)
    assert html.count("<svg") >= 2
    assert 'class="suppressed"' in html  # one referral: under REPORT_MIN_CELL
    export = client.get("/console/reports/ctdc.csv")
    assert export.status_code == 200 and export.mimetype == "text/csv"


def test_every_console_route_is_guarded_or_public(app):
    rules = [r for r in app.url_map.iter_rules() if r.rule.startswith("/console")]
    assert len(rules) > 10
    for rule in rules:
        view = app.view_functions[rule.endpoint]
        if rule.endpoint == "console.static":
            continue
        assert hasattr(view, "__console_scopes__") or getattr(view, "__console_public__", False), rule.rule


def test_register_client_command_derives_the_secret(app, run_cli, session, world):
    result = run_cli(
        "console", "register-client", "--redirect-uri", "https://mgec.example/console/callback", "--json"
    )
    assert result.exit_code == 0, result.output
    client = oauth.find_client(session)
    assert "https://mgec.example/console/callback" in client.redirect_uris
    with app.app_context():
        assert client.client_secret_hash == secret_hash(oauth.client_secret(client.client_id))
    again = run_cli("console", "register-client", "--redirect-uri", "http://127.0.0.1:5000/console/callback")
    assert again.exit_code == 0 and oauth.find_client(session).client_id == client.client_id


def test_a_partners_client_named_like_the_console_is_not_taken_for_it(app, run_cli, session, world):
    from referral_api.auth.services import create_client

    impostor = create_client(session, organisation=str(world.orgs["police"].id), name=oauth.CLIENT_NAME,
                             scopes=["referrals:read"], grant_types=["authorization_code"],
                             redirect_uris=["https://police.example/callback"])
    session.commit()
    before = impostor.client.client_secret_hash
    result = run_cli("console", "register-client", "--redirect-uri", "https://mgec.example/console/callback")
    assert result.exit_code == 0, result.output
    session.expire_all()
    console_client = oauth.find_client(session)
    assert console_client.organisation_id == world.orgs["mgec"].id
    assert console_client.client_id != impostor.client.client_id
    assert impostor.client.client_secret_hash == before  # its secret left alone


def test_demo_seed_registers_the_console_for_make_run(app, run_cli, session):
    result = run_cli("demo", "seed", "--json")
    assert result.exit_code == 0, result.output
    assert '"url": "http://127.0.0.1:5000/"' in result.output
    client = oauth.find_client(session)
    assert "http://127.0.0.1:5000/console/callback" in client.redirect_uris.split()


def test_the_sign_in_form_speaks_mongolian_when_the_console_sends_you(client, session, console):
    start = client.get("/console/login/start")
    form = client.get(start.headers["Location"]).get_data(as_text=True)
    assert '<html lang="mn">' in form and "Нэг удаагийн код" in form and "Нэвтрэх" in form
    switch = client.get("/console/language/en", query_string={"next": start.headers["Location"]})
    assert switch.headers["Location"] == start.headers["Location"]
    assert "One-time code" in client.get(switch.headers["Location"]).get_data(as_text=True)
