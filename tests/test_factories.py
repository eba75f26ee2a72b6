"""The test factories' traits put a referral in the state they name, through the services."""

from __future__ import annotations

import pytest

from referral_api.access import Role
from referral_api.referrals.states import ReferralStatus
from tests import oauth_helpers as h
from tests.console_helpers import actor_for, partner_actor
from tests.factories import ReferralFactory


@pytest.fixture
def actors(app, world, session):
    user, _totp = h.person(session, world.orgs["mgec"], Role.MGEC_COORDINATOR)
    return partner_actor(world.orgs["police"]), actor_for(user, "cl_console")


@pytest.mark.parametrize(
    ("trait", "status"),
    [
        (None, ReferralStatus.SUBMITTED),
        ("under_review", ReferralStatus.UNDER_REVIEW),
        ("accepted", ReferralStatus.ACCEPTED),
        ("rejected", ReferralStatus.REJECTED),
        ("information_requested", ReferralStatus.INFORMATION_REQUESTED),
    ],
)
def test_a_trait_names_the_state(session, actors, trait, status):
    submitter, coordinator = actors
    traits = {trait: True} if trait else {}
    referral = ReferralFactory(session=session, submitter=submitter, coordinator=coordinator, **traits)
    assert referral.status is status
    assert (referral.case_id is not None) is (status is ReferralStatus.ACCEPTED)


def test_a_move_without_a_coordinator_is_refused(session, actors):
    with pytest.raises(TypeError, match="coordinator"):
        ReferralFactory(session=session, submitter=actors[0], under_review=True)


def test_fields_reach_the_body(session, actors):
    referral = ReferralFactory(session=session, submitter=actors[0], fields={"external_reference": "FACT-1",
                                                                              "person__given_name": "Saraa"})
    assert referral.external_reference == "FACT-1" and referral.given_name == "Saraa"
