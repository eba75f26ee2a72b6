"""Every document route x kind of caller x consent (docs/domain.md, Who sees what).

The scene: a case referred by the police with the embassy as participant (IOM and the NGO take no
part), holding a passport copy (personal) and a police report; and an open referral of the police
holding the passport copy the police sent and a medical report MGEC added. MGEC is the hotline's
system. The person's consent (`share_with`) is one of three: embassy and IOM, the police, nobody.
A personal document is shown only where the parent's view allows it and consent covers the caller's
kind (the referring partner also sees what it sent itself, docs/domain.md); an unseen record is 404.
"""

from __future__ import annotations

import io

import pytest

from tests.case_helpers import add_participant, open_case
from tests.document_helpers import pdf_bytes, upload, upload_ok
from tests.referral_data import referral_body

CALLERS = ("hotline", "police", "embassy", "iom", "ngo")
CONSENTS = {"embassy_iom": ["embassy", "iom"], "police": ["police"], "nobody": []}
PARTICIPANTS = ("police", "embassy")


def _case(mgec, covered, participant, other=404):
    """Expected status on a case route: MGEC, a participant whose kind consent covers, one it does not."""
    def expect(who, share_with):
        if who == "hotline":
            return mgec
        if who not in PARTICIPANTS:
            return other
        return covered if who in share_with else participant
    return expect


def _referral(mgec, submitter_covered, submitter, other=404):
    def expect(who, share_with):
        if who == "hotline":
            return mgec
        if who != "police":
            return other
        return submitter_covered if "police" in share_with else submitter
    return expect


BOTH, PLAIN = {"case_passport", "case_report"}, {"case_report"}
REF_BOTH, REF_OWN = {"referral_passport", "referral_medical"}, {"referral_passport"}

# route -> (method, path, scope, upload kind or None, expect(who, share_with) -> status or (status, names))
ROUTES = {
    "case_list": ("GET", "/api/v1/cases/{case}/documents", "cases:read", None,
                  _case((200, BOTH), (200, BOTH), (200, PLAIN))),
    "case_content_personal": ("GET", "/api/v1/documents/{case_passport}/content", "cases:read", None,
                              _case(200, 200, 404)),
    "case_content_plain": ("GET", "/api/v1/documents/{case_report}/content", "cases:read", None,
                           _case(200, 200, 200)),
    "case_upload_personal": ("POST", "/api/v1/cases/{case}/documents", "cases:update", "passport_copy",
                             _case(201, 201, 403)),
    "case_upload_plain": ("POST", "/api/v1/cases/{case}/documents", "cases:update", "travel_document",
                          _case(201, 201, 201)),
    "case_delete": ("DELETE", "/api/v1/documents/{case_report}", "cases:update", None, _case(204, 403, 403)),
    "referral_list": ("GET", "/api/v1/referrals/{referral}/documents", "referrals:read", None,
                      _referral((200, REF_BOTH), (200, REF_BOTH), (200, REF_OWN))),
    "referral_content_own": ("GET", "/api/v1/documents/{referral_passport}/content", "referrals:read", None,
                             _referral(200, 200, 200)),
    "referral_content_mgec": ("GET", "/api/v1/documents/{referral_medical}/content", "referrals:read", None,
                              _referral(200, 200, 404)),
    "referral_upload_personal": ("POST", "/api/v1/referrals/{referral}/documents", "referrals:submit",
                                 "identification_photo", _referral(201, 201, 201)),
    "referral_delete": ("DELETE", "/api/v1/documents/{referral_medical}", "referrals:submit", None,
                        _referral(204, 403, 404)),
}
CASES = [(route, consent) for route in ROUTES for consent in CONSENTS]


@pytest.fixture
def scene_for(client, world):
    def build(share_with):
        case_id = open_case(client, world, consent__share_with=share_with)
        add_participant(client, world, case_id, "embassy", "embassy")
        referral = client.post("/api/v1/referrals", json=referral_body(
            external_reference="MO-PSP-2026-0500", consent__share_with=share_with),
            headers=world.headers("police"))
        assert referral.status_code == 201, referral.get_json()
        referral_id = referral.get_json()["id"]
        def add(parent, parent_id, kind, who="coordinator"):
            return upload_ok(client, world, parent, parent_id, pdf_bytes(), kind=kind, who=who)["id"]

        docs = {
            "case": case_id,
            "referral": referral_id,
            "case_passport": add("case", case_id, "passport_copy"),
            "case_report": add("case", case_id, "police_report"),
            "referral_passport": add("referral", referral_id, "passport_copy", who="police"),
            "referral_medical": add("referral", referral_id, "medical"),
        }
        return docs
    return build


