"""The partners' console and administration in real Chromium (the same setup as test_console_browser.py).

An embassy officer records the travel documents of a case their embassy takes part in and cannot open
another embassy's; an NGO officer refers a person through the web form (a deliberate error first);
an MGEC admin registers a police client, sees its secret once and revokes it; a partner officer gets
403 on an MGEC page. Every page is checked with axe-core and photographed in both languages.
"""

from __future__ import annotations

import re
import threading

import pyotp
import pytest
from werkzeug.serving import make_server

from referral_api import create_app, dbmigrate
from referral_api.access import Role
from referral_api.auth import services as auth_services
from referral_api.cases import participants
from referral_api.cases.schemas import ParticipantInSchema
from referral_api.console import oauth
from referral_api.db import database, get_session
from referral_api.organisations import services as org_services
from referral_api.organisations.models import OrganisationKind
from referral_api.referrals import services as referral_services
from referral_api.referrals.schemas import AcceptInSchema
from tests import console_helpers as c
from tests import oauth_helpers as h
from tests.browser import test_console_browser as mgec_console
from tests.browser.test_console_browser import PASSWORD, Visit, _day

browser = mgec_console.browser  # the same Chromium fixture

LANGS = ("en", "mn")
ORGS = {
    "mgec": ("Mongolian Gender Equality Center", OrganisationKind.MGEC, "MN"),
    "police": ("Public Security Police Force of Macau", OrganisationKind.POLICE, "MO"),
    "embassy": ("Embassy of Mongolia in Beijing", OrganisationKind.EMBASSY, "CN"),
    "embassy2": ("Embassy of Mongolia in Seoul", OrganisationKind.EMBASSY, "KR"),
    "ngo": ("FIZ Zurich", OrganisationKind.NGO, "CH"),
}


def _person(session, org, email, role):
    issued = auth_services.create_user(
        session, organisation=str(org.id), email=email, role=role, password=PASSWORD, name=email
    )
    return email, pyotp.parse_uri(issued.totp_uri) if issued.totp_uri else None


def _case(session, orgs, coordinator, embassy_key: str, tag: str, passport: str):
    """A police referral, accepted by a coordinator, with `embassy_key`'s embassy taking part."""
    referral = c.submit(
        session,
        c.partner_actor(orgs["police"], "cl_police"),
        external_reference=f"MO-{tag}",
        person__passport_number=passport,
        person__national_id=f"УБ{passport[1:]}0",
    )
    accepted = referral_services.accept(
        session, coordinator, ref=str(referral.id), data=AcceptInSchema().load({})
    )
    role = {"organisation_id": str(orgs[embassy_key].id), "role": "embassy"}
    participants.add_participant(
        session, coordinator, str(accepted.case_id), ParticipantInSchema().load(role)
    )
    return str(accepted.case_id)


