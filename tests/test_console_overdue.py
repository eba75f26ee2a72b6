"""Overdue items in the console: marked, and first on the review queue and the case list (issue 17)."""

from __future__ import annotations

import re
import uuid

from referral_api.cases.models import Case
from referral_api.db import utcnow
from referral_api.referrals.models import Referral
from tests import console_helpers as c
from tests.case_helpers import open_case
from tests.console_helpers import console, signed_in  # noqa: F401  (the fixture and its sign-in)

MARK = "Overdue"


def _rows(html: str) -> list[str]:
    """The table rows of a list page, in order."""
    return re.findall(r"<tr[ >].*?</tr>", html, flags=re.S)[1:]  # the first is the header


def _mark_overdue(session, model, record_id) -> None:
    """What the deadlines evaluation does to a record whose wait is past its deadline."""
    record = session.get(model, uuid.UUID(str(record_id)))
    record.overdue_since = utcnow()
    session.commit()


def test_an_overdue_referral_is_marked_and_first_on_the_queue(app, client, session, console):
    with app.app_context():
        late = c.submit(
            session,
            c.partner_actor(console.orgs["police"]),
            external_reference="MO-PSP-2026-0999",
            situation__urgency="routine",
        )
        _mark_overdue(session, Referral, late.id)
    signed_in(client, session, console)
    rows = _rows(client.get("/console/queue").get_data(as_text=True))
    assert len(rows) == 2
    # Without the overdue ordering the urgent one (console.referral) comes first: it is urgent and older.
    assert late.reference in rows[0] and MARK in rows[0] and 'class="overdue"' in rows[0]
    assert console.referral.reference in rows[1] and MARK not in rows[1]


def test_overdue_first_then_the_usual_order_on_the_queue(app, client, session, console):
    with app.app_context():
        routine = c.submit(
            session,
            c.partner_actor(console.orgs["police"]),
            external_reference="R-2",
            situation__urgency="routine",
        )
    signed_in(client, session, console)
    rows = _rows(client.get("/console/queue").get_data(as_text=True))
    assert console.referral.reference in rows[0] and routine.reference in rows[1]  # urgency rules
    assert all(MARK not in row for row in rows)


def test_an_overdue_case_is_marked_and_first_on_the_case_list(app, client, session, console):
    first = open_case(client, console, external_reference="C-1")
    newest = open_case(client, console, external_reference="C-2")
    with app.app_context():
        _mark_overdue(session, Case, first)
        refs = {str(cid): session.get(Case, uuid.UUID(cid)).reference for cid in (first, newest)}
    signed_in(client, session, console)
    rows = _rows(client.get("/console/cases/list").get_data(as_text=True))
    assert refs[first] in rows[0] and MARK in rows[0]  # newest first otherwise: it would be second
    assert refs[newest] in rows[-1] and MARK not in rows[-1]
    # A filter applies to the overdue ones too.
    held = client.get("/console/cases/list?on_hold=true").get_data(as_text=True)
    assert refs[first] not in held
