"""Organisations: the model, its one-MGEC rule, and `referral-api orgs`."""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from referral_api.errors import Conflict
from referral_api.organisations import services
from referral_api.organisations.models import Organisation, OrganisationKind, OrganisationStatus


def test_create_list_suspend_with_json(run_cli):
    created = run_cli(
        "orgs",
        "create",
        "--name",
        "Embassy of Mongolia in Seoul",
        "--kind",
        "embassy",
        "--country",
        "kr",
        "--json",
    )
    assert created.exit_code == 0, created.output
    org = json.loads(created.output)
    assert org["kind"] == "embassy" and org["country"] == "KR" and org["status"] == "active"

    listed = json.loads(run_cli("orgs", "list", "--json").output)
    assert [o["id"] for o in listed["items"]] == [org["id"]]

    suspended = run_cli("orgs", "suspend", "Embassy of Mongolia in Seoul", "--json")
    assert suspended.exit_code == 0 and json.loads(suspended.output)["status"] == "suspended"
    activated = run_cli("orgs", "activate", org["id"], "--json")
    assert json.loads(activated.output)["status"] == "active"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "X police", "--kind", "police", "--country", "XX"], "ISO 3166-1"),
        (["--name", "X police", "--kind", "army", "--country", "MN"], "army"),
        (["--name", "X", "--kind", "police", "--country", "MN"], "name"),
    ],
)
def test_create_refuses_bad_values(run_cli, session, args, message):
    result = run_cli("orgs", "create", *args)
    assert result.exit_code != 0
    assert message in result.output
    assert session.scalar(sa.select(sa.func.count()).select_from(Organisation)) == 0


def test_exactly_one_mgec(run_cli, session):
    first = run_cli("orgs", "create", "--name", "MGEC", "--kind", "mgec", "--country", "MN")
    assert first.exit_code == 0
    second = run_cli("orgs", "create", "--name", "MGEC two", "--kind", "mgec", "--country", "MN")
    assert second.exit_code == 1 and "exactly one" in second.output
    assert session.scalar(sa.select(sa.func.count()).where(Organisation.kind == OrganisationKind.MGEC)) == 1


def test_database_refuses_a_second_mgec_even_past_the_service(session, factories):
    factories.OrganisationFactory(mgec=True)
    with pytest.raises(IntegrityError), session.begin_nested():
        session.add(Organisation(name="Another MGEC", kind=OrganisationKind.MGEC, country="MN"))
        session.flush()


def test_duplicate_name_is_conflict(session):
    services.create(session, name="IOM Mongolia", kind=OrganisationKind.IOM, country="MN")
    with pytest.raises(Exception) as info:
        services.create(session, name="IOM Mongolia", kind=OrganisationKind.IOM, country="MN")
    assert info.value.status == 409


def test_unknown_org_is_not_found(run_cli):
    result = run_cli("orgs", "suspend", "No Such Org")
    assert result.exit_code == 1 and "No organisation" in result.output


def test_suspend_changes_status(session, factories):
    org = factories.OrganisationFactory(police=True)
    services.suspend(session, str(org.id))
    assert session.get(Organisation, org.id).status is OrganisationStatus.SUSPENDED


def test_demo_seed_is_idempotent(run_cli, session):
    for _ in range(2):
        result = run_cli("demo", "seed", "--json")
        assert result.exit_code == 0, result.output
    kinds = session.scalars(sa.select(Organisation.kind)).all()
    assert sorted(kinds) == sorted(["mgec", "embassy", "police", "iom", "ngo"])
    from referral_api.referrals.models import Referral

    refs = session.scalars(sa.select(Referral.external_reference)).all()
    open_referrals = ["FIZ-2026-031", "IOM-KZ-26-118", "PSP-MO-2026-0412"]
    cases = ["KR-EMB-DEMO-04", "KZ-IOM-DEMO-03", "MO-PSP-DEMO-01", "MO-PSP-DEMO-02"]
    assert sorted(refs) == sorted(open_referrals + cases)  # once each, though seeded twice
    seeded = json.loads(result.output)["referrals"]
    assert seeded == sorted(
        session.scalars(sa.select(Referral.reference).where(Referral.external_reference.in_(open_referrals)))
    )


def test_mgec_is_never_suspended_not_even_from_the_command_line(run_cli, session):
    """Suspending MGEC would lock out every MGEC person and system, its admins included: a 409 from the
    service, so the console, an API and the CLI all refuse it; MGEC stays active."""
    made = run_cli("orgs", "create", "--name", "MGEC", "--kind", "mgec", "--country", "MN", "--json")
    assert made.exit_code == 0, made.output
    mgec_id = json.loads(made.output)["id"]
    refused = run_cli("orgs", "suspend", "MGEC")
    assert refused.exit_code == 1 and "cannot be suspended" in refused.output
    with pytest.raises(Conflict) as info:
        services.suspend(session, mgec_id)
    assert info.value.status == 409 and "status" in info.value.errors
    session.expire_all()
    assert session.get(Organisation, uuid.UUID(mgec_id)).status is OrganisationStatus.ACTIVE