def _call(client, world, method, url, kind, who, scope):
    headers = world.headers(who, scope) if who else {}
    if method == "POST":
        form = {"file": (io.BytesIO(pdf_bytes()), "x.pdf"), "kind": kind}
        return client.post(url, data=form, headers=headers, content_type="multipart/form-data")
    return client.open(url, method=method, headers=headers)


@pytest.mark.parametrize(("route", "consent"), CASES, ids=[f"{r}-{c}" for r, c in CASES])
def test_document_route_by_caller_and_consent(client, world, scene_for, route, consent):
    method, path, scope, kind, expect = ROUTES[route]
    share_with = CONSENTS[consent]
    scene = scene_for(share_with)
    url = path.format(**scene)
    refused = _call(client, world, method, url, kind, "hotline", "reports:read")
    assert refused.status_code == 403 and "insufficient_scope" in refused.headers["WWW-Authenticate"]
    assert _call(client, world, method, url, kind, None, None).status_code == 401
    names = {v: k for k, v in scene.items()}
    for who in reversed(CALLERS) if method == "DELETE" else CALLERS:  # MGEC's delete last
        expected = expect(who, share_with)
        status, docs = expected if isinstance(expected, tuple) else (expected, None)
        answer = _call(client, world, method, url, kind, who, scope)
        assert answer.status_code == status, (who, answer.get_json())
        if docs is not None:
            assert {names[d["id"]] for d in answer.get_json()["items"]} == docs, who
        if status == 200 and "content" in route:
            assert answer.get_data() == pdf_bytes()


def test_a_referral_in_its_status_only_view_shows_no_documents(client, world):
    case_id = open_case(client, world)  # the police's referral is accepted: the police now see its status
    listed = client.get("/api/v1/referrals", headers=world.headers("police")).get_json()["items"]
    referral_id = next(r["id"] for r in listed if r["case_id"] == case_id)
    meta = upload_ok(client, world, "referral", referral_id, pdf_bytes(), kind="consent_form")
    assert client.get(f"/api/v1/referrals/{referral_id}/documents",
                      headers=world.headers("police")).status_code == 403
    assert client.get(meta["content_url"], headers=world.headers("police")).status_code == 404
    assert upload(client, world, "referral", referral_id, pdf_bytes(), who="police").status_code == 403


def test_the_content_route_needs_the_parents_read_scope(client, world):
    case_id = open_case(client, world)
    meta = upload_ok(client, world, "case", case_id, pdf_bytes(), kind="police_report")
    answer = client.get(meta["content_url"], headers=world.headers("hotline", "referrals:read"))
    assert answer.status_code == 403 and "insufficient_scope" in answer.headers["WWW-Authenticate"]
    assert client.get(meta["content_url"], headers=world.headers("hotline", "cases:read")).status_code == 200


def test_withdrawing_consent_removes_access_to_personal_documents_at_once(client, world):
    case_id = open_case(client, world)
    add_participant(client, world, case_id, "embassy", "embassy")
    passport = upload_ok(client, world, "case", case_id, pdf_bytes(), kind="passport_copy")
    report = upload_ok(client, world, "case", case_id, pdf_bytes(), kind="travel_document")
    assert client.get(passport["content_url"], headers=world.headers("embassy")).status_code == 200
    changed = client.post(f"/api/v1/cases/{case_id}/consent", json={"share_with": []},
                          headers=world.headers("coordinator"))
    assert changed.status_code == 200, changed.get_json()
    assert client.get(passport["content_url"], headers=world.headers("embassy")).status_code == 404
    assert client.get(report["content_url"], headers=world.headers("embassy")).status_code == 200
    listed = client.get(f"/api/v1/cases/{case_id}/documents", headers=world.headers("embassy")).get_json()
    assert [d["id"] for d in listed["items"]] == [report["id"]]


def test_who_uploaded_a_document_is_shown_to_mgec_and_the_uploader_only(client, world):
    """A participant may not learn which other organisations take part in a case (the case list
    refuses `?participant=` of another organisation): the shelter that uploaded a travel document,
    named on it, would say where the person is."""
    case_id = open_case(client, world, consent__share_with=["police", "ngo"])  # police: the referrer
    add_participant(client, world, case_id, "ngo", "service_provider")
    ngo = str(world.orgs["ngo"].id)
    upload_ok(client, world, "case", case_id, pdf_bytes(), kind="travel_document", who="ngo")

    def uploaders(who):
        listed = client.get(f"/api/v1/cases/{case_id}/documents", headers=world.headers(who))
        assert listed.status_code == 200, listed.get_json()
        return [d["uploaded_by_organisation_id"] for d in listed.get_json()["items"]]

    assert uploaders("police") == [None]
    assert uploaders("ngo") == [ngo]
    assert uploaders("hotline") == [ngo]
