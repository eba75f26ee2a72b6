"""MGEC admins in the console: the audit trail (filters, pages, verify, last checkpoint), audited as the
API's read is."""

from __future__ import annotations

import base64
import json
import re

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from referral_api.audit import services as audit_services
from referral_api.audit.actions import AuditAction
from referral_api.audit.checkpoints import noted_details
from referral_api.audit.models import AuditEvent
from referral_api.console import trail
from tests import console_helpers as c
from tests.partner_helpers import partners, sign_in_as  # noqa: F401  (the fixture)

SUSPEND = AuditAction.ORGANISATION_SUSPEND.value


def _rows(html: str) -> list[tuple[int, str]]:
    """(seq, action) of each row of the events table."""
    table = html.split('id="events"', 1)[1].split("</table>", 1)[0] if 'id="events"' in html else ""
    row = (r'<tr><td>(\d+)</td><td class="when">[^<]*</td>'
           r'<td class="action"><code class="action">([^<]+)</code>')
    return [(int(s), a) for s, a in re.findall(row, table)]


def _events(session, action: AuditAction) -> list[AuditEvent]:
    session.expire_all()
    return list(session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action.value)
                                .order_by(AuditEvent.seq)))


def _suspend_and_activate(http, partners, times: int) -> None:
    token = c.csrf_of(http.get("/console/admin/organisations").get_data(as_text=True))
    ngo = partners.orgs["ngo"].id
    for _ in range(times):
        for action in ("suspend", "activate"):
            answer = http.post(f"/console/admin/organisations/{ngo}/{action}", data={"csrf_token": token})
            assert answer.status_code == 303


def test_the_trail_filters_by_action_record_and_actor_and_each_read_is_audited(app, session, partners):
    http = sign_in_as(app, session, partners, "admin")
    _suspend_and_activate(http, partners, 2)
    admin_id = str(partners.people["admin"][0].id)
    every = _rows(http.get("/console/admin/audit").get_data(as_text=True))
    seqs = [s for s, _a in every]
    assert len({a for _s, a in every}) > 2 and seqs == sorted(seqs, reverse=True)
    suspended = _rows(http.get(f"/console/admin/audit?action={SUSPEND}").get_data(as_text=True))
    assert len(suspended) == 2 and {a for _s, a in suspended} == {SUSPEND}
    by_record = _rows(http.get(
        f"/console/admin/audit?resource_type=organisation&resource_id={partners.orgs['ngo'].id}"
    ).get_data(as_text=True))
    assert len(by_record) == 4
    assert 'selected>Organisation</option>' in http.get(
        "/console/admin/audit?resource_type=organisation").get_data(as_text=True)  # record types in words
    by_admin = _rows(http.get(f"/console/admin/audit?actor={admin_id}").get_data(as_text=True))
    mine = {e.seq for e in session.scalars(sa.select(AuditEvent).where(AuditEvent.user_id == admin_id))}
    assert by_admin and {s for s, _a in by_admin} <= mine
    email = partners.people["admin"][0].email
    assert _rows(http.get(f"/console/admin/audit?actor={email}").get_data(as_text=True))[1:] == by_admin
    assert email in http.get("/console/admin/audit").get_data(as_text=True)  # people named by e-mail
    reads = _events(session, AuditAction.AUDIT_EVENT_LIST)
    assert [e.user_id for e in reads] == [admin_id] * 7
    assert reads[1].details == {"count": 2, "filters": ["action"]}
    assert reads[2].details["filters"] == ["resource_id", "resource_type"]
    assert reads[3].details["filters"] == ["resource_type"]


def test_the_date_range_is_of_ulaanbaatar_days_and_a_bad_filter_is_named(app, session, partners):
    http = sign_in_as(app, session, partners, "admin")
    assert _rows(http.get("/console/admin/audit?from=2100-01-01").get_data(as_text=True)) == []
    until_long_ago = http.get("/console/admin/audit?to=2000-01-01").get_data(as_text=True)
    assert "No event matches" in until_long_ago
    today = _rows(http.get("/console/admin/audit?from=2000-01-01&to=2100-01-01").get_data(as_text=True))
    assert today
    for query, field in (("from=29.11.2026", "from"), ("action=auth:user:frobnicate", "action")):
        wrong = http.get(f"/console/admin/audit?{query}")
        assert wrong.status_code == 422 and f'id="error-{field}"' in wrong.get_data(as_text=True)


def test_far_dates_are_named_not_a_500(app, session, partners):
    """Days from 1900 to 2999, as a report's: the day after `to=9999-12-31` and the UTC start of
    `from=0001-01-01` are no dates (were 500s)."""
    http = sign_in_as(app, session, partners, "admin")
    for query, field in (("to=9999-12-31", "to"), ("from=0001-01-01", "from"), ("to=3000-01-01", "to")):
        wrong = http.get(f"/console/admin/audit?{query}")
        body = wrong.get_data(as_text=True)
        assert wrong.status_code == 422 and f'id="error-{field}"' in body, query
        assert "Please give a day from 1900 to 2999." in body
    assert http.get("/console/admin/audit?from=1900-01-01&to=2999-12-31").status_code == 200


