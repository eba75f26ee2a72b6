"""A participant's role must fit its organisation's kind (docs/domain.md, Participants)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from referral_api.cases.models import CaseParticipant
from referral_api.cases.participants import ROLES_OF_KIND
from referral_api.organisations.models import Organisation, OrganisationKind
from tests.case_helpers import open_case

ROLES = ("referrer", "embassy", "iom", "service_provider")
ALLOWED = {
    "mgec": set(),
    "police": {"referrer"},
    "embassy": {"referrer", "embassy"},
    "iom": {"referrer", "iom"},
    "ngo": {"referrer", "service_provider"},
    "government": {"referrer", "service_provider"},
    "service_provider": {"referrer", "service_provider"},
}


def test_the_table_covers_every_kind():
    assert {k.value: {r.value for r in v} for k, v in ROLES_OF_KIND.items()} == ALLOWED


@pytest.mark.parametrize("kind", sorted(ALLOWED))
def test_a_role_outside_the_kind_is_refused_naming_the_allowed_roles(client, world, session, kind):
    if kind == "mgec":  # there is exactly one
        org = world.orgs["mgec"]
    else:
        org = Organisation(name=f"A {kind} organisation", kind=OrganisationKind(kind), country="KR")
        session.add(org)
        session.commit()
    case_id = open_case(client, world, external_reference=f"MO-ROLE-{kind}")
    for role in ROLES:
        if role in ALLOWED[kind]:
            continue
        refused = client.post(
            f"/api/v1/cases/{case_id}/participants",
            json={"organisation_id": str(org.id), "role": role},
            headers=world.headers("coordinator"),
        )
        assert refused.status_code == 422, (role, refused.get_json())
        problem = refused.get_json()
        assert sorted(problem["allowed_roles"]) == sorted(ALLOWED[kind])
        assert "role" in problem["errors"] and kind in problem["errors"]["role"][0]
        assert all(r in problem["errors"]["role"][0] for r in ALLOWED[kind])
    mine = CaseParticipant.organisation_id == org.id
    assert session.scalar(sa.select(sa.func.count()).select_from(CaseParticipant).where(mine)) == 0
    for role in sorted(ALLOWED[kind])[:1]:
        added = client.post(
            f"/api/v1/cases/{case_id}/participants",
            json={"organisation_id": str(org.id), "role": role},
            headers=world.headers("coordinator"),
        )
        assert added.status_code == 201, added.get_json()
