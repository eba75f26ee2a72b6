"""Partners' console fixtures: two embassies with a case each, a police referral, and people of every role."""

from __future__ import annotations

import pytest

from referral_api.access import Role
from referral_api.organisations.models import Organisation, OrganisationKind
from tests import case_helpers as ch
from tests import console_helpers as c
from tests import oauth_helpers as h

# who -> (organisation key, role)
PEOPLE = {
    "coordinator": ("mgec", Role.MGEC_COORDINATOR),
    "caseworker": ("mgec", Role.MGEC_CASEWORKER),
    "admin": ("mgec", Role.MGEC_ADMIN),
    "embassy_officer": ("embassy", Role.PARTNER_OFFICER),
    "police_officer": ("police", Role.PARTNER_OFFICER),
    "ngo_officer": ("ngo", Role.PARTNER_OFFICER),
}


@pytest.fixture
def partners(app, client, world, session):
    """Our embassy's case (verification), another embassy's case, a police referral, and people."""
    with app.app_context():
        c.register(session)
        other = Organisation(
            name="Embassy of Mongolia in Beijing", kind=OrganisationKind.EMBASSY, country="CN"
        )
        session.add(other)
        session.commit()
        world.orgs["embassy2"] = other
        world.ours = ch.open_case(client, world, external_reference="MO-OURS-1")
        ch.add_participant(client, world, world.ours, "embassy", "embassy")
        world.theirs = ch.open_case(
            client,
            world,
            external_reference="MO-THEIRS-2",
            person__passport_number="G7654321",
            person__national_id="УБ88010112",  # noqa: RUF001
        )
        ch.add_participant(client, world, world.theirs, "embassy2", "embassy")
        world.referral = c.submit(
            session,
            c.partner_actor(world.orgs["police"]),
            external_reference="MO-OPEN-3",
            person__passport_number="K1112223",
            person__national_id="УБ77010112",  # noqa: RUF001
        )
        world.people = {who: h.person(session, world.orgs[org], role) for who, (org, role) in PEOPLE.items()}
    return world


def sign_in_as(app, session, world, who: str, *, english: bool = True):
    """A fresh browser (test client) signed in as `who`."""
    http = app.test_client()
    if english:
        http.set_cookie("console_lang", "en")
    user, totp = world.people[who]
    answer = c.sign_in(http, session, user, totp)
    assert answer.status_code == 302, answer.get_data(as_text=True)
    return http