def test_the_trail_pages_by_keyset_without_gaps_or_repeats(app, session, partners, monkeypatch):
    monkeypatch.setattr(trail, "PAGE_SIZE", 2)
    http = sign_in_as(app, session, partners, "admin")
    _suspend_and_activate(http, partners, 3)
    url, seen = f"/console/admin/audit?action={SUSPEND}", []
    while url:
        html = http.get(url).get_data(as_text=True)
        seen += [s for s, _a in _rows(html)]
        found = re.search(r'id="next-page" href="([^"]+)"', html)
        url = found.group(1).replace("&amp;", "&") if found else None
        assert url is None or "action=organisations" in url  # the filter is kept from page to page
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)) == 3
    assert http.get("/console/admin/audit?cursor=not-a-cursor").status_code == 422


def test_verify_says_intact_then_names_where_the_chain_broke(app, session, partners):
    http = sign_in_as(app, session, partners, "admin")
    token = c.csrf_of(http.get("/console/admin/audit").get_data(as_text=True))
    intact = http.post("/console/admin/audit/verify", data={"csrf_token": token})
    html = intact.get_data(as_text=True)
    assert intact.status_code == 200 and 'id="verify-result"' in html and "Intact" in html
    verified = _events(session, AuditAction.AUDIT_CHAIN_VERIFY)
    assert verified[-1].user_id == str(partners.people["admin"][0].id) and verified[-1].details["ok"] is True
    events = AuditEvent.__table__
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SET LOCAL session_replication_role = replica"))
    session.execute(sa.update(events).where(events.c.seq == 3).values(outcome="denied"))
    session.commit()
    broken = http.post("/console/admin/audit/verify", data={"csrf_token": token}).get_data(as_text=True)
    assert "Broken at event 3" in broken and "event 3 was changed" in broken
    assert _events(session, AuditAction.AUDIT_CHAIN_VERIFY)[-1].details["ok"] is False


def test_the_last_checkpoint_and_a_pasted_one_checked_by_its_signature(app, session, partners, run_cli):
    http = sign_in_as(app, session, partners, "admin")
    page = http.get("/console/admin/audit").get_data(as_text=True)
    assert 'id="checkpoint-none"' in page
    made = run_cli("audit", "checkpoint")
    assert made.exit_code == 0, made.output
    doc = json.loads(made.output)
    page = http.get("/console/admin/audit").get_data(as_text=True)
    seq = doc["statement"]["seq"]
    assert f"event {seq}" in page and doc["statement"]["head_hash"][:16] in page
    assert re.search(r'id="checkpoint-head">Unchanged<', page)
    assert 'id="checkpoint-signature" data-status="valid"' in page
    token = c.csrf_of(page)
    pasted = {"csrf_token": token, "checkpoint": made.output.strip()}
    extended = http.post("/console/admin/audit/verify", data=pasted)
    assert f"still extends the checkpoint at event {seq}" in extended.get_data(as_text=True)
    assert _events(session, AuditAction.AUDIT_CHAIN_VERIFY)[-1].details["checkpoint_seq"] == seq
    forged = json.dumps({**doc, "statement": {**doc["statement"], "seq": seq + 1}})
    for text in (forged, "not json"):
        refused = http.post("/console/admin/audit/verify", data={"csrf_token": token, "checkpoint": text})
        assert refused.status_code == 422 and 'id="error-checkpoint"' in refused.get_data(as_text=True)


def test_only_an_mgec_admin_opens_the_trail(app, session, partners):
    for who, home in (("coordinator", "/console/queue"), ("embassy_officer", "/console/partner/cases")):
        http = sign_in_as(app, session, partners, who)
        assert http.get("/console/admin/audit").status_code == 403
        token = c.csrf_of(http.get(home).get_data(as_text=True))
        assert http.post("/console/admin/audit/verify", data={"csrf_token": token}).status_code == 403
    assert _events(session, AuditAction.AUDIT_CHAIN_VERIFY) == []


def test_the_last_checkpoints_signature_is_checked_as_the_chain_noted_it(app, session, partners, run_cli):
    http = sign_in_as(app, session, partners, "admin")
    doc = json.loads(run_cli("audit", "checkpoint").output)
    noted = noted_details(doc)

    def status_after(details: dict) -> str:
        audit_services.record(session, actor=None, action=AuditAction.AUDIT_CHECKPOINT_CREATE,
                              resource_type="audit_chain", resource_id=str(details["seq"]), details=details)
        session.commit()
        page = http.get("/console/admin/audit").get_data(as_text=True)
        return re.search(r'id="checkpoint-signature" data-status="([a-z_]+)"', page).group(1)

    assert status_after(noted) == "valid"
    assert status_after({**noted, "seq": noted["seq"] - 1}) == "invalid"  # altered after signing
    other = base64.b64encode(Ed25519PrivateKey.generate().public_key().public_bytes_raw()).decode()
    assert status_after({**noted, "public_key": other}) == "invalid"  # another deployment's key
    assert status_after({"seq": noted["seq"], "head_hash": noted["head_hash"]}) == "not_noted"
