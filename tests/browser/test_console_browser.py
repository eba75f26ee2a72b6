"""The MGEC console in real Chromium (Debian's `chromium`, driven by Playwright; never `playwright install`).

One server on the loopback, one browser, a handful of sessions: a coordinator's whole day in English,
the same in Mongolian, and four eyes. Each page is checked with axe-core (from npm, tests/browser) for
serious or critical violations, and its screenshot is written to docs/screenshots/.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from datetime import date, timedelta
from pathlib import Path

import pyotp
import pytest
from werkzeug.serving import make_server

from referral_api import create_app, dbmigrate
from referral_api.access import Role
from referral_api.auth import services as auth_services
from referral_api.console import oauth
from referral_api.db import database, get_session
from referral_api.organisations import services as org_services
from referral_api.organisations.models import OrganisationKind
from tests import console_helpers as c
from tests.referral_data import DELETE

CHROMIUM = "/usr/bin/chromium"
HERE = Path(__file__).resolve().parent
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = HERE.parent.parent / "docs" / "screenshots"
PASSWORD = "a long demo password for the browser"

if not (shutil.which(CHROMIUM) and AXE.exists()):
    if os.environ.get("CI", "").lower() == "true":
        raise RuntimeError("CI needs Debian's chromium and `npm ci --prefix tests/browser` (see .ci/run)")
    pytest.skip("needs /usr/bin/chromium and `make browser-deps`", allow_module_level=True)

playwright = pytest.importorskip("playwright.sync_api")


def _day(days_ago: int) -> str:
    return (date.today() - timedelta(days=days_ago)).isoformat()


def _person(session, org, email):
    issued = auth_services.create_user(
        session,
        organisation=str(org.id),
        email=email,
        role=Role.MGEC_COORDINATOR,
        password=PASSWORD,
        name=email,
    )
    return issued.user, pyotp.parse_uri(issued.totp_uri)


def _pair(session, police, iom, *, tag, family, given, cyrillic, passport, born):
    """A police referral and an earlier IOM referral of the same person (same passport): duplicates."""
    first = c.submit(
        session,
        c.partner_actor(iom, "cl_iom"),
        source="iom",
        external_reference=f"KZ-{tag}",
        person__family_name=family,
        person__given_name=given,
        person__names_cyrillic=cyrillic,
        person__passport_number=passport,
        person__national_id=DELETE,
        person__date_of_birth=born,
        situation__identified_country="KZ",
        situation__identified_city="Almaty",
    )
    second = c.submit(
        session,
        c.partner_actor(police, "cl_police"),
        external_reference=f"MO-{tag}",
        person__family_name=family,
        person__given_name=given,
        person__names_cyrillic=cyrillic,
        person__passport_number=passport,
        person__national_id=DELETE,
        person__date_of_birth=born,
    )
    return first, second


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The app on a fresh SQLite database, served on 127.0.0.1 by a real HTTP server in a thread."""
    folder = tmp_path_factory.mktemp("browser")
    # A small REPORT_MIN_CELL, so that the reports page shows numbers as well as suppressed cells.
    app = create_app(
        {
            "database_url": f"sqlite:///{folder / 'db.sqlite3'}",
            "instance_path": str(folder),
            "report_min_cell": 2,
            "TESTING": True,
        }
    )
    dbmigrate.upgrade(database(app))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    with app.app_context():
        session = get_session()
        orgs = {
            kind: org_services.create(session, name=name, kind=kind, country=country)
            for name, kind, country in (
                ("Mongolian Gender Equality Center", OrganisationKind.MGEC, "MN"),
                ("Public Security Police Force of Macau", OrganisationKind.POLICE, "MO"),
                ("IOM Mission in Kazakhstan", OrganisationKind.IOM, "KZ"),
                ("Embassy of Mongolia in Beijing", OrganisationKind.EMBASSY, "CN"),
            )
        }
        oauth.register_client(session, redirect_uris=[f"{base}/console/callback"])
        mgec, police, iom = (
            orgs[OrganisationKind.MGEC],
            orgs[OrganisationKind.POLICE],
            orgs[OrganisationKind.IOM],
        )
        people = {
            lang: _person(session, mgec, f"coordinator-{lang}@mgec.example") for lang in ("en", "mn", "own")
        }
        pairs = {
            "en": _pair(
                session,
                police,
                iom,
                tag="EN",
                family="Dorj",
                given="Narantsetseg",
                cyrillic="Доржийн Наранцэцэг",
                passport="E2345678",
                born="1997-02-03",
            ),
            "mn": _pair(
                session,
                police,
                iom,
                tag="MN",
                family="Bat",
                given="Solongo",
                cyrillic="Батын Солонго",
                passport="E3456789",
                born="2001-09-21",
            ),
        }
        own_user = people["own"][0]
        own = c.submit(
            session,
            c.actor_for(own_user, oauth.find_client(session).client_id),
            source="hotline",
            external_reference="HOTLINE-OWN",
            situation__identified_country="MN",
            person__passport_number="E4567890",
            person__national_id=DELETE,
            person__family_name="Gan",
            person__given_name="Tuya",
            person__names_cyrillic="Ганы Туяа",
            person__date_of_birth="1994-06-30",
        )
        refs = {lang: (a.reference, b.reference) for lang, (a, b) in pairs.items()}
        facts = {
            "people": {k: (u.email, t) for k, (u, t) in people.items()},
            "refs": refs,
            "own": own.reference,
        }
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base, facts
    finally:
        server.shutdown()
        thread.join(timeout=5)
        database(app).engine.dispose()


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


