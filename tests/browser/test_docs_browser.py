"""Swagger UI at /docs in real Chromium: a partner developer authorizes with the client-credentials flow
through the Authorize dialog (their client's id and secret), executes `GET /api/v1/referrals` from the
page and gets 200; the same call before authorizing gets 401 (the operation's security is declared).
An MGEC caseworker signs in through the authorization code with PKCE and the public docs client."""

from __future__ import annotations

import threading

import pytest
from werkzeug.serving import make_server

from referral_api import create_app, dbmigrate
from referral_api.access import Role
from referral_api.auth import docs_ui
from referral_api.db import database, get_session
from referral_api.organisations.models import OrganisationKind
from tests import oauth_helpers as h
from tests.browser import test_console_browser as mgec_console
from tests.browser.test_console_browser import SCREENSHOTS

browser = mgec_console.browser  # the same Chromium fixture (and the same CI rule: fail, never skip)
CASEWORKER = "caseworker@mgec.example"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("docs")
    app = create_app({"database_url": f"sqlite:///{folder / 'db.sqlite3'}", "instance_path": str(folder),
                      "TESTING": True})
    dbmigrate.upgrade(database(app))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    with app.app_context():
        session = get_session()
        mgec = h.organisation(session, OrganisationKind.MGEC)
        police = h.organisation(session, OrganisationKind.POLICE)
        partner, secret = h.secret_client(session, police, scopes="referrals:read referrals:submit")
        credentials = (partner.client_id, secret)
        base = f"http://127.0.0.1:{server.server_port}"
        docs_ui.register_docs_client(session, redirect_uris=[docs_ui.docs_redirect_uri(base)])
        h.person(session, mgec, Role.MGEC_CASEWORKER, email=CASEWORKER)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", credentials
    finally:
        server.shutdown()
        thread.join(timeout=5)
        database(app).engine.dispose()


def _execute_list_referrals(page) -> str:
    """Open listReferrals, Try it out, Execute; the status code of the call, as Swagger UI shows it."""
    operation = page.locator("#operations-referrals-listReferrals")
    if not operation.locator("button.execute").count():
        operation.locator(".opblock-summary").first.click()
        operation.locator("button.try-out__btn").click()
    if operation.locator("button.btn-clear").count():
        operation.locator("button.btn-clear").click()  # the previous answer goes
    with page.expect_response(lambda r: "/api/v1/referrals" in r.url) as call:
        operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status").first
    status.wait_for(timeout=15000)
    shown = status.inner_text().strip()
    assert shown == str(call.value.status)
    return shown


def test_swagger_ui_authorizes_with_client_credentials_and_lists_referrals(browser, site):
    base, (client_id, secret) = site
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    tokens = []
    page.on("response", lambda r: tokens.append(r.status) if r.url.endswith("/oauth/token") else None)
    page.goto(base + "/docs")
    page.locator("#operations-referrals-listReferrals").wait_for(timeout=15000)
    assert _execute_list_referrals(page) == "401"  # no token yet: the call goes out without one

    page.locator(".scheme-container button.authorize").click()
    dialog = page.locator(".dialog-ux .modal-ux")
    flow = dialog.locator(".auth-container", has_text="oauth2_client_credentials")
    flow.locator("#client_id").fill(client_id)
    flow.locator("#client_secret").fill(secret)
    flow.locator("button.authorize").click()
    # authorized: Swagger UI hides the secret and offers to log out
    flow.get_by_role("button", name="Logout").wait_for(timeout=15000)
    assert tokens == [200] and "Authorized" in flow.inner_text()
    flow.get_by_role("button", name="Close").click()

    assert _execute_list_referrals(page) == "200"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # the curl example and the request headers carry the bearer token: masked in the picture
    secrets_shown = [page.locator(".curl-command"), page.locator(".request-url")]
    page.screenshot(path=str(SCREENSHOTS / "docs-authorized-list-referrals.png"), mask=secrets_shown,
                    mask_color="#333333")
    context.close()


def test_swagger_ui_signs_a_person_in_with_pkce_through_the_docs_client(browser, site):
    base, _credentials = site
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    exchanges = []
    page.on("request",
            lambda r: exchanges.append(r.post_data or "") if r.url.endswith("/oauth/token") else None)
    page.goto(base + "/docs")
    page.locator(".scheme-container button.authorize").click()
    flow = page.locator(".dialog-ux .modal-ux .auth-container", has_text="oauth2_authorization_code")
    assert flow.locator("#client_id").input_value().startswith("cl_")  # the docs client, filled in
    flow.get_by_text("select all").click()
    with page.expect_popup() as popup:
        flow.locator("button.authorize").click()
    login = popup.value
    login.wait_for_load_state()
    assert "code_challenge_method=S256" in login.url
    login.locator("#email").fill(CASEWORKER)
    login.locator("#password").fill(h.PASSWORD)
    login.locator("button[type=submit]").click()
    flow.get_by_role("button", name="Logout").wait_for(timeout=15000)
    assert len(exchanges) == 1 and "code_verifier=" in exchanges[0] and "client_secret" not in exchanges[0]
    page.get_by_role("button", name="Close").first.click()
    assert _execute_list_referrals(page) == "200"
    context.close()