def _seed(session, base):
    orgs = {
        k: org_services.create(session, name=n, kind=kind, country=cc) for k, (n, kind, cc) in ORGS.items()
    }
    client = oauth.register_client(session, redirect_uris=[f"{base}/console/callback"])
    coordinator_user = auth_services.create_user(
        session,
        organisation=str(orgs["mgec"].id),
        email="coordinator@mgec.example",
        role=Role.MGEC_COORDINATOR,
        password=PASSWORD,
    ).user
    coordinator = c.actor_for(coordinator_user, client.client_id)
    facts = {"people": {}, "cases": {}}
    for n, lang in enumerate(LANGS):
        facts["cases"][lang] = (
            _case(session, orgs, coordinator, "embassy", f"OURS-{lang}", f"E110000{n}"),
            _case(session, orgs, coordinator, "embassy2", f"THEIRS-{lang}", f"E220000{n}"),
        )
        for who, org, role in (
            ("embassy", "embassy", Role.PARTNER_OFFICER),
            ("ngo", "ngo", Role.PARTNER_OFFICER),
            ("admin", "mgec", Role.MGEC_ADMIN),
            ("trail_admin", "mgec", Role.MGEC_ADMIN),  # another admin: a TOTP code is taken once
        ):
            facts["people"][(who, lang)] = _person(session, orgs[org], f"{who}-{lang}@partner.example", role)
    facts["police_id"] = str(orgs["police"].id)
    facts["erasable"] = {
        lang: c.submit(
            session,
            c.partner_actor(orgs["police"], "cl_police"),
            external_reference=f"MO-ERASE-{lang}",
            person__passport_number=f"E33000{n}0",
            person__national_id=f"УБ330{n}0000",
        ).reference
        for n, lang in enumerate(LANGS)
    }
    return facts


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The app on a fresh SQLite database, served on 127.0.0.1 by a real HTTP server in a thread."""
    folder = tmp_path_factory.mktemp("partners")
    app = create_app(
        {"database_url": f"sqlite:///{folder / 'db.sqlite3'}", "instance_path": str(folder), "TESTING": True}
    )
    dbmigrate.upgrade(database(app))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    with app.app_context():
        facts = _seed(get_session(), base)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base, facts
    finally:
        server.shutdown()
        thread.join(timeout=5)
        database(app).engine.dispose()


def _sign_in(visit: Visit, email: str, totp: pyotp.TOTP | None, landing: str) -> None:
    visit.go(f"/console/language/{visit.lang}?next=/console/")
    visit.page.fill("#email", email)
    visit.page.fill("#password", PASSWORD)
    visit.page.fill("#totp", totp.now() if totp else "")
    visit.page.click("button[type=submit]")
    visit.page.wait_for_url(re.compile(rf".*{landing}$"))


def _look(visit: Visit, name: str) -> None:
    visit.axe(name)
    visit.shot(name)


@pytest.mark.parametrize("lang", LANGS)
def test_an_embassy_officer_records_travel_documents(site, browser, lang):
    base, facts = site
    ours, theirs = facts["cases"][lang]
    visit = Visit(browser, base, lang)
    _sign_in(visit, *facts["people"][("embassy", lang)], "/console/partner/cases")
    rows = visit.page.locator("table.list tbody tr")
    assert rows.count() == 2  # one case of this language's pair, one of the other: both ours, none theirs
    assert "THEIRS" not in visit.text()
    _look(visit, "partner-cases")
    visit.go(f"/console/partner/cases/{ours}")
    visit.move("travel_documents", {"verified_on": _day(3), "method": "passport"})
    visit.move("travel_planning", {"document_type": "emergency_travel_document", "issued_on": _day(1)})
    timeline = visit.page.locator("ol.timeline").inner_text()
    assert timeline.count("→") == 2
    assert {"en": "Emergency travel document", "mn": "Эх орондоо буцах үнэмлэх"}[
        lang
    ].lower() in timeline.lower()
    _look(visit, "partner-case")
    assert visit.page.goto(f"{base}/console/partner/cases/{theirs}").status == 404
    assert visit.page.goto(f"{base}/console/queue").status == 403
    _look(visit, "partner-forbidden")
    visit.go("/console/partner/webhooks")
    assert visit.page.locator("#field-url").is_visible()
    _look(visit, "partner-webhooks")
    assert visit.csp_reports == [], visit.csp_reports
    visit.context.close()


@pytest.mark.parametrize("lang", LANGS)
def test_an_ngo_officer_refers_a_person_through_the_form(site, browser, lang):
    base, facts = site
    visit = Visit(browser, base, lang)
    _sign_in(visit, *facts["people"][("ngo", lang)], "/console/partner/cases")
    visit.page.click(f"nav >> text={ {'en': 'New referral', 'mn': 'Шинэ шилжүүлэг'}[lang] }")
    page = visit.page
    page.select_option("#field-source", "ngo")
    page.fill("#field-external_reference", f"FIZ-{lang}-1")
    page.fill("[id='field-person.given_name']", "Oyuntsetseg")
    page.fill("[id='field-person.family_name']", "Bat")
    page.fill("[id='field-person.date_of_birth']", "1996-02-03")
    page.fill("[id='field-person.passport_number']", "!!")  # the deliberate error
    page.select_option("[id='field-situation.identified_country']", "CH")
    page.fill("[id='field-situation.identified_on']", _day(5))
    page.check("input[name='situation.exploitation_types'][value=forced_labour]")
    page.fill("[id='field-situation.narrative']", "Кафед цалингүй ажиллуулсан.")
    page.check("input[name='consent.given'][value=yes]")
    page.fill("[id='field-consent.obtained_on']", _day(4))
    page.select_option("[id='field-consent.method']", "written")
    page.click("form.intake button[type=submit]")
    assert page.locator(".error-summary").is_visible()
    assert page.input_value("[id='field-person.given_name']") == "Oyuntsetseg"
    assert page.input_value("[id='field-situation.narrative']") == "Кафед цалингүй ажиллуулсан."
    assert page.is_checked("input[name='situation.exploitation_types'][value=forced_labour]")
    assert page.locator("[id='error-person.passport_number']").is_visible()
    _look(visit, "intake-errors")
    page.fill("[id='field-person.passport_number']", "E7654321")
    page.click("form.intake button[type=submit]")
    page.wait_for_url(re.compile(r".*/console/partner/referrals/[0-9a-f-]{36}$"))
    _look(visit, "partner-referral")
    page.click(f"nav >> text={ {'en': 'Our referrals', 'mn': 'Бидний шилжүүлгүүд'}[lang] }")
    assert f"FIZ-{lang}-1" in visit.text()
    _look(visit, "partner-referrals")
    assert visit.csp_reports == [], visit.csp_reports
    visit.context.close()


@pytest.mark.parametrize("lang", LANGS)
def test_an_admin_registers_a_police_client_then_revokes_it(site, browser, lang):
    base, facts = site
    visit = Visit(browser, base, lang)
    _sign_in(visit, *facts["people"][("admin", lang)], "/console/queue")
    visit.go("/console/admin/organisations")
    _look(visit, "admin-organisations")
    visit.go("/console/admin/clients")
    page = visit.page
    page.select_option("#field-organisation", facts["police_id"])
    page.fill("#field-name", f"Macau case system {lang}")
    page.check("input[name=scopes][value='referrals:read']")
    page.click("form[action$='/admin/clients'] button[type=submit]")
    client_id = page.inner_text("#issued-client-id")
    secret = page.inner_text("#issued-secret")
    _look(visit, "admin-client-secret")
    page.goto(base + "/console/admin/clients")
    assert secret not in page.content()
    token = visit.context.request.post(
        base + "/oauth/token",
        form={"grant_type": "client_credentials"},
        headers=h.basic(client_id, secret),  # the form's default method: client_secret_basic
    )
    assert token.status == 200
    bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
    assert visit.context.request.get(base + "/api/v1/referrals", headers=bearer).status == 200
    row = page.locator("tr", has=page.locator(f"text={client_id}"))
    row.locator("form[action$='/revoke'] button").click()
    page.wait_for_load_state()
    assert visit.context.request.get(base + "/api/v1/referrals", headers=bearer).status == 401
    _look(visit, "admin-clients")
    page.click(f"nav >> text={ {'en': 'People', 'mn': 'Хэрэглэгчид'}[lang] }")
    page.wait_for_url(re.compile(r".*/console/admin/people$"))
    page.select_option("#field-organisation", label="Embassy of Mongolia in Seoul")
    page.fill("#field-email", f"consul-{lang}@embassy-seoul.example")
    page.select_option("#field-role", "partner_officer")
    page.click("form[action$='/admin/people'] button[type=submit]")
    assert page.locator("#issued-qr").is_visible()  # an embassy officer enrols an authenticator
    assert page.evaluate("document.querySelector('#issued-qr').naturalWidth") > 0  # the SVG renders
    _look(visit, "admin-people")
    visit.context.close()


@pytest.mark.parametrize("lang", LANGS)
def test_an_admin_reads_the_trail_runs_retention_and_erases_on_request(site, browser, lang):
    base, facts = site
    visit = Visit(browser, base, lang)
    _sign_in(visit, *facts["people"][("trail_admin", lang)], "/console/queue")
    page = visit.page
    page.click(f"nav >> text={ {'en': 'Audit trail', 'mn': 'Хяналтын бүртгэл'}[lang] }")
    page.select_option("#field-action", "auth:login:succeed")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r".*action=auth%3Alogin%3Asucceed.*"))
    actions = page.locator("#events tbody tr td:nth-child(3)").all_inner_texts()
    assert actions and set(actions) == {"auth:login:succeed"}
    page.click("form[action$='/admin/audit/verify'] button[type=submit]")
    page.locator("#verify-result").wait_for()
    assert {"en": "Intact", "mn": "Бүрэн бүтэн"}[lang] in page.inner_text("#verify-result")
    _look(visit, "admin-audit")
    visit.go("/console/admin/retention")
    assert page.inner_text("#due-referrals") == "0"
    page.click("form[action$='/admin/retention'] button[type=submit]")  # not confirmed: refused
    page.locator("#error-confirm").wait_for()
    page.check("#field-confirm")
    page.click("form[action$='/admin/retention'] button[type=submit]")
    page.locator("#retention-report").wait_for()
    _look(visit, "admin-retention")
    visit.go("/console/admin/erasure")
    page.check("input[name=kind][value=referral]")
    page.fill("#field-reference", facts["erasable"][lang])
    page.select_option("#field-reason", "person_request")
    page.click("form[action$='/admin/erasure'] button[type=submit]")
    page.locator("#confirm-erasure").wait_for()
    _look(visit, "admin-erasure-confirm")
    page.click("#confirm-erasure button[type=submit]")
    page.locator("#erased").wait_for()
    assert facts["erasable"][lang] in page.inner_text("#erased-referrals")
    _look(visit, "admin-erasure")
    assert visit.csp_reports == [], visit.csp_reports
    visit.context.close()