class Visit:
    """One person's browser session: pages are checked with axe and photographed as they go."""

    def __init__(self, browser, base: str, lang: str) -> None:
        self.base, self.lang = base, lang
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="mn-MN")
        self.page = self.context.new_page()
        self.csp_reports: list[str] = []
        self.page.on(
            "console",
            lambda m: self.csp_reports.append(m.text) if "Content Security Policy" in m.text else None,
        )

    def go(self, path: str) -> None:
        self.page.goto(self.base + path)

    def axe(self, what: str) -> None:
        if not self.page.evaluate("typeof axe !== 'undefined'"):
            self.page.evaluate(AXE.read_text(encoding="utf-8"))
        result = self.page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
        bad = [
            f"{v['id']} ({v['impact']}): {v['help']} – {[n['target'] for n in v['nodes']][:3]}"
            for v in result["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert bad == [], f"axe on the {what} page ({self.lang}): {bad}"

    def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}-{self.lang}.png"), full_page=True)

    def sign_in(self, email: str, totp: pyotp.TOTP) -> None:
        self.go(f"/console/language/{self.lang}?next=/console/")
        assert "/oauth/authorize" in self.page.url
        assert self.page.inner_text("button[type=submit]") == {"en": "Sign in", "mn": "Нэвтрэх"}[self.lang]
        self.axe("sign-in")
        self.page.fill("#email", email)
        self.page.fill("#password", PASSWORD)
        self.page.fill("#totp", totp.now())
        self.page.click("button[type=submit]")
        self.page.wait_for_url(re.compile(r".*/console/queue$"))

    def text(self) -> str:
        return self.page.inner_text("main")

    def move(self, target: str, fields: dict[str, str]) -> None:
        form = self.page.locator("details", has=self.page.locator(f"input[name=to][value={target}]"))
        form.locator("summary").click()
        for name, value in fields.items():
            element = form.locator(f"#field-{target}-{name}")
            if element.evaluate("e => e.tagName") == "SELECT":
                element.select_option(value)
            else:
                element.fill(value)
        form.locator("button[type=submit]").click()
        self.page.wait_for_load_state()


WORDS = {
    "en": {
        "queue": "Review queue",
        "dups": "Possible duplicates",
        "reason": "Same passport number",
        "accept": "Accept the referral",
        "timeline": "Timeline",
        "arrived": "Arrived",
        "entry": "Zamiin-Uud border crossing",
        "reports": "Reports",
        "four_eyes": "Four eyes",
    },
    "mn": {
        "queue": "Хянах шилжүүлгүүд",
        "dups": "Давхардсан байж болзошгүй",
        "reason": "Гадаад паспортын дугаар ижил",
        "accept": "Шилжүүлгийг хүлээн авах",
        "timeline": "Явцын түүх",
        "arrived": "Ирсэн",
        "entry": "Замын-Үүдийн боомт",
        "reports": "Тайлан",
        "four_eyes": "Хоёр хүний хяналт",
    },
}


@pytest.mark.parametrize("lang", ["en", "mn"])
def test_a_coordinators_day(site, browser, lang):
    """Sign in with password and TOTP, find the partner's referral and its duplicate, accept it, add the
    embassy, move the case to arrived at Zamiin-Uud, read the timeline, look at the reports."""
    base, facts = site
    words = WORDS[lang]
    earlier, referral = facts["refs"][lang]
    visit = Visit(browser, base, lang)
    visit.sign_in(*facts["people"][lang])

    assert words["queue"] in visit.text() and referral in visit.text()
    row = visit.page.locator("tr", has=visit.page.locator(f"text={referral}"))
    assert row.locator(".dup").inner_text() == "1"
    visit.axe("queue")
    visit.shot("queue")

    visit.page.click(f"text={referral}")
    assert words["dups"] in visit.text() and earlier in visit.text() and words["reason"] in visit.text()
    visit.axe("referral")
    visit.shot("referral")

    visit.page.click(f"button:has-text('{words['accept']}')")
    visit.page.wait_for_url(re.compile(r".*/console/cases/[0-9a-f-]{36}$"))
    case_url = visit.page.url
    visit.page.fill("#org_q", "Beijing")
    visit.page.click("form[role=search] button")
    options = visit.page.locator("#field-organisation_id option")
    assert options.count() == 1 and "Embassy of Mongolia in Beijing" in options.inner_text()
    visit.page.select_option("#field-organisation_id", index=0)
    visit.page.select_option("#field-role", "embassy")
    visit.page.click("form[action$='/participants'] button")
    participants = visit.page.locator("section[aria-labelledby=h-participants] table").inner_text()
    assert "Embassy of Mongolia in Beijing" in participants

    visit.move(
        "travel_planning",
        {"verified_on": _day(6), "method": "passport", "document_type": "passport", "issued_on": _day(5)},
    )
    visit.move("in_transit", {"route": "land", "departed_on": _day(2), "departure_place": "Erenhot"})
    visit.move("arrived", {"entry_point": "zamiin_uud", "arrived_on": _day(1)})
    assert visit.page.url.split("#")[0] == case_url
    timeline = visit.page.locator("ol.timeline").inner_text()
    assert words["entry"] in timeline and words["arrived"] in timeline
    assert timeline.count("→") >= 3
    visit.axe("case")
    visit.shot("case")

    visit.page.click(f"nav >> text={words['reports']}")
    assert visit.page.locator("svg").count() >= 2
    assert visit.page.inner_text("h1") == words["reports"]
    visit.axe("reports")
    visit.shot("reports")
    assert visit.csp_reports == [], visit.csp_reports
    visit.context.close()


def test_four_eyes_in_the_browser(site, browser):
    """The coordinator who submitted a referral sees why the decision is not theirs; a forged POST fails."""
    base, facts = site
    visit = Visit(browser, base, "en")
    visit.sign_in(*facts["people"]["own"])
    visit.page.click(f"text={facts['own']}")
    assert "Four eyes" in visit.text()
    assert visit.page.locator("button:has-text('Accept the referral')").count() == 0
    action = visit.page.url + "/accept"
    forged = visit.context.request.post(
        action,
        form={
            "csrf_token": visit.page.locator("input[name=csrf_token]").first.input_value(),
            "version": visit.page.locator("input[name=version]").first.input_value(),
            "target": "new",
        },
    )
    assert forged.status == 403
    visit.page.reload()
    assert "Four eyes" in visit.text()
    visit.context.close()
