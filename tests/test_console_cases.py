"""The case page's forms in the console (participants, hold, resume, services, moves) and its error pages."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from referral_api.cases.models import CaseService, Shelter
from tests import console_helpers as c
from tests.console_helpers import console, signed_in  # noqa: F401  (the fixture and its sign-in)
from tests.partner_helpers import partners, sign_in_as  # noqa: F401  (the fixture)


def _accepted_case(client, console) -> str:
    html = client.get(f"/console/referrals/{console.referral.id}").get_data(as_text=True)
    answer = client.post(
        f"/console/referrals/{console.referral.id}/accept",
        data={"csrf_token": c.csrf_of(html), "version": c.version_of(html), "target": "new"},
    )
    assert answer.status_code == 303
    return answer.headers["Location"]


def test_case_forms_participants_hold_resume_services_and_moves(app, client, session, console):
    from referral_api.cases.models import CaseParticipant

    with app.app_context():
        full = Shelter(name="Zamiin-Uud shelter", city="Zamiin-Uud", capacity=0)
        session.add(full)
        session.commit()
    signed_in(client, session, console)
    path = _accepted_case(client, console)
    case_id = path.rsplit("/", 1)[1]
    html = client.get(path + "?org_q=seoul").get_data(as_text=True)
    assert "Embassy of Mongolia in Seoul" in html and "FIZ Zurich" not in html  # searched by name
    token = c.csrf_of(html)
    embassy = str(console.orgs["embassy"].id)

    added = client.post(
        f"{path}/participants", data={"csrf_token": token, "organisation_id": embassy, "role": "embassy"}
    )
    assert added.status_code == 303
    assert session.get(CaseParticipant, (_case(session, case_id).id, console.orgs["embassy"].id)) is not None
    again = client.post(
        f"{path}/participants", data={"csrf_token": token, "organisation_id": embassy, "role": "embassy"}
    )
    assert again.status_code == 409 and "This organisation takes part already." in again.get_data(
        as_text=True
    )
    removed = client.post(
        f"{path}/remove-participant", data={"csrf_token": token, "organisation_id": embassy}
    )
    assert removed.status_code == 303
    session.expire_all()
    assert session.get(CaseParticipant, (_case(session, case_id).id, console.orgs["embassy"].id)) is None

    version = c.version_of(client.get(path).get_data(as_text=True))
    held = client.post(
        f"{path}/hold", data={"csrf_token": token, "version": version, "reason": "In hospital"}
    )
    assert held.status_code == 303 and _case(session, case_id).on_hold
    page = client.get(path).get_data(as_text=True)
    assert "In hospital" in page and "/resume" in page
    resumed = client.post(f"{path}/resume", data={"csrf_token": token, "version": c.version_of(page)})
    assert resumed.status_code == 303
    session.expire_all()
    assert not _case(session, case_id).on_hold

    key = c.key_of(page)
    form = {"csrf_token": token, "idempotency_key": key, "kind": "shelter", "shelter_id": str(full.id)}
    no_bed = client.post(f"{path}/services", data=form)
    assert no_bed.status_code == 409 and "This shelter has no free bed." in no_bed.get_data(as_text=True)

    page = client.get(path).get_data(as_text=True)
    missing = client.post(
        f"{path}/move",
        data={
            "csrf_token": token,
            "version": c.version_of(page),
            "to": "travel_documents",
            "d.method": "interview",
        },
    )
    body = missing.get_data(as_text=True)
    assert missing.status_code == 422 and 'id="error-travel_documents-verified_on"' in body
    assert "Please fill in this field." in body
    session.expire_all()
    assert _case(session, case_id).stage.value == "verification"
    moved = client.post(
        f"{path}/move",
        data={
            "csrf_token": token,
            "version": c.version_of(page),
            "to": "travel_documents",
            "d.method": "interview",
            "d.verified_on": "2026-11-20",
        },
    )
    assert moved.status_code == 303
    session.expire_all()
    assert _case(session, case_id).stage.value == "travel_documents"


def _case(session, case_id):
    from referral_api.cases.models import Case

    return session.get(Case, uuid.UUID(case_id))


def test_an_unexpected_error_is_a_calm_page_with_the_request_id(client, session, console, monkeypatch):
    from referral_api.console import reports

    def broken(*_args, **_kwargs):
        raise RuntimeError("boom")

    signed_in(client, session, console)
    monkeypatch.setattr(reports.shelters_service, "shelters", broken)
    answer = client.get("/console/shelters")
    body = answer.get_data(as_text=True)
    assert answer.status_code == 500 and answer.mimetype == "text/html"
    assert "Something went wrong on our side" in body and "boom" not in body
    assert answer.headers["X-Request-ID"] in body


def test_a_caseworker_reads_but_does_not_decide_or_report(app, client, session, console):
    from referral_api.access import Role
    from tests import oauth_helpers as h

    caseworker, _ = h.person(session, console.orgs["mgec"], Role.MGEC_CASEWORKER)
    client.set_cookie("console_lang", "en")
    assert c.sign_in(client, session, caseworker, None).status_code == 302
    html = client.get(f"/console/referrals/{console.referral.id}").get_data(as_text=True)
    assert "Accept the referral" not in html and "Possible duplicates" in html  # the count, not the list
    assert 'href="/console/reports"' not in client.get("/console/queue").get_data(as_text=True)
    assert client.get("/console/reports").status_code == 403
    forged = client.post(f"/console/referrals/{console.referral.id}/accept",
                         data={"csrf_token": c.csrf_of(html), "target": "new"})
    assert forged.status_code == 403


def test_the_timeline_names_a_guardians_consent_in_both_languages(app, client, session, console):
    from referral_api.cases import moves

    signed_in(client, session, console)
    path = _accepted_case(client, console)
    with app.app_context():
        data = {"share_with": ["embassy", "iom", "ngo"], "method": moves.persons.ConsentMethod.GUARDIAN}
        staff = c.actor_for(console.coordinator, "cl_console")
        moves.change_consent(session, staff, path.rsplit("/", 1)[1], data)
    assert "By the legal guardian" in client.get(path).get_data(as_text=True)
    assert client.get("/console/language/mn").status_code == 302
    html = client.get(path).get_data(as_text=True)
    assert "Хууль ёсны асран хамгаалагчаар дамжуулан" in html and "guardian" not in html


def test_a_double_click_on_record_a_service_takes_one_bed_not_two(app, session, partners):
    """The services form carries an idempotency key: the same form sent twice records one service."""
    with app.app_context():
        shelter = Shelter(name="Darkhan shelter", city="Darkhan", capacity=5)
        session.add(shelter)
        session.commit()
        shelter_id = shelter.id
    http = sign_in_as(app, session, partners, "coordinator")
    path = f"/console/cases/{partners.ours}"
    html = http.get(path).get_data(as_text=True)
    form = {"csrf_token": c.csrf_of(html), "idempotency_key": c.key_of(html), "kind": "shelter",
            "shelter_id": str(shelter_id), "starts_on": ""}

    def recorded() -> int:
        session.expire_all()
        found = sa.select(CaseService).where(CaseService.case_id == uuid.UUID(partners.ours))
        return len(session.scalars(found).all())

    first = http.post(f"{path}/services", data=form)
    again = http.post(f"{path}/services", data=form)  # a double click
    assert (first.status_code, again.status_code) == (303, 303)
    assert again.headers["Location"] == first.headers["Location"]
    assert recorded() == 1
    fresh = c.key_of(http.get(path).get_data(as_text=True))
    assert fresh != form["idempotency_key"]  # the next form is a new one
    assert http.post(f"{path}/services", data={**form, "idempotency_key": fresh}).status_code == 303
    assert recorded() == 2


def test_only_an_mgec_admin_is_offered_reopening_a_closed_case(app, client, session, partners):
    """Reopening is an MGEC admin's (moves.may_make): a coordinator sees no 'Reopen at …' form on a closed
    case, and one posted anyway is refused; an admin sees the forms."""
    closed = client.post(
        f"/api/v1/cases/{partners.ours}/transitions",
        json={"to": "closed", "details": {"closure_reason": "other"}, "note": "review"},
        headers=partners.headers("coordinator"),
    )
    assert closed.status_code == 200, closed.get_json()
    path = f"/console/cases/{partners.ours}"
    admin = sign_in_as(app, session, partners, "admin").get(path).get_data(as_text=True)
    assert "Reopen at" in admin
    http = sign_in_as(app, session, partners, "coordinator")
    html = http.get(path).get_data(as_text=True)
    assert "Reopen at" not in html and "No move is open to you from this stage." in html
    reopen = {"csrf_token": c.csrf_of(html), "version": c.version_of(admin), "to": "verification"}
    reopen["note"] = "She came back"
    forged = http.post(f"{path}/move", data=reopen)
    assert forged.status_code == 403


def test_a_consent_change_on_the_timeline_reads_in_words(app, client, session, partners):
    """The entry and its details in words in both languages: kinds of organisation as a list in words,
    what was withdrawn and what given named as such (not the referral's 'consents to the referral')."""
    changed = client.post(
        f"/api/v1/cases/{partners.ours}/consent",
        json={"share_with": ["iom", "ngo", "police"]},
        headers=partners.headers("coordinator"),
    )
    assert changed.status_code == 200, changed.get_json()
    path = f"/console/cases/{partners.ours}"

    def timeline(html: str) -> str:
        return html[html.index('id="h-timeline"'):html.index('id="h-participants"')]

    english = timeline(sign_in_as(app, session, partners, "coordinator").get(path).get_data(as_text=True))
    assert "Consent changed" in english and "Now shared with: IOM, NGO and Police" in english
    assert "Consent withdrawn for: Embassy or consulate" in english
    assert "consents to the referral" not in english and "[" not in english
    http = sign_in_as(app, session, partners, "coordinator", english=False)
    mongolian = timeline(http.get(path).get_data(as_text=True))
    for code in ("consent_changed", "share_with", "withdrawn", "given", "iom", "embassy"):
        assert code not in mongolian, code
    assert "ОУШХБ" in mongolian and "[" not in mongolian


def _refused(http, path, action, data):
    html = http.get(path).get_data(as_text=True)
    form = {"csrf_token": c.csrf_of(html), "version": c.version_of(html), "idempotency_key": c.key_of(html)}
    return http.post(f"{path}/{action}", data={**form, **data})


def test_a_refused_form_keeps_what_was_typed(app, session, partners):
    """Every form of the case page shown again after a refusal holds what was typed in it: a move (its
    choice, text, day and note), a hold's reason, a service, an organisation to add."""
    http = sign_in_as(app, session, partners, "coordinator")
    path = f"/console/cases/{partners.ours}"
    note = "Confirmed at the interview with her aunt present"
    move = {"to": "travel_documents", "d.method": "interview", "occurred_on": "2026-11-01", "note": note}
    refused = _refused(http, path, "move", move)  # d.verified_on missing
    body = refused.get_data(as_text=True)
    assert refused.status_code == 422 and 'id="error-travel_documents-verified_on"' in body
    assert note in body and 'value="interview" selected' in body and 'value="2026-11-01"' in body

    reason = "In hospital " + "x" * 6000  # longer than the schema takes
    refused = _refused(http, path, "hold", {"reason": reason})
    assert refused.status_code == 422 and f'value="{reason}"' in refused.get_data(as_text=True)

    service = {"kind": "medical", "starts_on": "2026-11-02", "note": "Dental " + "y" * 6000}
    refused = _refused(http, path, "services", service)
    body = refused.get_data(as_text=True)
    assert refused.status_code == 422 and 'id="error-note"' in body
    assert 'value="medical" selected' in body and 'value="2026-11-02"' in body and service["note"] in body

    taken = str(partners.orgs["embassy"].id)  # takes part already: 409, named
    refused = _refused(http, path, "participants", {"organisation_id": taken, "role": "embassy"})
    body = refused.get_data(as_text=True)
    assert refused.status_code == 409 and 'value="embassy" selected' in body
    assert f'value="{taken}" selected' in body
