"""End to end: gunicorn, two `referral-api webhooks work` workers running the deadlines step on
PostgreSQL, and a receiver on loopback verifying every request with `standardwebhooks` (the stack of
test_webhooks_e2e.py). A referral left unreviewed past its deadline reaches MGEC only; a case that
departed 4 days ago and never arrived reaches MGEC and the participants (the IOM mission that
recorded the departure, and the referring police), and nobody else."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import pytest
import requests
import sqlalchemy as sa

from referral_api.db import database
from referral_api.referrals.models import Referral
from tests import world as world_module
from tests.referral_data import referral_body
from tests.test_webhooks_e2e import _thin, _wait, stack

pytestmark = [pytest.mark.slow, pytest.mark.postgres_only]


def _types(receiver, name: str) -> list[str]:
    return [r.payload["type"] for r in receiver.requests(name)]


def test_overdue_items_reach_exactly_who_must_act(backend, tmp_path):
    with stack(backend, tmp_path) as s:
        with s.app.app_context():
            session = database(s.app).sessionmaker()
            world = world_module.build(s.app.test_client(), session)
            police, coordinator, iom = (world.headers(w) for w in ("police", "coordinator", "iom"))
            session.close()
        for name in ("mgec", "police", "iom", "embassy", "ngo"):
            s.subscribe(world.orgs[name].id, name)
        api = s.api_base + "/api/v1"

        # a routine referral nobody took into review, submitted 30 hours ago
        late = requests.post(
            f"{api}/referrals",
            headers=police,
            timeout=30,
            json=referral_body(external_reference="MO-PSP-2026-0001", situation__urgency="routine"),
        ).json()
        with s.app.app_context():
            session = database(s.app).sessionmaker()
            back = datetime.now(UTC) - timedelta(hours=30)
            session.execute(
                sa.update(Referral)
                .where(Referral.id == late["id"])
                .values(submitted_at=back, status_changed_at=back)
            )
            session.commit()
            session.close()

        # a case: the IOM mission takes part and records the departure, 4 days ago; no arrival since
        rid = requests.post(
            f"{api}/referrals",
            headers=police,
            timeout=30,
            json=referral_body(external_reference="MO-PSP-2026-0002"),
        ).json()["id"]
        case_id = requests.post(
            f"{api}/referrals/{rid}/accept", json={}, headers=coordinator, timeout=30
        ).json()["case_id"]
        added = requests.post(
            f"{api}/cases/{case_id}/participants",
            headers=coordinator,
            timeout=30,
            json={"organisation_id": str(world.orgs["iom"].id), "role": "iom"},
        )
        assert added.status_code == 201, added.text
        departed = (date.today() - timedelta(days=4)).isoformat()
        for who, to, details in (
            (
                coordinator,
                "travel_planning",
                {
                    "verified_on": departed,
                    "method": "passport",
                    "document_type": "passport",
                    "issued_on": departed,
                },
            ),
            (iom, "in_transit", {"route": "land", "departed_on": departed, "departure_place": "Almaty"}),
        ):
            moved = requests.post(
                f"{api}/cases/{case_id}/transitions",
                headers=who,
                timeout=30,
                json={"to": to, "details": details},
            )
            assert moved.status_code == 200, moved.text

        s.env["DEADLINES_EVERY_SECONDS"] = "1"
        s.start_worker("w1")
        s.start_worker("w2")
        _wait(
            lambda: (
                "referral.overdue" in _types(s.receiver, "mgec")
                and all("case.overdue" in _types(s.receiver, n) for n in ("mgec", "iom", "police"))
            ),
            what="the overdue events",
        )
        time.sleep(3)  # several evaluations by both workers: time for a second raise, if there were one

        overdue = {
            n: [r.payload for r in s.receiver.requests(n) if r.payload["type"].endswith(".overdue")]
            for n in ("mgec", "police", "iom", "embassy", "ngo")
        }
        referral_events = [
            (p["data"]["referral_id"], p["data"]["deadline"], p["data"]["level"])
            for p in overdue["mgec"]
            if p["type"] == "referral.overdue"
        ]
        assert referral_events == [(late["id"], "review", 1)]  # once, though two workers evaluate
        for name in ("mgec", "iom", "police"):
            cases = [p["data"] for p in overdue[name] if p["type"] == "case.overdue"]
            assert [(d["case_id"], d["deadline"], d["stage"]) for d in cases] == [
                (case_id, "arrival", "in_transit")
            ], name
            assert cases[0]["late_by_seconds"] >= 86400  # due a day ago: departed 4 days ago, 3 allowed
        assert [p["type"] for p in overdue["police"]] == ["case.overdue"]  # the referrer: not its referral's
        assert overdue["embassy"] == [] and overdue["ngo"] == []
        assert s.receiver.refused == [] and _thin(s.receiver.log)
        text = " ".join(str(r.payload) for r in s.receiver.log)
        assert "Batbayar" not in text and "Almaty" not in text

        coordinator_view = requests.get(
            f"{api}/referrals?overdue=true", headers=coordinator, timeout=30
        ).json()
        assert [i["id"] for i in coordinator_view["items"]] == [late["id"]]
        cases_view = requests.get(f"{api}/cases?overdue=true", headers=iom, timeout=30).json()
        assert [i["id"] for i in cases_view["items"]] == [case_id]
    assert s.exit_codes == {"w1": 0, "w2": 0}
