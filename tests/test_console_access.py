"""The console's access table: every console page x every role, the status each gets and the personal
fields each is shown (docs/domain.md's visibility: MGEC staff see the person; an embassy sees the identity
fields its consent covers; a participant the consent does not cover sees the progress only)."""

from __future__ import annotations

import pytest

from referral_api.console.shell import bp
from tests.console_helpers import csrf_of
from tests.partner_helpers import PEOPLE, partners, sign_in_as  # noqa: F401  (the fixture)

STAFF = ("coordinator", "caseworker", "admin")
PARTNERS = ("embassy_officer", "police_officer", "ngo_officer")
# the person of our embassy's case (consent: embassy, IOM)
NAME, PASSPORT, PHONE = "Batbayar", "E1234567", "6612 3456"


def _all(status: int, *, but: dict[str, int] | None = None) -> dict[str, int]:
    return {who: (but or {}).get(who, status) for who in PEOPLE}


def _staff_only(**but: int) -> dict[str, int]:
    return _all(403, but={**dict.fromkeys(STAFF, 200), **but})


def _partners_only(**but: int) -> dict[str, int]:
    return _all(403, but={**dict.fromkeys(PARTNERS, 200), **but})


# route -> ({who: status}, {who: (shown, not shown)})
TABLE: dict[str, tuple[dict[str, int], dict[str, tuple[tuple[str, ...], tuple[str, ...]]]]] = {
    "/console/queue": (_staff_only(), {}),
    "/console/cases": (_staff_only(), {}),
    "/console/cases/list": (_staff_only(), {}),
    "/console/shelters": (_staff_only(), {}),
    "/console/reports": (_staff_only(caseworker=403), {}),
    "/console/reports/ctdc.csv": (_staff_only(caseworker=403), {}),
    "/console/referrals/{referral}": (_staff_only(), dict.fromkeys(STAFF, (("K1112223",), ()))),
    "/console/cases/{ours}": (_staff_only(), dict.fromkeys(STAFF, ((NAME, PHONE), ()))),
    "/console/partner/cases": (_partners_only(), {}),
    "/console/partner/cases/{ours}": (
        _partners_only(ngo_officer=404),
        {
            "embassy_officer": ((NAME, PASSPORT), (PHONE,)),
            "police_officer": (("does not cover",), (NAME, PASSPORT, PHONE)),
        },
    ),
    "/console/partner/cases/{theirs}": (_partners_only(embassy_officer=404, ngo_officer=404), {}),
    "/console/partner/referrals": (_partners_only(), {}),
    "/console/partner/referrals/new": (_partners_only(), {}),
    "/console/partner/referrals/{referral}": (
        _partners_only(embassy_officer=404, ngo_officer=404),
        {"police_officer": (("MO-OPEN-3",), ())},
    ),
    "/console/partner/webhooks": (_partners_only(), {}),
    "/console/admin/organisations": (_all(403, but={"admin": 200}), {}),
    "/console/admin/clients": (_all(403, but={"admin": 200}), {}),
    "/console/admin/people": (_all(403, but={"admin": 200}), {}),
    # the trail shows ids, actions and counts, never a person's data (the audit part keeps none)
    "/console/admin/audit": (
        _all(403, but={"admin": 200}),
        {"admin": (("<code class=\"action\">auth:login:succeed</code>",), (NAME, PASSPORT, PHONE))},
    ),
    "/console/admin/retention": (_all(403, but={"admin": 200}), {}),
    "/console/admin/erasure": (_all(403, but={"admin": 200}), {"admin": (("person_request",), (NAME,))}),
    # a download through the documents service (MGEC pages only); a document nobody has is not found
    "/console/documents/{document}/content": (_staff_only(**dict.fromkeys(STAFF, 404)), {}),
}


def test_the_table_names_every_console_page(app):
    """A new console page cannot be added without its row here."""
    pages = {
        rule.rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith(f"{bp.name}.")
        and "GET" in rule.methods
        and getattr(app.view_functions[rule.endpoint], "__console_scopes__", None) is not None
        and rule.endpoint != "console.logout"
    }
    named = {
        path.replace("{referral}", "<ref>").replace("{ours}", "<ref>").replace("{theirs}", "<ref>")
        .replace("{document}", "<document_id>")
        for path in TABLE
    }
    assert pages == named


@pytest.mark.parametrize("who", list(PEOPLE))
def test_every_console_page_for_every_role(app, session, partners, who):
    http = sign_in_as(app, session, partners, who)
    values = {"referral": partners.referral.id, "ours": partners.ours, "theirs": partners.theirs,
              "document": "5b1e0c2a-0000-4000-8000-000000000000"}
    for template, (statuses, fields) in TABLE.items():
        path = template.format(**values)
        answer = http.get(path)
        assert answer.status_code == statuses[who], (who, path)
        html = answer.get_data(as_text=True)
        shown, hidden = fields.get(who, ((), ()))
        for text in shown:
            assert text in html, (who, path, text)
        for text in hidden:
            assert text not in html, (who, path, text)


ADMIN = ("admin",)
_UUID = "5b1e0c2a-0000-4000-8000-000000000000"
# every form a console page posts to -> who may post it; everyone else gets 403 before anything is read
POSTS: dict[str, tuple[str, ...]] = {
    "/console/referrals/{referral}/accept": ("coordinator", "admin"),
    "/console/referrals/{referral}/documents": STAFF,
    "/console/cases/{ours}/move": STAFF,
    "/console/cases/{ours}/documents": STAFF,
    "/console/cases/{ours}/documents/{document}/delete": STAFF,
    "/console/partner/cases/{ours}/move": PARTNERS,
    "/console/partner/referrals/new": PARTNERS,
    "/console/partner/referrals/{referral}/withdraw": PARTNERS,
    "/console/partner/webhooks": PARTNERS,
    "/console/partner/webhooks/{document}/rotate": PARTNERS,
    "/console/partner/webhooks/deliveries/{document}/redeliver": PARTNERS,
    "/console/admin/organisations": ADMIN,
    "/console/admin/organisations/{ours}/require-totp": ADMIN,
    "/console/admin/clients": ADMIN,
    "/console/admin/clients/cl_nobody/revoke": ADMIN,
    "/console/admin/people": ADMIN,
    "/console/admin/people/{ours}/deactivate": ADMIN,
    "/console/admin/audit/verify": ADMIN,
    "/console/admin/retention": ADMIN,
    "/console/admin/erasure": ADMIN,
}


def test_the_post_table_names_every_console_form(app):
    """A new console form cannot be added without its row here."""
    endpoints = {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith(f"{bp.name}.") and "POST" in rule.methods
        and getattr(app.view_functions[rule.endpoint], "__console_scopes__", None) is not None
        and rule.endpoint != "console.logout"
    }
    adapter = app.url_map.bind("localhost")
    named = {adapter.match(path.format(referral="r", ours="o", document=_UUID), method="POST")[0]
             for path in POSTS}
    assert endpoints == named


@pytest.mark.parametrize("who", list(PEOPLE))
def test_no_console_form_is_open_to_a_role_it_is_not_for(app, session, partners, who):
    http = sign_in_as(app, session, partners, who)
    home = "/console/partner/cases" if who in PARTNERS else "/console/queue"
    token = csrf_of(http.get(home).get_data(as_text=True))
    values = {"referral": partners.referral.id, "ours": partners.ours, "document": _UUID}
    for template, allowed in POSTS.items():
        if who in allowed:
            continue
        answer = http.post(template.format(**values), data={"csrf_token": token, "confirm": "yes"})
        assert answer.status_code == 403, (who, template)
